import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import type { Services } from '../../lib/services.js';
import { ApiError } from '../errors.js';
import { digestsEqual, hashApiKey, parseApiKey } from './keys.js';
import type { Principal, Role } from './principal.js';

export type { Principal, Role } from './principal.js';

/** What resolving a key needs (the node WebSocket upgrade passes its services too). */
export type VerifyDeps = Pick<Services, 'prisma' | 'config' | 'log'>;
/** What the authentication middleware needs: key lookup plus the rate-limit counters. */
export type AuthDeps = VerifyDeps & Pick<Services, 'store'>;

const RATE_WINDOW_MS = 60_000;
/** `last_used_at` is an audit hint, not a counter: one write per key per minute is plenty. */
const TOUCH_INTERVAL_MS = 60_000;
/** Keys whose `last_used_at` write is in flight, so a burst of requests issues one write. */
const touching = new Set<string>();

/**
 * Resolve a bearer key to its principal, or null when it is unknown, malformed, revoked, or belongs
 * to a suspended client. `ADMIN_API_KEY` from the configuration is the bootstrap admin (`keyId: null`).
 * Records the key's use (at most once a minute, in the background).
 * @example const principal = await verifyApiKey(services, token); if (!principal) ws.close(CLOSE_UNAUTHORIZED);
 */
export async function verifyApiKey(deps: VerifyDeps, key: string): Promise<Principal | null> {
  const presented = hashApiKey(key);
  const { ADMIN_API_KEY } = deps.config;
  if (ADMIN_API_KEY && digestsEqual(presented, hashApiKey(ADMIN_API_KEY)))
    return { role: 'admin', keyId: null };

  const prefix = parseApiKey(key);
  if (!prefix) return null;
  const row = await deps.prisma.apiKey.findUnique({
    where: { prefix },
    select: {
      id: true,
      hash: true,
      role: true,
      clientId: true,
      nodeOwnerId: true,
      nodeId: true,
      revokedAt: true,
      lastUsedAt: true,
      client: { select: { status: true } },
    },
  });
  if (!row || row.revokedAt || !digestsEqual(presented, row.hash)) return null;
  if (row.client && row.client.status !== 'active') return null;

  const principal = toPrincipal(row);
  if (principal) touchLastUsed(deps, row.id, row.lastUsedAt);
  return principal;
}

/**
 * True when the key was revoked or deleted since it was verified: for connections that outlive the
 * request that checked their key (node sockets).
 */
export async function isKeyRevoked(deps: Pick<VerifyDeps, 'prisma'>, keyId: string): Promise<boolean> {
  const row = await deps.prisma.apiKey.findUnique({ where: { id: keyId }, select: { revokedAt: true } });
  return !row || row.revokedAt !== null;
}

/**
 * Require `Authorization: Bearer <key>` and set `c.var.principal`. Counts every request against the
 * caller's address (before the key is checked, so guessing keys is throttled too) and then against
 * the principal; over either limit answers 429 with `Retry-After`.
 * @example app.get('/api/models', authenticate(deps), handler);
 */
export function authenticate(deps: AuthDeps): MiddlewareHandler {
  const { config, store } = deps;
  const limit = async (c: Context, key: string, max: number, what: string) => {
    const r = await store.rateLimiter.hit(`rl:${key}`, max, RATE_WINDOW_MS);
    if (r.allowed) return;
    const seconds = Math.max(1, Math.ceil(r.resetMs / 1000));
    c.header('Retry-After', String(seconds));
    throw new ApiError(429, 'rate_limited', `rate limit of ${max} requests per minute per ${what} exceeded`);
  };

  return async (c, next) => {
    await limit(c, `ip:${remoteAddress(c)}`, config.RATE_LIMIT_IP_PER_MINUTE, 'address');
    const key = bearerToken(c.req.header('authorization'));
    if (!key) {
      c.header('WWW-Authenticate', 'Bearer');
      throw new ApiError(401, 'unauthorized', 'missing API key (Authorization: Bearer <key>)');
    }
    const principal = await verifyApiKey(deps, key);
    if (!principal) {
      c.header('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new ApiError(401, 'unauthorized', 'invalid API key');
    }
    await limit(c, `p:${principalId(principal)}`, config.RATE_LIMIT_PER_MINUTE, 'principal');
    c.set('principal', principal);
    await next();
  };
}

/**
 * Allow only principals with one of `roles` (after {@link authenticate}); others get 403.
 * @example app.post('/api/models', authenticate(deps), requireRole('admin'), handler);
 */
export function requireRole(...roles: [Role, ...Role[]]): MiddlewareHandler {
  if (roles.length === 0) throw new Error('requireRole: name at least one role');
  const needed = roles.length === 1 ? `the ${roles[0]} role` : `one of the roles ${roles.join(', ')}`;
  return async (c, next) => {
    const principal = c.var.principal as Principal | undefined;
    // A route that forgot `authenticate` must fail closed, not open.
    if (!principal) throw new ApiError(401, 'unauthorized', 'missing API key (Authorization: Bearer <key>)');
    if (!roles.includes(principal.role))
      throw new ApiError(403, 'forbidden', `this endpoint requires ${needed}`);
    await next();
  };
}

/** The identity rate limits count against: every key of one client, owner or node shares a budget. */
export function principalId(p: Principal): string {
  switch (p.role) {
    case 'admin':
      return `admin:${p.keyId ?? 'env'}`;
    case 'client':
      return `client:${p.clientId}`;
    case 'node_owner':
      return `node_owner:${p.nodeOwnerId}`;
    case 'node':
      return `node:${p.nodeId}`;
  }
}

function toPrincipal(row: {
  id: string;
  role: Role;
  clientId: string | null;
  nodeOwnerId: string | null;
  nodeId: string | null;
}): Principal | null {
  // A row missing the owner column its role needs is unusable rather than a wider credential.
  switch (row.role) {
    case 'admin':
      return { role: 'admin', keyId: row.id };
    case 'client':
      return row.clientId ? { role: 'client', keyId: row.id, clientId: row.clientId } : null;
    case 'node_owner':
      return row.nodeOwnerId ? { role: 'node_owner', keyId: row.id, nodeOwnerId: row.nodeOwnerId } : null;
    case 'node':
      return row.nodeId && row.nodeOwnerId
        ? { role: 'node', keyId: row.id, nodeId: row.nodeId, nodeOwnerId: row.nodeOwnerId }
        : null;
  }
}

function touchLastUsed(deps: VerifyDeps, keyId: string, lastUsedAt: Date | null): void {
  const now = Date.now();
  if ((lastUsedAt && now - lastUsedAt.getTime() < TOUCH_INTERVAL_MS) || touching.has(keyId)) return;
  touching.add(keyId);
  const stale = new Date(now - TOUCH_INTERVAL_MS);
  // Conditional, so several api processes seeing the same stale value still write about once.
  deps.prisma.apiKey
    .updateMany({
      where: { id: keyId, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: stale } }] },
      data: { lastUsedAt: new Date(now) },
    })
    .catch((err: unknown) => deps.log.warn({ err, keyId }, 'could not record API key use'))
    .finally(() => touching.delete(keyId));
}

function bearerToken(header: string | undefined): string | null {
  const match = header ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return match?.[1] ?? null;
}

/**
 * The peer address of the TCP connection. Forwarded headers are not trusted (any client can set
 * them). `app.request()` in tests has no socket: those requests share 'unknown'.
 */
function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
