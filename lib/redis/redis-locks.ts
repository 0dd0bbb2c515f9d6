/** Locks on Redis: SET NX with a token, released and extended only by the holder of the token. */
import { randomUUID } from 'node:crypto';
import { type Run, script } from './redis-connection.js';
import { assertDuration, type Lock, type Locks, makeLock, withLockPolling } from './types.js';

/** KEYS: lock. ARGV: token. Compare-and-delete, so an expired holder cannot free someone else's lock. */
const LOCK_RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** KEYS: lock. ARGV: token, ttlMs. */
const LOCK_EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const scripts = {
  lockRelease: script(LOCK_RELEASE),
  lockExtend: script(LOCK_EXTEND),
};

/** {@link Locks} under the key prefix `p`. */
export function redisLocks(run: Run, p: string): Locks {
  const lockKey = (name: string) => `${p}lock:${name}`;
  const release = async (name: string, token: string) =>
    (await run((r) => scripts.lockRelease(r, [lockKey(name)], [token]))) === 1;
  const extend = async (name: string, token: string, ttlMs: number) =>
    (await run((r) => scripts.lockExtend(r, [lockKey(name)], [token, ttlMs]))) === 1;
  const acquire = async (name: string, ttlMs: number): Promise<Lock | null> => {
    assertDuration('ttlMs', ttlMs);
    const token = randomUUID();
    const ok = await run((r) => r.set(lockKey(name), token, 'PX', ttlMs, 'NX'));
    return ok === 'OK' ? makeLock(name, token, release, extend) : null;
  };
  const locks: Locks = {
    acquire,
    release,
    withLock: (name, ttlMs, fn, o) => withLockPolling(acquire, name, ttlMs, fn, o),
  };
  return locks;
}
