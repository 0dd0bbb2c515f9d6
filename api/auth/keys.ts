import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRole, Prisma } from '../../generated/prisma/client.js';

/**
 * API keys: `ngk_<prefix>_<secret>`. The prefix (12 lowercase hex chars, 48 random bits) is the public
 * lookup id stored in clear; the secret (43 base62 chars, ~256 bits) is never stored, only the SHA-256
 * of the whole key. A fast hash is enough here because the secret is random, not a password.
 */
const KEY_PATTERN = /^ngk_([0-9a-f]{12})_([0-9A-Za-z]{43})$/;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SECRET_LENGTH = 43;

export interface GeneratedApiKey {
  /** The full key: shown to its owner once, never stored. */
  key: string;
  prefix: string;
  /** SHA-256 (hex) of `key`, what the `api_keys` table keeps. */
  hash: string;
}

/**
 * A fresh random API key with its lookup prefix and hash.
 * @example const { key, prefix, hash } = generateApiKey(); // key = 'ngk_3f9a0c1b2d4e_…'
 */
export function generateApiKey(): GeneratedApiKey {
  const prefix = randomBytes(6).toString('hex');
  const key = `ngk_${prefix}_${randomBase62(SECRET_LENGTH)}`;
  return { key, prefix, hash: hashApiKey(key) };
}

/** The lookup prefix of a well-formed key, or null (so malformed keys never reach the database). */
export function parseApiKey(key: string): string | null {
  return KEY_PATTERN.exec(key)?.[1] ?? null;
}

/** SHA-256 (hex) of a key, as stored in `api_keys.hash`. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex digests (false when their lengths differ). */
export function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/**
 * The store's pub/sub channel on which a revoked key's id is published. Every api process subscribes
 * and closes the node sockets that authenticated with that key (close code 4403).
 */
export const KEY_REVOKED_CHANNEL = 'api-keys:revoked';

/** Who a new key belongs to; exactly the owner columns matching its role are set. */
export type KeyOwner =
  | { role: 'admin' }
  | { role: 'client'; clientId: string }
  | { role: 'node_owner'; nodeOwnerId: string }
  | { role: 'node'; nodeId: string; nodeOwnerId: string };

/**
 * Generate a key and store its hash (inside the caller's transaction when given one).
 * Returns the full key, which the caller shows once, and its row id for revocation.
 * @example const { apiKey, keyId } = await issueApiKey(tx, { role: 'client', clientId }, 'ci');
 */
export async function issueApiKey(
  db: Prisma.TransactionClient,
  owner: KeyOwner,
  label: string | null = null,
): Promise<{ apiKey: string; keyId: string; prefix: string }> {
  const { key, prefix, hash } = generateApiKey();
  const role: ApiKeyRole = owner.role;
  const row = await db.apiKey.create({
    data: {
      prefix,
      hash,
      role,
      label,
      clientId: owner.role === 'client' ? owner.clientId : null,
      nodeOwnerId: owner.role === 'node_owner' || owner.role === 'node' ? owner.nodeOwnerId : null,
      nodeId: owner.role === 'node' ? owner.nodeId : null,
    },
    select: { id: true },
  });
  return { apiKey: key, keyId: row.id, prefix };
}

/** Uniform base62 characters: bytes ≥ 248 (= 4 × 62) are rejected so no character is favoured. */
function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}
