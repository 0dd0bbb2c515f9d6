import { createHash, randomUUID } from 'node:crypto';
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
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
  type RateLimiter,
  type RateLimitResult,
  type Store,
  type StoreLogger,
  StoreUnavailableError,
  withLockPolling,
} from './types.js';

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

type Settings = Required<Omit<RedisStoreOptions, 'keyPrefix'>>;

/** Reconnect backoff cap: low enough that a recovered Redis is noticed within about a second. */
const MAX_RECONNECT_DELAY_MS = 1_000;

// Scripts compute "now" with TIME so expiries never depend on the clocks of the coordinator hosts.
const NOW_LUA = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// Presence keys (after the prefix): `presence:<node>` → host, `presence-index` (node → expiry),
// `host:<host>` (the host's lease), `host-nodes:<host>` (set of the nodes it has held), `hosts` (set of
// hosts with a lease or a node set). A holder's keys are only known once its entry is read, so these
// scripts build them from the prefix (ARGV[1]): fine on one Redis, not on Redis Cluster. The two sets
// live a day past their last write: ample for a live api to clear a dead one, and an abandoned prefix
// still leaves nothing behind.
const HOST_RECORD_MS = 24 * 3600 * 1000;

/** KEYS: node key, index. ARGV: prefix, hostId, ttlMs, nodeId. The index scores each node by its expiry. */
const PRESENCE_SET = `${NOW_LUA}
local p, host, ttl, node = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local previous = redis.call('GET', KEYS[1])
if previous and previous ~= host then redis.call('SREM', p .. 'host-nodes:' .. previous, node) end
redis.call('SET', KEYS[1], host, 'PX', ttl)
redis.call('SADD', p .. 'host-nodes:' .. host, node)
redis.call('SADD', p .. 'hosts', host)
redis.call('PEXPIRE', p .. 'host-nodes:' .. host, ${HOST_RECORD_MS})
redis.call('PEXPIRE', p .. 'hosts', ${HOST_RECORD_MS})
redis.call('ZADD', KEYS[2], string.format('%d', now + ttl), node)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', now))
-- The index outlives its longest entry and no more, so an abandoned prefix leaves nothing behind.
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1`;

/** KEYS: node key, index. ARGV: prefix, nodeId, '1' to check the holder, hostId. */
const PRESENCE_REMOVE = `local holder = redis.call('GET', KEYS[1])
if not holder or (ARGV[3] == '1' and holder ~= ARGV[4]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', ARGV[1] .. 'host-nodes:' .. holder, ARGV[2])
return redis.call('DEL', KEYS[1])`;

/** KEYS: node keys. ARGV: prefix. Each node's holder, or false when it has no entry or its holder no lease. */
const PRESENCE_ONLINE = `local live, result = {}, {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and live[holder] == nil then live[holder] = redis.call('EXISTS', ARGV[1] .. 'host:' .. holder) == 1 end
  result[i] = holder and live[holder] and holder or false
end
return result`;

/** KEYS: index. Drops expired ids and returns the rest (their keys are the truth: the caller checks them). */
const PRESENCE_IDS = `${NOW_LUA}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

/** KEYS: lease, hosts. ARGV: hostId, ttlMs. Returns 1 when the lease was live before. */
const HOST_RENEW = `local was = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ${HOST_RECORD_MS})
return was`;

/** Forget one host (lease, its entries, its node set); returns its nodes that are offline now. */
const CLEAR_HOST_LUA = `local p = ARGV[1]
local function live(host) return redis.call('EXISTS', p .. 'host:' .. host) == 1 end
local function clear(host)
  local nodesKey, offline = p .. 'host-nodes:' .. host, {}
  for _, node in ipairs(redis.call('SMEMBERS', nodesKey)) do
    local key = p .. 'presence:' .. node
    local holder = redis.call('GET', key)
    if holder == host then
      redis.call('DEL', key)
      redis.call('ZREM', p .. 'presence-index', node)
    end
    if holder == host or not holder or not live(holder) then offline[#offline + 1] = node end
  end
  redis.call('DEL', nodesKey, p .. 'host:' .. host)
  redis.call('SREM', p .. 'hosts', host)
  return offline
end`;

/** ARGV: prefix, hostId. */
const HOST_CLEAR = `${CLEAR_HOST_LUA}
return clear(ARGV[2])`;

/** ARGV: prefix. Returns {host, {nodes…}, host, {nodes…}, …} for each host cleared. */
const HOSTS_CLEAR_EXPIRED = `${CLEAR_HOST_LUA}
local result = {}
for _, host in ipairs(redis.call('SMEMBERS', p .. 'hosts')) do
  if not live(host) then
    result[#result + 1] = host
    result[#result + 1] = clear(host)
  end
end
return result`;

/** KEYS: counter. ARGV: limit, windowMs. Returns {allowed, count, resetMs}; denied hits are not counted. */
const RATE_FIXED = `local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= limit then return {0, count, math.max(redis.call('PTTL', KEYS[1]), 0)} end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], window) end
return {1, count, redis.call('PTTL', KEYS[1])}`;

/** KEYS: log (sorted set of hit times). ARGV: limit, windowMs, unique member. Returns {allowed, count, resetMs}. */
const RATE_SLIDING = `${NOW_LUA}
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  count, allowed = count + 1, 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = 0
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, count, reset}`;

/** KEYS: lock. ARGV: token. Compare-and-delete, so an expired holder cannot free someone else's lock. */
const LOCK_RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** KEYS: lock. ARGV: token, ttlMs. */
const LOCK_EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * One ioredis connection tuned for a service that must degrade, not hang: while Redis is down every
 * call rejects at once with {@link StoreUnavailableError}, and the connection keeps reconnecting.
 */
function openConnection(url: string, role: string, settings: Settings) {
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

type Connection = ReturnType<typeof openConnection>;

/** Connection failures become StoreUnavailableError; Redis error replies (bugs) pass through as they are. */
async function guarded<T>(conn: Connection, fn: (redis: Redis) => Promise<T>): Promise<T> {
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
function script(lua: string) {
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

const scripts = {
  presenceSet: script(PRESENCE_SET),
  presenceRemove: script(PRESENCE_REMOVE),
  presenceOnline: script(PRESENCE_ONLINE),
  presenceIds: script(PRESENCE_IDS),
  hostRenew: script(HOST_RENEW),
  hostClear: script(HOST_CLEAR),
  hostsClearExpired: script(HOSTS_CLEAR_EXPIRED),
  rateFixed: script(RATE_FIXED),
  rateSliding: script(RATE_SLIDING),
  lockRelease: script(LOCK_RELEASE),
  lockExtend: script(LOCK_EXTEND),
};

/**
 * {@link Store} on Redis. Returns at once and connects in the background; calls made before the first
 * connection wait for it (up to `connectTimeoutMs`), calls made while Redis is down reject at once.
 * @example const store = createRedisStore(config.REDIS_URL, { keyPrefix: 'ng:' });
 */
export function createRedisStore(url: string, opts: RedisStoreOptions = {}): Store {
  const p = opts.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const settings: Settings = {
    connectTimeoutMs: opts.connectTimeoutMs ?? 2_000,
    commandTimeoutMs: opts.commandTimeoutMs ?? 2_000,
    log: opts.log ?? consoleLogger,
  };
  const command = openConnection(url, 'command', settings);
  const run = <T>(fn: (redis: Redis) => Promise<T>) => guarded(command, fn);
  const nodeKey = (id: string) => `${p}presence:${id}`;
  const indexKey = `${p}presence-index`;
  const heartbeatKey = (id: string) => `${p}heartbeat:${id}`;
  const lockKey = (name: string) => `${p}lock:${name}`;

  const online = async (ids: readonly string[]): Promise<Map<string, string>> => {
    const result = new Map<string, string>();
    if (ids.length === 0) return result;
    const holders = (await run((r) => scripts.presenceOnline(r, ids.map(nodeKey), [p]))) as (string | null)[];
    ids.forEach((id, i) => {
      const holder = holders[i];
      if (holder != null) result.set(id, holder);
    });
    return result;
  };
  const presence: Presence = {
    set: async (nodeId, hostId, ttlMs) => {
      assertDuration('ttlMs', ttlMs);
      await run((r) => scripts.presenceSet(r, [nodeKey(nodeId), indexKey], [p, hostId, ttlMs, nodeId]));
    },
    get: async (nodeId) => (await online([nodeId])).get(nodeId) ?? null,
    remove: async (nodeId, hostId) => {
      const args = [p, nodeId, hostId === undefined ? '0' : '1', hostId ?? ''];
      return (await run((r) => scripts.presenceRemove(r, [nodeKey(nodeId), indexKey], args))) === 1;
    },
    online,
    list: async () => online((await run((r) => scripts.presenceIds(r, [indexKey], []))) as string[]),
    renewHost: async (hostId, ttlMs) => {
      assertDuration('ttlMs', ttlMs);
      return (
        (await run((r) => scripts.hostRenew(r, [`${p}host:${hostId}`, `${p}hosts`], [hostId, ttlMs]))) === 1
      );
    },
    clearHost: async (hostId) => (await run((r) => scripts.hostClear(r, [], [p, hostId]))) as string[],
    clearExpiredHosts: async () => {
      const reply = (await run((r) => scripts.hostsClearExpired(r, [], [p]))) as (string | string[])[];
      const cleared = new Map<string, string[]>();
      for (let i = 0; i < reply.length; i += 2) cleared.set(reply[i] as string, reply[i + 1] as string[]);
      return cleared;
    },
  };

  const heartbeats: Heartbeats = {
    put: async (nodeId, data, ttlMs) => {
      assertDuration('ttlMs', ttlMs);
      await run((r) => r.set(heartbeatKey(nodeId), JSON.stringify(data), 'PX', ttlMs));
    },
    get: async <T extends object>(nodeId: string) => {
      const json = await run((r) => r.get(heartbeatKey(nodeId)));
      return json === null ? null : (JSON.parse(json) as T);
    },
    getMany: async <T extends object>(nodeIds: readonly string[]) => {
      const result = new Map<string, T>();
      if (nodeIds.length === 0) return result;
      const values = await run((r) => r.mget(nodeIds.map(heartbeatKey)));
      nodeIds.forEach((id, i) => {
        const json = values[i];
        if (json != null) result.set(id, JSON.parse(json) as T);
      });
      return result;
    },
  };

  const rateLimiter: RateLimiter = {
    hit: async (key, limit, windowMs, o) => {
      assertLimit(limit);
      assertDuration('windowMs', windowMs);
      const sliding = o?.algorithm === 'sliding';
      const reply = await run((r) =>
        sliding
          ? scripts.rateSliding(r, [`${p}ratelimit:sliding:${key}`], [limit, windowMs, randomUUID()])
          : scripts.rateFixed(r, [`${p}ratelimit:fixed:${key}`], [limit, windowMs]),
      );
      const [allowed, count, resetMs] = reply as [number, number, number];
      const result: RateLimitResult = {
        allowed: allowed === 1,
        count,
        remaining: limit - count,
        resetMs: Math.max(0, resetMs),
      };
      return result;
    },
  };

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

  const pubsub = redisPubSub(url, p, settings, command);

  return {
    kind: 'redis',
    keyPrefix: p,
    presence,
    heartbeats,
    rateLimiter,
    pubsub,
    locks,
    ping: () =>
      run(async (r) => {
        const start = performance.now();
        await r.ping();
        return performance.now() - start;
      }),
    close: async () => {
      await Promise.all([command.close(), pubsub.close()]);
    },
  };
}

/**
 * Pub/sub over a dedicated subscriber connection (a connection in subscribe mode can run nothing else),
 * opened on the first subscribe. Each channel is subscribed once in Redis however many local handlers
 * it has; ioredis resubscribes by itself after a reconnect.
 */
function redisPubSub(
  url: string,
  prefix: string,
  settings: Settings,
  command: Connection,
): PubSub & { close(): Promise<void> } {
  interface Channel {
    subs: Set<{ handler: MessageHandler }>;
    /** Settles when Redis confirmed SUBSCRIBE; later handlers of the channel wait on it too. */
    subscribed: Promise<void>;
  }
  const channels = new Map<string, Channel>();
  let subscriber: Connection | undefined;
  let closed = false;

  const connection = (): Connection => {
    if (closed) throw new StoreUnavailableError('store is closed');
    if (!subscriber) {
      subscriber = openConnection(url, 'subscriber', settings);
      subscriber.redis.on('message', (name: string, message: string) => {
        for (const sub of [...(channels.get(name)?.subs ?? [])]) {
          deliver(sub.handler, message, (err) =>
            settings.log.warn({ err, channel: name }, 'pubsub handler failed'),
          );
        }
      });
    }
    return subscriber;
  };

  return {
    publish: async (channel, message) => {
      await guarded(command, (r) => r.publish(prefix + channel, message));
    },
    subscribe: async (channel, handler) => {
      const name = prefix + channel;
      const conn = connection();
      let entry = channels.get(name);
      if (!entry) {
        const subscribed = guarded(conn, (r) => r.subscribe(name)).then(() => undefined);
        const created: Channel = { subs: new Set(), subscribed };
        entry = created;
        channels.set(name, created);
        subscribed.catch(() => {
          if (channels.get(name) === created) channels.delete(name);
        });
      }
      const sub = { handler };
      entry.subs.add(sub);
      try {
        await entry.subscribed;
      } catch (err) {
        entry.subs.delete(sub);
        throw err;
      }
      const current = entry;
      let active = true;
      return async () => {
        if (!active) return;
        active = false;
        current.subs.delete(sub);
        if (current.subs.size > 0 || channels.get(name) !== current) return;
        channels.delete(name);
        // Issued synchronously after the delete, so a SUBSCRIBE from a newer subscribe() queues behind it.
        // If Redis is down this fails and ioredis may resubscribe later: harmless, nobody listens locally.
        await conn.redis.unsubscribe(name).catch(() => undefined);
      };
    },
    close: async () => {
      closed = true;
      channels.clear();
      await subscriber?.close();
    },
  };
}
