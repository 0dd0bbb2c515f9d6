import { createHash, randomUUID } from 'node:crypto';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * The task id, which is also its workflow id. With an `Idempotency-Key` it is derived from the client
 * and the key, so a retried request names the same workflow and can never start a second one.
 */
export function taskIdFor(clientId: string, idempotencyKey?: string): string {
  if (!idempotencyKey) return `t_${randomUUID().replaceAll('-', '')}`;
  const digest = createHash('sha256').update(`${clientId}\n${idempotencyKey}`).digest();
  let out = '';
  for (let i = 0; i < 26; i++) out += BASE32[(digest[i] as number) % 32];
  return `t_${out}`;
}

/** Fingerprint of what a request asked for, to refuse an Idempotency-Key reused for something else. */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return typeof value === 'bigint' ? `"${value}n"` : JSON.stringify(value);
}
