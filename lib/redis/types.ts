/**
 * Narrow interfaces over the coordinator's ephemeral state (presence, heartbeats, rate limits, pub/sub,
 * short locks). `redis.ts` implements them on Redis, `memory.ts` in-process with the same semantics, so
 * callers and tests never depend on which one runs.
 *
 * Durations are integer milliseconds ≥ 1 (Redis rejects anything else in PX/PEXPIRE; both
 * implementations throw a RangeError up front instead).
 */

export type StoreKind = 'redis' | 'memory';

/**
 * Which host (api process) currently holds each compute node, and which hosts are alive. A node is
 * online while its presence entry lives **and** its holder holds a live host lease: each api process
 * renews its lease every few seconds, so a killed one's nodes drop out of `get`/`online`/`list` within
 * the lease TTL, long before their own entries expire. The store also keeps, per host, the ids of the
 * nodes it has held, so what a dead or restarted host left behind can be found and cleared.
 * @example
 * await store.presence.renewHost(config.hostId, 6_000); // every 2 s while the process lives
 * await store.presence.set('node-7', config.hostId, 15_000);
 * const held = await store.presence.online(['node-7', 'node-8']); // Map { 'node-7' => 'host-a' }
 */
export interface Presence {
  /** Mark `nodeId` held by `hostId` for `ttlMs` (overwrites the holder and TTL), and list it under the host. */
  set(nodeId: string, hostId: string, ttlMs: number): Promise<void>;
  /** The host holding `nodeId`, or null when the node is offline (no entry, or its host has no lease). */
  get(nodeId: string): Promise<string | null>;
  /**
   * Drop `nodeId`'s entry. With `hostId`, only if that host still holds it, so a host shutting down
   * cannot evict a node that another host has taken over. Resolves true when an entry was removed.
   */
  remove(nodeId: string, hostId?: string): Promise<boolean>;
  /** The online subset of `nodeIds` with each holder (one round trip on Redis); offline ids are absent. */
  online(nodeIds: readonly string[]): Promise<Map<string, string>>;
  /** Every online node with its holder, without SCAN (Redis keeps a sorted set of expiries). */
  list(): Promise<Map<string, string>>;
  /** Take or renew `hostId`'s lease for `ttlMs`. Resolves false when it was not live before (first take, or lapsed). */
  renewHost(hostId: string, ttlMs: number): Promise<boolean>;
  /**
   * Forget `hostId`: drop its lease, the presence entries it still holds and its list of nodes.
   * Resolves with the nodes of that list that are offline now (those another live host holds are not).
   */
  clearHost(hostId: string): Promise<string[]>;
  /**
   * `clearHost` for every host whose lease has expired, each checked and cleared in one atomic step
   * (so a host that renews in between is never cleared). Resolves with each cleared host's offline nodes.
   */
  clearExpiredHosts(): Promise<Map<string, string[]>>;
}

/** Each node's latest heartbeat, stored as JSON (so Dates come back as strings, as with Redis). */
export interface Heartbeats {
  put(nodeId: string, data: object, ttlMs: number): Promise<void>;
  /** The latest heartbeat, or null once it expired. `T` is asserted, not validated: parse at boundaries. */
  get<T extends object = Record<string, unknown>>(nodeId: string): Promise<T | null>;
  /** The live heartbeats among `nodeIds`; missing or expired ones are absent. */
  getMany<T extends object = Record<string, unknown>>(nodeIds: readonly string[]): Promise<Map<string, T>>;
}

/**
 * `fixed`: the window starts at the first hit of a key and lasts `windowMs` (cheap, allows a burst of
 * 2×limit across a window boundary). `sliding`: counts the hits of the last `windowMs` (a log per key).
 */
export type RateLimitAlgorithm = 'fixed' | 'sliding';

export interface RateLimitResult {
  allowed: boolean;
  /** Hits counted in the current window, this one included when allowed (never above `limit`). */
  count: number;
  /** `limit - count`: how many more hits the window allows now. */
  remaining: number;
  /** Milliseconds until the window resets (fixed) or its oldest hit leaves it (sliding); 0 when empty. */
  resetMs: number;
}

/**
 * Windowed counters, atomic per key. Denied hits are not counted, so a client that keeps retrying
 * gets through again as soon as the window allows.
 * @example
 * const r = await store.rateLimiter.hit(`submit:${apiKey}`, 100, 60_000);
 * if (!r.allowed) return c.json({ error: 'rate limited' }, 429, { 'Retry-After': `${Math.ceil(r.resetMs / 1000)}` });
 */
export interface RateLimiter {
  hit(
    key: string,
    limit: number,
    windowMs: number,
    opts?: { algorithm?: RateLimitAlgorithm },
  ): Promise<RateLimitResult>;
}

export type MessageHandler = (message: string) => void | Promise<void>;

/**
 * Fire-and-forget broadcast, like Redis PUBLISH: only current subscribers receive a message, in
 * publication order, always asynchronously. A handler that throws is logged, never breaks delivery.
 * @example
 * const off = await store.pubsub.subscribe('task-events', (m) => onEvent(JSON.parse(m)));
 * await store.pubsub.publish('task-events', JSON.stringify(event));
 * await off();
 */
export interface PubSub {
  publish(channel: string, message: string): Promise<void>;
  /** Resolves once subscribed (messages published afterwards are delivered) with an idempotent unsubscribe. */
  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>>;
}

/** A held lock. Its random token is what makes release/extend safe after the TTL passed. */
export interface Lock {
  readonly name: string;
  readonly token: string;
  /** Release if still held by this token; false when it had expired (and maybe been taken since). */
  release(): Promise<boolean>;
  /** Reset the TTL to `ttlMs` if still held by this token. */
  extend(ttlMs: number): Promise<boolean>;
}

export interface WithLockOptions {
  /** Give up with a {@link LockTimeoutError} after waiting this long. Default 10 000. */
  waitMs?: number;
  /** Base delay between attempts, jittered ×0.5–1.5. Default 25. */
  retryMs?: number;
}

/**
 * Short mutual-exclusion locks with a TTL (SET NX PX + compare-and-delete on Redis). Not fencing:
 * pick a TTL well above the critical section, or `extend` it.
 * @example
 * await store.locks.withLock(`assign:${taskId}`, 5_000, async () => assign(taskId));
 */
export interface Locks {
  /** Take the lock now or resolve null when someone else holds it. */
  acquire(name: string, ttlMs: number): Promise<Lock | null>;
  /** Compare-and-delete: releases only when `token` still holds `name`. */
  release(name: string, token: string): Promise<boolean>;
  /** Wait for the lock (polling), run `fn`, release even when `fn` throws. */
  withLock<T>(
    name: string,
    ttlMs: number,
    fn: (lock: Lock) => Promise<T>,
    opts?: WithLockOptions,
  ): Promise<T>;
}

/** The bundle the coordinator passes around. */
export interface Store {
  readonly kind: StoreKind;
  /** Prepended to every key and channel, default `ng:`. */
  readonly keyPrefix: string;
  readonly presence: Presence;
  readonly heartbeats: Heartbeats;
  readonly rateLimiter: RateLimiter;
  readonly pubsub: PubSub;
  readonly locks: Locks;
  /** Round-trip latency in ms; rejects (within the command timeout) when the store is unavailable. */
  ping(): Promise<number>;
  /** Close connections and timers; later calls reject with {@link StoreUnavailableError}. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_KEY_PREFIX = 'ng:';

/** The store cannot serve the call: Redis is down or unreachable, or the store was closed. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** `withLock` waited `waitMs` without getting the lock. */
export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

// ---- Helpers shared by both implementations (kept here so they cannot drift apart). ----

/** Throw unless `ms` is a positive integer, the only durations Redis accepts. */
export function assertDuration(what: string, ms: number): void {
  if (!Number.isInteger(ms) || ms < 1) throw new RangeError(`${what} must be an integer ≥ 1 ms, got ${ms}`);
}

export function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 0)
    throw new RangeError(`limit must be an integer ≥ 0, got ${limit}`);
}

/** A Lock object over an implementation's compare-and-delete / compare-and-expire. */
export function makeLock(
  name: string,
  token: string,
  release: (name: string, token: string) => Promise<boolean>,
  extend: (name: string, token: string, ttlMs: number) => Promise<boolean>,
): Lock {
  return {
    name,
    token,
    release: () => release(name, token),
    extend: (ttlMs) => {
      assertDuration('ttlMs', ttlMs);
      return extend(name, token, ttlMs);
    },
  };
}

/** `Locks.withLock` on top of `acquire`: poll with jitter so waiting callers do not retry in lockstep. */
export async function withLockPolling<T>(
  acquire: (name: string, ttlMs: number) => Promise<Lock | null>,
  name: string,
  ttlMs: number,
  fn: (lock: Lock) => Promise<T>,
  { waitMs = 10_000, retryMs = 25 }: WithLockOptions = {},
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lock = await acquire(name, ttlMs);
    if (lock) {
      try {
        return await fn(lock);
      } finally {
        // A release failure (store down) must not mask fn's own result or error; the TTL cleans up.
        await lock.release().catch(() => false);
      }
    }
    if (Date.now() >= deadline) throw new LockTimeoutError(`lock "${name}" not acquired within ${waitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, retryMs * (0.5 + Math.random())));
  }
}

/** Run a subscriber's handler so that neither a throw nor a rejection escapes into the transport. */
export function deliver(handler: MessageHandler, message: string, onError: (err: unknown) => void): void {
  try {
    const result = handler(message);
    if (result instanceof Promise) result.catch(onError);
  } catch (err) {
    onError(err);
  }
}

/** Minimal logger (a pino logger fits): the stores only report connectivity and handler failures. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const consoleLogger: StoreLogger = {
  info: (obj, msg) => console.info(msg, obj),
  warn: (obj, msg) => console.warn(msg, obj),
};
