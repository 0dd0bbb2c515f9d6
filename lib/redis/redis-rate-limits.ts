/** Rate limits on Redis: a fixed-window counter or a sliding log of hit times. */
import { randomUUID } from 'node:crypto';
import { NOW_LUA, type Run, script } from './redis-connection.js';
import { assertDuration, assertLimit, type RateLimiter, type RateLimitResult } from './types.js';

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

const scripts = {
  rateFixed: script(RATE_FIXED),
  rateSliding: script(RATE_SLIDING),
};

/** {@link RateLimiter} under the key prefix `p`. */
export function redisRateLimiter(run: Run, p: string): RateLimiter {
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
  return rateLimiter;
}
