import type { Redis } from 'ioredis';
import { guarded, openConnection, type RedisStoreOptions, type Settings } from './redis-connection.js';
import { redisLocks } from './redis-locks.js';
import { redisPresence } from './redis-presence.js';
import { redisPubSub } from './redis-pubsub.js';
import { redisRateLimiter } from './redis-rate-limits.js';
import { assertDuration, consoleLogger, DEFAULT_KEY_PREFIX, type Heartbeats, type Store } from './types.js';

export type { RedisStoreOptions } from './redis-connection.js';

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
  const heartbeatKey = (id: string) => `${p}heartbeat:${id}`;

  const presence = redisPresence(run, p);

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

  const rateLimiter = redisRateLimiter(run, p);
  const locks = redisLocks(run, p);

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
