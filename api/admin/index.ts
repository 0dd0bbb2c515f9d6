import { Hono } from 'hono';
import { authenticate, requireRole } from '../auth/index.js';
import { issueApiKey, KEY_REVOKED_CHANNEL, type KeyOwner } from '../auth/keys.js';
import type { AppDeps } from '../deps.js';
import { notFound, resourceId, validate } from '../middleware/validate.js';
import { createAccountBody, issueKeyBody } from './schemas.js';

/** Label of the key issued together with a new account. */
const FIRST_KEY_LABEL = 'initial';

/**
 * Operator endpoints (admin only), mounted at `/api/admin`. Every new key is in the response once;
 * only its hash is stored, so it can never be shown again.
 * - `POST /clients` `{ name }` → 201 `{ client, apiKey, keyId }`
 * - `POST /node-owners` `{ name }` → 201 `{ nodeOwner, apiKey, keyId }`
 * - `POST /clients/:id/keys`, `POST /node-owners/:id/keys` `{ label? }` → 201 `{ apiKey, keyId }`
 * - `POST /keys/:keyId/revoke` → 200 `{ keyId, revokedAt }` (idempotent); a node key's open sockets
 *   are closed at once (4403) on every api process
 */
export function adminRoutes(deps: Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store'>) {
  const { prisma, store } = deps;
  // Mounted on its own prefix, so this guard covers exactly the admin routes.
  return new Hono()
    .use('*', authenticate(deps), requireRole('admin'))
    .post('/clients', validate('json', createAccountBody), async (c) => {
      const { name } = c.req.valid('json');
      const created = await prisma.$transaction(async (tx) => {
        const client = await tx.client.create({
          data: { name },
          select: { id: true, name: true, status: true, createdAt: true },
        });
        return {
          client,
          ...(await issueApiKey(tx, { role: 'client', clientId: client.id }, FIRST_KEY_LABEL)),
        };
      });
      return c.json({ client: created.client, apiKey: created.apiKey, keyId: created.keyId }, 201);
    })
    .post('/node-owners', validate('json', createAccountBody), async (c) => {
      const { name } = c.req.valid('json');
      const created = await prisma.$transaction(async (tx) => {
        const nodeOwner = await tx.nodeOwner.create({
          data: { name },
          select: { id: true, name: true, createdAt: true },
        });
        const owner: KeyOwner = { role: 'node_owner', nodeOwnerId: nodeOwner.id };
        return { nodeOwner, ...(await issueApiKey(tx, owner, FIRST_KEY_LABEL)) };
      });
      return c.json({ nodeOwner: created.nodeOwner, apiKey: created.apiKey, keyId: created.keyId }, 201);
    })
    .post('/clients/:id/keys', resourceId('client'), validate('json', issueKeyBody), async (c) => {
      const clientId = c.req.param('id');
      if (!(await prisma.client.findUnique({ where: { id: clientId }, select: { id: true } }))) {
        throw notFound('client');
      }
      const { apiKey, keyId } = await issueApiKey(
        prisma,
        { role: 'client', clientId },
        labelOf(c.req.valid('json')),
      );
      return c.json({ apiKey, keyId }, 201);
    })
    .post('/node-owners/:id/keys', resourceId('node owner'), validate('json', issueKeyBody), async (c) => {
      const nodeOwnerId = c.req.param('id');
      if (!(await prisma.nodeOwner.findUnique({ where: { id: nodeOwnerId }, select: { id: true } }))) {
        throw notFound('node owner');
      }
      const owner: KeyOwner = { role: 'node_owner', nodeOwnerId };
      const { apiKey, keyId } = await issueApiKey(prisma, owner, labelOf(c.req.valid('json')));
      return c.json({ apiKey, keyId }, 201);
    })
    .post('/keys/:keyId/revoke', resourceId('API key', 'keyId'), async (c) => {
      const keyId = c.req.param('keyId');
      // Only a live key gets a timestamp, so revoking twice keeps the first revocation time.
      await prisma.apiKey.updateMany({
        where: { id: keyId, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      const key = await prisma.apiKey.findUnique({
        where: { id: keyId },
        select: { revokedAt: true, role: true },
      });
      if (!key) throw notFound('API key');
      // Every api process closes the sockets open with this key. Announced on every call, so a retry
      // after a failed publish (an error answer) still reaches them.
      if (key.role === 'node') await store.pubsub.publish(KEY_REVOKED_CHANNEL, keyId);
      return c.json({ keyId, revokedAt: key.revokedAt }, 200);
    });
}

function labelOf(body: { label?: string | undefined }): string | null {
  return body.label ?? null;
}
