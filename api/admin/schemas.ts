import { z } from 'zod';
import { safeText } from '../../protocol/text.js';

/** A display name: trimmed, 1–200 characters, no NUL or lone surrogates. */
const displayName = safeText().trim().min(1).max(200);
const label = safeText().trim().min(1).max(100);

/** `POST /api/admin/clients` and `POST /api/admin/node-owners`. */
export const createAccountBody = z.object({ name: displayName }).strict();

/** `POST /api/admin/{clients|node-owners}/:id/keys`: an extra key, e.g. for rotation. */
export const issueKeyBody = z.object({ label: label.optional() }).strict();
