import { z } from 'zod';

/** A display name: trimmed, 1–200 characters. */
const displayName = z.string().trim().min(1).max(200);
const label = z.string().trim().min(1).max(100);

/** `POST /api/admin/clients` and `POST /api/admin/node-owners`. */
export const createAccountBody = z.object({ name: displayName }).strict();

/** `POST /api/admin/{clients|node-owners}/:id/keys`: an extra key, e.g. for rotation. */
export const issueKeyBody = z.object({ label: label.optional() }).strict();
