import { randomUUID } from 'node:crypto';
import {
  assertDuration,
  assertLimit,
  consoleLogger,
  DEFAULT_KEY_PREFIX,
  deliver,
  type Heartbeats,
  type Lock,
  type Locks,
  type MessageHandler,
  makeLock,
  type Presence,
  type PubSub,
  type RateLimitAlgorithm,
  type RateLimiter,
  type RateLimitResult,
  type Store,
  type StoreLogger,
  StoreUnavailableError,
  withLockPolling,
} from './types.js';

export interface MemoryStoreOptions {
  /** Kept for parity with Redis; each memory store is its own namespace anyway. */
  keyPrefix?: string;
  /** Clock for every TTL and window (inject a fake one in tests). Default `Date.now`. */
  now?: () => number;
  log?: StoreLogger;
}

/** A value that is gone once `now() >= expiresAt`, like a Redis key with PX. */
interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** How often expired entries are dropped; reads never depend on it (they check TTLs themselves). */
const SWEEP_MS = 30_000;

/**
 * In-process {@link Store} with the same semantics as the Redis one, for single-process development
 * and tests. TTLs are enforced on read with the injected clock; an unref'd sweep frees memory.
 * @example const store = createMemoryStore({ now: () => fakeNow });
 */
export function createMemoryStore(opts: MemoryStoreOptions = {}): Store {
  const now = opts.now ?? Date.now;
  const logger = opts.log ?? consoleLogger;
  let closed = false;

  const live = (): void => {
    if (closed) throw new StoreUnavailableError('store is closed');
  };
  /** Like the Redis store, every call is async and reports a closed store as a rejection. */
  const op =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    async (...args: A): Promise<Awaited<R>> => {
      live();
      return await fn(...args);
    };

  const presenceMap = new Map<string, Expiring<string>>();
  const leases = new Map<string, Expiring<true>>();
  /** Per host, the nodes it has held (until the host is cleared), like the Redis set. */
  const hostNodes = new Map<string, Set<string>>();
  const heartbeatMap = new Map<string, Expiring<string>>();
  const fixedWindows = new Map<string, Expiring<number>>();
  const slidingLogs = new Map<string, Expiring<number[]>>();
  const lockMap = new Map<string, Expiring<string>>();

  const read = <T>(map: Map<string, Expiring<T>>, key: string): T | undefined => {
    const entry = map.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now()) {
      map.delete(key);
      return undefined;
    }
    return entry.value;
  };
  const write = <T>(map: Map<string, Expiring<T>>, key: string, value: T, ttlMs: number): void => {
    map.set(key, { value, expiresAt: now() + ttlMs });
  };

  const sweep = setInterval(() => {
    for (const map of [presenceMap, leases, heartbeatMap, fixedWindows, slidingLogs, lockMap]) {
      for (const key of map.keys()) read(map as Map<string, Expiring<unknown>>, key);
    }
  }, SWEEP_MS);
  sweep.unref();

  /** The holder of `nodeId` when both its entry and the holder's lease live. */
  const holderOf = (nodeId: string): string | undefined => {
    const holder = read(presenceMap, nodeId);
    return holder !== undefined && read(leases, holder) !== undefined ? holder : undefined;
  };
  const clearHost = (hostId: string): string[] => {
    const offline: string[] = [];
    for (const nodeId of hostNodes.get(hostId) ?? []) {
      const holder = read(presenceMap, nodeId);
      if (holder === hostId) presenceMap.delete(nodeId);
      if (holder === hostId || holderOf(nodeId) === undefined) offline.push(nodeId);
    }
    hostNodes.delete(hostId);
    leases.delete(hostId);
    return offline;
  };

  const presence: Presence = {
    set: op((nodeId: string, hostId: string, ttlMs: number) => {
      assertDuration('ttlMs', ttlMs);
      const previous = read(presenceMap, nodeId);
      if (previous !== undefined && previous !== hostId) hostNodes.get(previous)?.delete(nodeId);
      write(presenceMap, nodeId, hostId, ttlMs);
      hostNodes.set(hostId, (hostNodes.get(hostId) ?? new Set()).add(nodeId));
    }),
    get: op((nodeId: string) => holderOf(nodeId) ?? null),
    remove: op((nodeId: string, hostId?: string) => {
      const holder = read(presenceMap, nodeId);
      if (holder === undefined || (hostId !== undefined && holder !== hostId)) return false;
      hostNodes.get(holder)?.delete(nodeId);
      return presenceMap.delete(nodeId);
    }),
    online: op((nodeIds: readonly string[]) => {
      const result = new Map<string, string>();
      for (const id of nodeIds) {
        const holder = holderOf(id);
        if (holder !== undefined) result.set(id, holder);
      }
      return result;
    }),
    list: op(() => presence.online([...presenceMap.keys()])),
    renewHost: op((hostId: string, ttlMs: number) => {
      assertDuration('ttlMs', ttlMs);
      const wasLive = read(leases, hostId) !== undefined;
      write(leases, hostId, true, ttlMs);
      return wasLive;
    }),
    clearHost: op(clearHost),
    clearExpiredHosts: op(() => {
      const cleared = new Map<string, string[]>();
      for (const hostId of new Set([...hostNodes.keys(), ...leases.keys()])) {
        if (read(leases, hostId) === undefined) cleared.set(hostId, clearHost(hostId));
      }
      return cleared;
    }),
  };

  const heartbeats: Heartbeats = {
    put: op((nodeId: string, data: object, ttlMs: number) => {
      assertDuration('ttlMs', ttlMs);
      write(heartbeatMap, nodeId, JSON.stringify(data), ttlMs);
    }),
    get: async <T extends object>(nodeId: string) => {
      live();
      const json = read(heartbeatMap, nodeId);
      return json === undefined ? null : (JSON.parse(json) as T);
    },
    getMany: async <T extends object>(nodeIds: readonly string[]) => {
      live();
      const result = new Map<string, T>();
      for (const id of nodeIds) {
        const json = read(heartbeatMap, id);
        if (json !== undefined) result.set(id, JSON.parse(json) as T);
      }
      return result;
    },
  };

  const rateLimiter: RateLimiter = {
    hit: op((key: string, limit: number, windowMs: number, o?: { algorithm?: RateLimitAlgorithm }) => {
      assertLimit(limit);
      assertDuration('windowMs', windowMs);
      const t = now();
      const result = (allowed: boolean, count: number, resetMs: number): RateLimitResult => ({
        allowed,
        count,
        remaining: limit - count,
        resetMs: Math.max(0, resetMs),
      });
      if ((o?.algorithm ?? 'fixed') === 'fixed') {
        // The window opens at the first allowed hit and lasts windowMs, like INCR + PEXPIRE.
        let entry = fixedWindows.get(key);
        if (entry && entry.expiresAt <= t) entry = undefined;
        const count = entry?.value ?? 0;
        if (count >= limit) return result(false, count, entry ? entry.expiresAt - t : 0);
        if (!entry) {
          entry = { value: 0, expiresAt: t + windowMs };
          fixedWindows.set(key, entry);
        }
        entry.value += 1;
        return result(true, entry.value, entry.expiresAt - t);
      }
      // Sliding log: a hit at time s counts while t - s < windowMs (same boundary as the Lua script).
      const hits = (slidingLogs.get(key)?.value ?? []).filter((s) => s > t - windowMs);
      const allowed = hits.length < limit;
      if (allowed) hits.push(t);
      const newest = hits.at(-1);
      if (newest === undefined) slidingLogs.delete(key);
      else slidingLogs.set(key, { value: hits, expiresAt: newest + windowMs });
      return result(allowed, hits.length, hits.length > 0 ? (hits[0] as number) + windowMs - t : 0);
    }),
  };

  const channels = new Map<string, Set<{ handler: MessageHandler }>>();
  const pubsub: PubSub = {
    publish: op((channel: string, message: string) => {
      const subs = channels.get(channel);
      if (!subs) return;
      // Receivers are fixed at publish time, like Redis; delivery is always on a later tick, in order.
      const receivers = [...subs];
      setImmediate(() => {
        for (const sub of receivers) {
          if (!closed && subs.has(sub)) {
            deliver(sub.handler, message, (err) => logger.warn({ err, channel }, 'pubsub handler failed'));
          }
        }
      });
    }),
    subscribe: op((channel: string, handler: MessageHandler) => {
      const sub = { handler };
      const subs = channels.get(channel) ?? new Set();
      channels.set(channel, subs.add(sub));
      return async () => {
        subs.delete(sub);
        if (subs.size === 0 && channels.get(channel) === subs) channels.delete(channel);
      };
    }),
  };

  const release = op((name: string, token: string) => {
    if (read(lockMap, name) !== token) return false;
    return lockMap.delete(name);
  });
  const extend = op((name: string, token: string, ttlMs: number) => {
    if (read(lockMap, name) !== token) return false;
    write(lockMap, name, token, ttlMs);
    return true;
  });
  const acquire = op((name: string, ttlMs: number): Lock | null => {
    assertDuration('ttlMs', ttlMs);
    if (read(lockMap, name) !== undefined) return null;
    const token = randomUUID();
    write(lockMap, name, token, ttlMs);
    return makeLock(name, token, release, extend);
  });
  const locks: Locks = {
    acquire,
    release,
    withLock: (name, ttlMs, fn, o) => withLockPolling(acquire, name, ttlMs, fn, o),
  };

  return {
    kind: 'memory',
    keyPrefix: opts.keyPrefix ?? DEFAULT_KEY_PREFIX,
    presence,
    heartbeats,
    rateLimiter,
    pubsub,
    locks,
    ping: op(() => 0),
    close: async () => {
      closed = true;
      clearInterval(sweep);
      channels.clear();
    },
  };
}
