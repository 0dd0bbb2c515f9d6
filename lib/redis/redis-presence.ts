/** Node presence and host leases on Redis: which api host holds each node's socket, while its lease lives. */
import { NOW_LUA, type Run, script } from './redis-connection.js';
import { assertDuration, type Presence } from './types.js';

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

const scripts = {
  presenceSet: script(PRESENCE_SET),
  presenceRemove: script(PRESENCE_REMOVE),
  presenceOnline: script(PRESENCE_ONLINE),
  presenceIds: script(PRESENCE_IDS),
  hostRenew: script(HOST_RENEW),
  hostClear: script(HOST_CLEAR),
  hostsClearExpired: script(HOSTS_CLEAR_EXPIRED),
};

/** {@link Presence} under the key prefix `p`. */
export function redisPresence(run: Run, p: string): Presence {
  const nodeKey = (id: string) => `${p}presence:${id}`;
  const indexKey = `${p}presence-index`;

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
  return presence;
}
