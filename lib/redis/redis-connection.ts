/** The Redis store's connections: opened to degrade rather than hang, guarded calls, and Lua scripts. */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
import { type StoreLogger, StoreUnavailableError } from './types.js';

export interface RedisStoreOptions {
  /** Prepended to every key and channel. Default `ng:`. */
  keyPrefix?: string;
  /** Bound on one connection attempt, and on how long calls made at startup wait for it. Default 2000. */
  connectTimeoutMs?: number;
  /** Bound on every command, ping included (catches a hung server or half-open socket). Default 2000. */
  commandTimeoutMs?: number;
  /** Receives connection lost/restored transitions and failing subscriber handlers. Default console. */
  log?: StoreLogger;
}

export type Settings = Required<Omit<RedisStoreOptions, 'keyPrefix'>>;

/** Reconnect backoff cap: low enough that a recovered Redis is noticed within about a second. */
const MAX_RECONNECT_DELAY_MS = 1_000;

// Scripts compute "now" with TIME so expiries never depend on the clocks of the coordinator hosts.
export const NOW_LUA = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * One ioredis connection tuned for a service that must degrade, not hang: while Redis is down every
 * call rejects at once with {@link StoreUnavailableError}, and the connection keeps reconnecting.
 */
export function openConnection(url: string, role: string, settings: Settings) {
  const options: RedisOptions = {
    connectTimeout: settings.connectTimeoutMs,
    commandTimeout: settings.commandTimeoutMs,
    // ioredis defaults queue commands while disconnected and replay them on reconnect: callers would
    // hang through an outage and stale writes (INCR, SET NX) would land later. Fail instead.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // A number means "keep reconnecting forever"; subscriptions are restored (autoResubscribe default).
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, MAX_RECONNECT_DELAY_MS),
    // CLIENT SETINFO fails on Redis < 7.2, and a failed command's timeout timer outlives it; name instead.
    disableClientInfo: true,
    connectionName: `neurogrid:${role}`,
  };
  const redis = new Redis(url, options);
  const logger = settings.log;
  let down = false;
  let closed = false;
  let lastError: Error | undefined;

  // Without an 'error' listener ioredis prints every failed reconnect; we report transitions only.
  redis.on('error', (err: Error) => {
    lastError = err;
  });
  redis.on('close', () => {
    if (down || closed) return;
    down = true;
    logger.warn({ role, err: lastError?.message }, 'redis unavailable; reconnecting in the background');
  });
  redis.on('ready', () => {
    if (down) logger.info({ role }, 'redis connection restored');
    down = false;
    lastError = undefined;
  });
  // Settles when the first attempt ends either way; calls made before then wait for it.
  const firstAttempt = new Promise<void>((resolve) => {
    redis.once('ready', resolve);
    redis.once('close', resolve);
  });
  const unavailable = () =>
    new StoreUnavailableError(
      closed ? 'store is closed' : `redis unavailable (${lastError?.message ?? redis.status})`,
    );

  return {
    redis,
    /** Resolve when commands can be sent now; reject immediately when Redis is known to be down. */
    async ready(): Promise<void> {
      if (!closed && !down && redis.status !== 'ready') {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, settings.connectTimeoutMs);
        });
        await Promise.race([firstAttempt, timeout]);
        clearTimeout(timer);
      }
      if (closed || redis.status !== 'ready') throw unavailable();
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}

export type Connection = ReturnType<typeof openConnection>;

/** Connection failures become StoreUnavailableError; Redis error replies (bugs) pass through as they are. */
export async function guarded<T>(conn: Connection, fn: (redis: Redis) => Promise<T>): Promise<T> {
  await conn.ready();
  try {
    return await fn(conn.redis);
  } catch (err) {
    const passThrough = err instanceof ReplyError || err instanceof StoreUnavailableError;
    if (passThrough || !(err instanceof Error)) throw err;
    throw new StoreUnavailableError(`redis: ${err.message}`, { cause: err });
  }
}

/** EVALSHA with a fallback to EVAL the first time a server sees the script. */
export function script(lua: string) {
  const sha = createHash('sha1').update(lua).digest('hex');
  return async (redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await redis.eval(lua, keys.length, ...keys, ...args);
    }
  };
}

/** Runs `fn` on the store's command connection, through {@link guarded}. */
export type Run = <T>(fn: (redis: Redis) => Promise<T>) => Promise<T>;
