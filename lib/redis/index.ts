import { createMemoryStore, type MemoryStoreOptions } from './memory.js';
import { createRedisStore, type RedisStoreOptions } from './redis.js';
import type { Store } from './types.js';

export { createMemoryStore, type MemoryStoreOptions } from './memory.js';
export { createRedisStore, type RedisStoreOptions } from './redis.js';
export * from './types.js';

/** Options for either implementation; each ignores what does not apply to it. */
export type StoreOptions = RedisStoreOptions & MemoryStoreOptions;

/**
 * Redis when a URL is configured, otherwise the in-process store (single-process development only:
 * presence, locks and rate limits are then not shared between processes).
 * @example const store = createStore(config.REDIS_URL, { keyPrefix: 'ng:' });
 */
export function createStore(redisUrl: string | undefined, opts: StoreOptions = {}): Store {
  return redisUrl ? createRedisStore(redisUrl, opts) : createMemoryStore(opts);
}
