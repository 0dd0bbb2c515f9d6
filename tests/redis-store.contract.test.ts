import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createMemoryStore,
  createRedisStore,
  LockTimeoutError,
  type Store,
  type StoreLogger,
  StoreUnavailableError,
} from '../lib/redis/index.js';

// One contract, two implementations: whatever passes here behaves the same on Redis and in memory.
// Real time throughout (short TTLs and polling) so the very same assertions hold on a real Redis.

const REDIS_URL = process.env.REDIS_URL;
const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
const quiet: StoreLogger = { info: () => {}, warn: () => {} };
const poll = { timeout: 2_000, interval: 20 };
const prefix = () => `test:${randomUUID()}:`;

const implementations = [
  {
    kind: 'memory',
    enabled: true,
    create: (keyPrefix: string) => createMemoryStore({ keyPrefix, log: quiet }),
  },
  {
    kind: 'redis',
    enabled: REDIS_URL !== undefined,
    create: (keyPrefix: string) => createRedisStore(REDIS_URL ?? '', { keyPrefix, log: quiet }),
  },
];

describe.each(implementations)('$kind store', ({ kind, enabled, create }) => {
  describe.skipIf(!enabled)('contract', () => {
    let store: Store;
    beforeEach(() => {
      store = create(prefix());
    });
    afterEach(async () => {
      await store.close();
    });

    it('reports its kind and answers ping with a latency', async () => {
      expect(store.kind).toBe(kind);
      const ms = await store.ping();
      expect(ms).toBeTypeOf('number');
      expect(ms).toBeGreaterThanOrEqual(0);
    });

    describe('presence', () => {
      beforeEach(async () => {
        // Nodes count as online only while their host holds a lease (see 'host leases' below).
        await store.presence.renewHost('host-a', 60_000);
        await store.presence.renewHost('host-b', 60_000);
      });

      it('reports each holder until the TTL passes', async () => {
        await store.presence.set('n1', 'host-a', 150);
        await store.presence.set('n2', 'host-b', 10_000);
        const both = new Map([
          ['n1', 'host-a'],
          ['n2', 'host-b'],
        ]);
        expect(await store.presence.get('n1')).toBe('host-a');
        expect(await store.presence.online(['n1', 'n2', 'n3'])).toEqual(both);
        expect(await store.presence.list()).toEqual(both);
        expect(await store.presence.online([])).toEqual(new Map());

        await vi.waitFor(async () => expect(await store.presence.get('n1')).toBeNull(), poll);
        expect(await store.presence.online(['n1', 'n2'])).toEqual(new Map([['n2', 'host-b']]));
        expect(await store.presence.list()).toEqual(new Map([['n2', 'host-b']]));
      });

      it('set refreshes the TTL and can hand a node to another host', async () => {
        await store.presence.set('n1', 'host-a', 150);
        await sleep(100);
        await store.presence.set('n1', 'host-b', 600);
        await sleep(150); // past the first TTL
        expect(await store.presence.get('n1')).toBe('host-b');
        expect(await store.presence.list()).toEqual(new Map([['n1', 'host-b']]));
      });

      it('remove with a host id only removes the entry that host still holds', async () => {
        await store.presence.set('n1', 'host-a', 10_000);
        expect(await store.presence.remove('n1', 'host-b')).toBe(false);
        expect(await store.presence.get('n1')).toBe('host-a');
        expect(await store.presence.remove('n1', 'host-a')).toBe(true);
        expect(await store.presence.get('n1')).toBeNull();
        expect(await store.presence.list()).toEqual(new Map());
        expect(await store.presence.remove('n1', 'host-a')).toBe(false);

        await store.presence.set('n1', 'host-a', 10_000);
        expect(await store.presence.remove('n1')).toBe(true);
        expect(await store.presence.get('n1')).toBeNull();
      });

      it('rejects durations Redis would refuse', async () => {
        await expect(store.presence.set('n1', 'host-a', 0)).rejects.toThrow(RangeError);
        await expect(store.presence.set('n1', 'host-a', 1.5)).rejects.toThrow(RangeError);
        await expect(store.presence.renewHost('host-a', 0)).rejects.toThrow(RangeError);
      });
    });

    describe('host leases', () => {
      const sorted = async (ids: Promise<string[]>) => (await ids).sort();

      it('a node is online only while its host holds a live lease', async () => {
        await store.presence.set('n1', 'host-a', 10_000);
        expect(await store.presence.get('n1')).toBeNull();
        expect(await store.presence.online(['n1'])).toEqual(new Map());
        expect(await store.presence.list()).toEqual(new Map());

        expect(await store.presence.renewHost('host-a', 200)).toBe(false); // first take
        expect(await store.presence.get('n1')).toBe('host-a');
        expect(await store.presence.online(['n1', 'n2'])).toEqual(new Map([['n1', 'host-a']]));
        expect(await store.presence.list()).toEqual(new Map([['n1', 'host-a']]));

        // The lease expires long before the node's own entry: the node is offline at once.
        await vi.waitFor(async () => expect(await store.presence.get('n1')).toBeNull(), poll);
        expect(await store.presence.online(['n1'])).toEqual(new Map());
        expect(await store.presence.list()).toEqual(new Map());

        expect(await store.presence.renewHost('host-a', 10_000)).toBe(false); // it had lapsed
        expect(await store.presence.get('n1')).toBe('host-a');
      });

      it('renewing keeps the lease past its first TTL', async () => {
        await store.presence.set('n1', 'host-a', 10_000);
        expect(await store.presence.renewHost('host-a', 300)).toBe(false);
        await sleep(150);
        expect(await store.presence.renewHost('host-a', 300)).toBe(true);
        await sleep(200); // past the first TTL
        expect(await store.presence.get('n1')).toBe('host-a');
      });

      it('clearHost drops the lease and its entries, and names its nodes that are offline now', async () => {
        await store.presence.renewHost('host-a', 10_000);
        await store.presence.renewHost('host-b', 10_000);
        await store.presence.set('n1', 'host-a', 10_000);
        await store.presence.set('n2', 'host-a', 10_000);
        await store.presence.set('moved', 'host-a', 10_000);
        await store.presence.set('moved', 'host-b', 10_000); // taken over by a live host
        await store.presence.set('expired', 'host-a', 100);
        await store.presence.set('gone', 'host-a', 10_000);
        await store.presence.remove('gone', 'host-a'); // closed cleanly: no longer the host's
        await vi.waitFor(async () => expect(await store.presence.get('expired')).toBeNull(), poll);

        expect(await sorted(store.presence.clearHost('host-a'))).toEqual(['expired', 'n1', 'n2']);
        expect(await store.presence.list()).toEqual(new Map([['moved', 'host-b']]));
        // A new life of the host takes the lease again: what the old one held stays offline.
        expect(await store.presence.renewHost('host-a', 10_000)).toBe(false);
        expect(await store.presence.online(['n1', 'n2', 'moved'])).toEqual(new Map([['moved', 'host-b']]));
        expect(await store.presence.clearHost('host-a')).toEqual([]);
        expect(await store.presence.clearHost('never-seen')).toEqual([]);
      });

      it('clearExpiredHosts clears only the hosts whose lease expired', async () => {
        await store.presence.renewHost('dead', 150);
        await store.presence.renewHost('alive', 10_000);
        await store.presence.set('n1', 'dead', 10_000);
        await store.presence.set('n2', 'dead', 10_000);
        await store.presence.set('n3', 'alive', 10_000);
        await store.presence.set('orphan', 'never-leased', 10_000);
        expect(await store.presence.clearExpiredHosts()).toEqual(new Map([['never-leased', ['orphan']]]));

        await vi.waitFor(async () => expect(await store.presence.get('n1')).toBeNull(), poll);
        const cleared = await store.presence.clearExpiredHosts();
        expect([...cleared.keys()]).toEqual(['dead']);
        expect(cleared.get('dead')?.sort()).toEqual(['n1', 'n2']);
        expect(await store.presence.clearExpiredHosts()).toEqual(new Map());
        expect(await store.presence.list()).toEqual(new Map([['n3', 'alive']]));
        // Its entries are gone, not just hidden: the host coming back does not bring them back.
        await store.presence.renewHost('dead', 10_000);
        expect(await store.presence.online(['n1', 'n2'])).toEqual(new Map());
      });
    });

    describe('heartbeats', () => {
      it('round-trips JSON (Dates come back as strings)', async () => {
        await store.heartbeats.put('n1', { gpu: 'A100', load: 0.5, at: new Date(0), tags: ['x'] }, 10_000);
        expect(await store.heartbeats.get('n1')).toEqual({
          gpu: 'A100',
          load: 0.5,
          at: '1970-01-01T00:00:00.000Z',
          tags: ['x'],
        });
        expect(await store.heartbeats.get('missing')).toBeNull();
      });

      it('getMany returns the live ones and drops expired ones', async () => {
        await store.heartbeats.put('n1', { seq: 1 }, 150);
        await store.heartbeats.put('n2', { seq: 2 }, 10_000);
        expect(await store.heartbeats.getMany(['n1', 'n2', 'n3'])).toEqual(
          new Map([
            ['n1', { seq: 1 }],
            ['n2', { seq: 2 }],
          ]),
        );
        expect(await store.heartbeats.getMany([])).toEqual(new Map());
        await vi.waitFor(async () => expect(await store.heartbeats.get('n1')).toBeNull(), poll);
        expect(await store.heartbeats.getMany(['n1', 'n2'])).toEqual(new Map([['n2', { seq: 2 }]]));
      });
    });

    describe('rate limiter', () => {
      it('fixed window: allows `limit` hits, denies the next, allows again after the window', async () => {
        const hits = [];
        for (let i = 0; i < 3; i++) hits.push(await store.rateLimiter.hit('k', 3, 300));
        expect(hits.map((r) => [r.allowed, r.count, r.remaining])).toEqual([
          [true, 1, 2],
          [true, 2, 1],
          [true, 3, 0],
        ]);
        for (const r of hits) expect(r.resetMs).toBeGreaterThan(0);
        for (const r of hits) expect(r.resetMs).toBeLessThanOrEqual(300);

        const denied = await store.rateLimiter.hit('k', 3, 300);
        expect(denied).toMatchObject({ allowed: false, count: 3, remaining: 0 });
        expect(denied.resetMs).toBeGreaterThan(0);
        expect(denied.resetMs).toBeLessThanOrEqual(300);
        expect(await store.rateLimiter.hit('other', 3, 300)).toMatchObject({ allowed: true, count: 1 });

        await sleep(denied.resetMs + 50);
        const again = await store.rateLimiter.hit('k', 3, 300);
        expect(again).toMatchObject({ allowed: true, count: 1, remaining: 2 });
        expect(again.resetMs).toBeGreaterThan(200);
      });

      it('sliding window: a hit frees its slot exactly windowMs after it was made', async () => {
        const opts = { algorithm: 'sliding' } as const;
        const first = await store.rateLimiter.hit('k', 2, 600, opts);
        expect(first).toMatchObject({ allowed: true, count: 1, remaining: 1 });
        expect(first.resetMs).toBeGreaterThan(500);
        expect(first.resetMs).toBeLessThanOrEqual(600);
        await sleep(300);
        expect(await store.rateLimiter.hit('k', 2, 600, opts)).toMatchObject({ allowed: true, count: 2 });
        const denied = await store.rateLimiter.hit('k', 2, 600, opts);
        expect(denied).toMatchObject({ allowed: false, count: 2, remaining: 0 });
        // The oldest hit leaves after ~300 ms more.
        expect(denied.resetMs).toBeGreaterThan(100);
        expect(denied.resetMs).toBeLessThanOrEqual(320);

        await sleep(denied.resetMs + 50);
        // Only the first hit has left: a fixed window would have reset to a count of 1 here.
        expect(await store.rateLimiter.hit('k', 2, 600, opts)).toMatchObject({ allowed: true, count: 2 });
        expect(await store.rateLimiter.hit('k', 2, 600, opts)).toMatchObject({ allowed: false, count: 2 });
      });

      it.each(['fixed', 'sliding'] as const)(
        '%s: concurrent hits never exceed the limit',
        async (algorithm) => {
          const results = await Promise.all(
            Array.from({ length: 20 }, () => store.rateLimiter.hit('burst', 5, 10_000, { algorithm })),
          );
          expect(results.filter((r) => r.allowed)).toHaveLength(5);
          expect(results.map((r) => r.count).sort((a, b) => a - b)).toEqual([
            1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
          ]);
        },
      );

      it('a limit of 0 denies everything; bad arguments are refused', async () => {
        expect(await store.rateLimiter.hit('k', 0, 1_000)).toEqual({
          allowed: false,
          count: 0,
          remaining: 0,
          resetMs: 0,
        });
        await expect(store.rateLimiter.hit('k', 1, 0)).rejects.toThrow(RangeError);
        await expect(store.rateLimiter.hit('k', -1, 1_000)).rejects.toThrow(RangeError);
      });
    });

    describe('pub/sub', () => {
      it('delivers in order until unsubscribed', async () => {
        const received: string[] = [];
        const off = await store.pubsub.subscribe('events', (m) => void received.push(m));
        for (const m of ['a', 'b', 'c']) await store.pubsub.publish('events', m);
        await store.pubsub.publish('other-channel', 'x');
        await vi.waitFor(() => expect(received).toEqual(['a', 'b', 'c']), poll);

        await off();
        await off(); // idempotent
        await store.pubsub.publish('events', 'd');
        await sleep(100);
        expect(received).toEqual(['a', 'b', 'c']);
      });

      it('delivers to every subscriber; unsubscribing one keeps the other', async () => {
        const one: string[] = [];
        const two: string[] = [];
        const offOne = await store.pubsub.subscribe('events', (m) => void one.push(m));
        const offTwo = await store.pubsub.subscribe('events', (m) => void two.push(m));
        await store.pubsub.publish('events', 'x');
        await vi.waitFor(() => expect([one, two]).toEqual([['x'], ['x']]), poll);

        await offOne();
        await store.pubsub.publish('events', 'y');
        await vi.waitFor(() => expect(two).toEqual(['x', 'y']), poll);
        await sleep(50);
        expect(one).toEqual(['x']);
        await offTwo();
      });

      it('a failing handler does not stop delivery to the others', async () => {
        const received: string[] = [];
        await store.pubsub.subscribe('events', () => {
          throw new Error('boom');
        });
        await store.pubsub.subscribe('events', async () => {
          throw new Error('async boom');
        });
        await store.pubsub.subscribe('events', (m) => void received.push(m));
        await store.pubsub.publish('events', 'a');
        await store.pubsub.publish('events', 'b');
        await vi.waitFor(() => expect(received).toEqual(['a', 'b']), poll);
      });

      it('another key prefix is another namespace', async () => {
        const other = create(prefix());
        try {
          const received: string[] = [];
          await other.pubsub.subscribe('events', (m) => void received.push(m));
          await store.pubsub.publish('events', 'a');
          await store.presence.renewHost('host-a', 10_000);
          await other.presence.renewHost('host-a', 10_000);
          await store.presence.set('n1', 'host-a', 10_000);
          await sleep(100);
          expect(received).toEqual([]);
          expect(await other.presence.get('n1')).toBeNull();
        } finally {
          await other.close();
        }
      });
    });

    describe('locks', () => {
      it('excludes a second holder; only the token holder can release', async () => {
        const lock = await store.locks.acquire('job', 10_000);
        expect(lock).not.toBeNull();
        expect(await store.locks.acquire('job', 10_000)).toBeNull();
        expect(await store.locks.acquire('other-job', 10_000)).not.toBeNull();

        expect(await store.locks.release('job', 'not-the-token')).toBe(false);
        expect(await store.locks.acquire('job', 10_000)).toBeNull();

        expect(await lock?.release()).toBe(true);
        expect(await lock?.release()).toBe(false);
        expect(await store.locks.acquire('job', 10_000)).not.toBeNull();
      });

      it('expires after its TTL, and the stale holder cannot release the new one', async () => {
        const stale = await store.locks.acquire('job', 150);
        expect(stale).not.toBeNull();
        const fresh = await vi.waitFor(async () => {
          const lock = await store.locks.acquire('job', 10_000);
          expect(lock).not.toBeNull();
          return lock;
        }, poll);
        expect(await stale?.release()).toBe(false);
        expect(await stale?.extend(10_000)).toBe(false);
        expect(await store.locks.acquire('job', 10_000)).toBeNull();
        expect(await fresh?.release()).toBe(true);
      });

      it('extend keeps the lock past its original TTL', async () => {
        const lock = await store.locks.acquire('job', 150);
        expect(await lock?.extend(1_000)).toBe(true);
        await sleep(250);
        expect(await store.locks.acquire('job', 10_000)).toBeNull();
        expect(await lock?.release()).toBe(true);
      });

      it('withLock serialises concurrent callers (no lost updates)', async () => {
        let counter = 0;
        let inside = 0;
        let maxInside = 0;
        await Promise.all(
          Array.from({ length: 10 }, () =>
            store.locks.withLock('counter', 5_000, async () => {
              maxInside = Math.max(maxInside, ++inside);
              const read = counter;
              await sleep(5);
              counter = read + 1;
              inside--;
            }),
          ),
        );
        expect(counter).toBe(10);
        expect(maxInside).toBe(1);
      });

      it('withLock returns the result, releases on throw, and times out while held', async () => {
        expect(await store.locks.withLock('job', 5_000, async (lock) => lock.name)).toBe('job');
        await expect(
          store.locks.withLock('job', 5_000, async () => {
            throw new Error('inside');
          }),
        ).rejects.toThrow('inside');
        const held = await store.locks.acquire('job', 5_000);
        expect(held).not.toBeNull();
        await expect(
          store.locks.withLock('job', 5_000, async () => 1, { waitMs: 100 }),
        ).rejects.toBeInstanceOf(LockTimeoutError);
      });
    });

    it('rejects every call once closed', async () => {
      await store.close();
      await store.close(); // idempotent
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.presence.get('n1')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.pubsub.publish('events', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
    });
  });
});

describe('memory store with an injected clock', () => {
  it('expires entries and windows by that clock alone', async () => {
    let now = 1_000_000;
    const store = createMemoryStore({ now: () => now, log: quiet });
    await store.presence.renewHost('host-a', 60_000);
    await store.presence.set('n1', 'host-a', 1_000);
    await store.heartbeats.put('n1', { seq: 1 }, 1_000);
    const lock = await store.locks.acquire('job', 1_000);
    expect(await store.rateLimiter.hit('k', 1, 1_000)).toMatchObject({ allowed: true, resetMs: 1_000 });

    now += 999;
    expect(await store.presence.get('n1')).toBe('host-a');
    expect(await store.rateLimiter.hit('k', 1, 1_000)).toMatchObject({ allowed: false, resetMs: 1 });

    now += 1;
    expect(await store.presence.get('n1')).toBeNull();
    expect(await store.presence.list()).toEqual(new Map());
    expect(await store.heartbeats.get('n1')).toBeNull();
    expect(await store.locks.acquire('job', 1_000)).not.toBeNull();
    expect(await lock?.release()).toBe(false);
    expect(await store.rateLimiter.hit('k', 1, 1_000)).toMatchObject({ allowed: true, count: 1 });
    await store.close();
  });
});

/** Records what the store logs, to check it reports transitions rather than every reconnect attempt. */
function recordingLogger() {
  const lines: string[] = [];
  const log: StoreLogger = {
    info: (obj, msg) => void lines.push(`${msg} [${(obj as { role?: string }).role}]`),
    warn: (obj, msg) => void lines.push(`${msg} [${(obj as { role?: string }).role}]`),
  };
  return { log, lines };
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let output = '';
  await vi.waitFor(
    () => {
      output += child.stdout?.read()?.toString() ?? '';
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
      expect(output).toContain('Ready to accept connections');
    },
    { timeout: 10_000, interval: 20 },
  );
  child.stdout?.resume();
  return child;
}

async function stopRedisServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

describe.skipIf(REDIS_URL === undefined)('redis store when Redis is unavailable', () => {
  it('fails fast, logs the outage once, and never crashes the process', async () => {
    const { log, lines } = recordingLogger();
    const store = createRedisStore('redis://127.0.0.1:1', { keyPrefix: prefix(), log });
    try {
      for (const call of [
        () => store.ping(),
        () => store.presence.get('n1'),
        () => store.pubsub.subscribe('events', () => {}),
        () => store.pubsub.publish('events', 'a'),
        () => store.locks.acquire('job', 1_000),
      ]) {
        const start = Date.now();
        await expect(call()).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - start).toBeLessThan(2_000);
      }
      await sleep(700); // several reconnect attempts, each an 'error' event nobody else listens to
      const start = Date.now();
      await expect(store.ping()).rejects.toThrow(/redis unavailable \(.*ECONNREFUSED/);
      expect(Date.now() - start).toBeLessThan(100);
      // Once per connection (the subscriber one opened on subscribe), not once per reconnect attempt.
      expect(lines.sort()).toEqual([
        'redis unavailable; reconnecting in the background [command]',
        'redis unavailable; reconnecting in the background [subscriber]',
      ]);
    } finally {
      await store.close();
    }
  });

  it.skipIf(!existsSync(REDIS_SERVER))(
    'recovers when Redis comes back, subscriptions included',
    async () => {
      const port = await freePort();
      let server = await startRedisServer(port);
      const { log, lines } = recordingLogger();
      const store = createRedisStore(`redis://127.0.0.1:${port}`, { keyPrefix: prefix(), log });
      try {
        expect(await store.ping()).toBeTypeOf('number');
        const received: string[] = [];
        await store.pubsub.subscribe('events', (m) => void received.push(m));

        await stopRedisServer(server);
        await vi.waitFor(() => expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError), poll);
        const start = Date.now();
        await expect(store.presence.get('n1')).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - start).toBeLessThan(100);

        server = await startRedisServer(port);
        await vi.waitFor(() => store.ping(), { timeout: 5_000, interval: 50 });
        await store.presence.renewHost('host-a', 10_000);
        await store.presence.set('n1', 'host-a', 10_000);
        expect(await store.presence.get('n1')).toBe('host-a');
        // ioredis resubscribes on its own; publish until the subscriber connection is back too.
        await vi.waitFor(
          async () => {
            await store.pubsub.publish('events', 'after-restart');
            expect(received).toContain('after-restart');
          },
          { timeout: 5_000, interval: 100 },
        );
        expect(lines).toContain('redis connection restored [command]');
        expect(lines).toContain('redis connection restored [subscriber]');
      } finally {
        await store.close();
        await stopRedisServer(server);
      }
    },
    30_000,
  );
});
