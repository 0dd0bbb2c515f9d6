import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Config } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import {
  MAX_PENDING_NODES,
  NodeWriteBatch,
  nodeWrites,
  type PendingSample,
  startNodeFlusher,
} from '../lib/nodes/flush.js';
import type { HeartbeatRecord } from '../lib/nodes/heartbeat.js';
import { apiClient, eventually, useCoordinator } from './helpers/coordinator.js';
import { connectRawNode, type RawNode } from './helpers/raw-node.js';

const FLUSH_MS = 2_000;
const SAMPLE_MS = 1_000;

/** A write the triggers below saw: one statement, and the node of each row it changed. */
interface LoggedWrite {
  kind: 'last_seen' | 'samples';
  ids: string[];
  loggedAt: Date;
}

// Heartbeats touch only the store; `last_seen_at` and the metric samples reach PostgreSQL in one
// statement each per NODE_FLUSH_INTERVAL_MS. Statement-level triggers log every write PostgreSQL
// receives (with the nodes it touched), so the test counts statements as the database sees them.
describe('heartbeat batching', () => {
  const suite = useCoordinator({
    NODE_FLUSH_INTERVAL_MS: String(FLUSH_MS),
    METRICS_SAMPLE_INTERVAL_MS: String(SAMPLE_MS),
    // Long enough that waiting for a flush without sending frames keeps the socket.
    NODE_PRESENCE_TTL_MS: '10000',
  });
  const prisma = () => suite.coordinator.services.prisma;
  const raws: RawNode[] = [];
  afterEach(async () => {
    await Promise.all(raws.splice(0).map((r) => r.close()));
  });

  beforeAll(async () => {
    for (const sql of [
      `CREATE TABLE write_log (kind text NOT NULL, ids uuid[] NOT NULL, logged_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE FUNCTION log_last_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         INSERT INTO write_log (kind, ids)
           SELECT 'last_seen', array_agg(n.id) FROM n JOIN o USING (id)
           WHERE n.last_seen_at IS DISTINCT FROM o.last_seen_at HAVING count(*) > 0;
         RETURN NULL; END $$`,
      `CREATE TRIGGER log_last_seen AFTER UPDATE ON nodes REFERENCING OLD TABLE AS o NEW TABLE AS n
         FOR EACH STATEMENT EXECUTE FUNCTION log_last_seen()`,
      `CREATE FUNCTION log_samples() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         INSERT INTO write_log (kind, ids) SELECT 'samples', array_agg(node_id) FROM inserted HAVING count(*) > 0;
         RETURN NULL; END $$`,
      `CREATE TRIGGER log_samples AFTER INSERT ON node_metric_samples REFERENCING NEW TABLE AS inserted
         FOR EACH STATEMENT EXECUTE FUNCTION log_samples()`,
    ]) {
      await prisma().$executeRawUnsafe(sql);
    }
  });

  /** The logged writes that touched `nodeId`, oldest first. */
  async function writesFor(nodeId: string): Promise<LoggedWrite[]> {
    const rows = await prisma().$queryRaw<
      Array<{ kind: LoggedWrite['kind']; ids: string[]; logged_at: Date }>
    >`
      SELECT kind, ids::text[] AS ids, logged_at FROM write_log WHERE ${nodeId}::uuid = ANY(ids) ORDER BY logged_at`;
    return rows.map((r) => ({ kind: r.kind, ids: r.ids, loggedAt: r.logged_at }));
  }
  const lastSeenRow = async (nodeId: string) =>
    (await prisma().node.findUniqueOrThrow({ where: { id: nodeId } })).lastSeenAt;
  const samplesOf = (nodeId: string) =>
    prisma().nodeMetricSample.findMany({ where: { nodeId }, orderBy: { at: 'asc' } });
  const storedAt = async (nodeId: string) =>
    new Date(
      (await suite.coordinator.services.store.heartbeats.get<HeartbeatRecord>(nodeId))?.at ?? Number.NaN,
    );

  async function helloNode(name: string) {
    const { nodeId, key } = await suite.s.registerNode(name);
    const raw = await connectRawNode(suite.coordinator.url, key);
    raws.push(raw);
    await raw.hello();
    return { nodeId, key, raw };
  }
  async function heartbeat(raw: RawNode, load: number) {
    raw.send({ v: 1, type: 'heartbeat', load, inflight: 1, metrics: { gpuUtil: load, memUsedMb: 1_024 } });
    await raw.take((f) => f.type === 'ack' && f.of === 'heartbeat', 5_000);
  }

  it('answers a burst of heartbeats from the store alone, then writes last_seen_at and the sample in one flush', async () => {
    const { nodeId, key, raw } = await helloNode('burst');
    // The hello's last-seen time arrives with the next flush, and no sample with it.
    const [helloWrite] = await eventually(
      async () => ((await writesFor(nodeId)).length > 0 ? writesFor(nodeId) : undefined),
      FLUSH_MS + 5_000,
      "the hello's flush",
    );
    expect(helloWrite?.kind).toBe('last_seen');
    const flushedAt = helloWrite?.loggedAt as Date;
    const rowBefore = await lastSeenRow(nodeId);
    expect(rowBefore).not.toBeNull();

    const HEARTBEATS = 50;
    for (let i = 0; i < HEARTBEATS; i++) await heartbeat(raw, i / HEARTBEATS);
    const burstMs = Date.now() - flushedAt.getTime();
    // What follows holds only while the next flush has not come yet (50 local round trips take far less).
    expect(burstMs).toBeLessThan(FLUSH_MS / 2);

    // Nothing reached PostgreSQL: the row still has the hello's time and there is no sample...
    expect(await writesFor(nodeId)).toHaveLength(1);
    expect(await lastSeenRow(nodeId)).toEqual(rowBefore);
    expect(await samplesOf(nodeId)).toEqual([]);
    // ...while the REST view shows the fresher last-seen time from the store.
    const latest = await storedAt(nodeId);
    expect(latest.getTime()).toBeGreaterThan((rowBefore as Date).getTime());
    const view = await apiClient(suite.coordinator.url, key).get(`/api/nodes/${nodeId}`);
    expect(view.body.node.lastSeenAt).toBe(latest.toISOString());

    // The next flush: one UPDATE setting the last heartbeat's time, one INSERT with the burst's sample(s).
    const writes = await eventually(
      async () => {
        const w = await writesFor(nodeId);
        return w.length >= 3 ? w : undefined;
      },
      FLUSH_MS + 5_000,
      'the next flush',
    );
    expect(
      writes
        .slice(1)
        .map((w) => w.kind)
        .sort(),
    ).toEqual(['last_seen', 'samples']);
    expect(await lastSeenRow(nodeId)).toEqual(latest);
    const samples = await samplesOf(nodeId);
    // Downsampled: the burst's first heartbeat, plus one per further SAMPLE_MS it lasted.
    expect(samples.length).toBeGreaterThanOrEqual(1);
    expect(samples.length).toBeLessThanOrEqual(1 + Math.floor(burstMs / SAMPLE_MS));
    expect(samples[0]).toMatchObject({ load: 0, inflight: 1, gpuUtil: 0, memUsedMb: 1_024 });
    expect(writes.find((w) => w.kind === 'samples')?.ids.filter((id) => id === nodeId)).toHaveLength(
      samples.length,
    );
  });

  it('writes at most one sample per METRICS_SAMPLE_INTERVAL_MS and one statement of each kind per flush', async () => {
    const { nodeId, raw } = await helloNode('steady');
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < 3 * SAMPLE_MS + 500) {
      await heartbeat(raw, (sent++ % 100) / 100);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const runMs = Date.now() - started;
    const lastHeartbeat = await storedAt(nodeId);
    await eventually(
      async () => ((await lastSeenRow(nodeId))?.getTime() === lastHeartbeat.getTime() ? true : undefined),
      FLUSH_MS + 5_000,
      'the last heartbeat to be flushed',
    );
    // The samples go in the same flush, right after the UPDATE: wait for that flush to end (nothing
    // is pending after it, so this starts no flush of its own).
    await nodeWrites(suite.coordinator.services).flush();

    const samples = await samplesOf(nodeId);
    expect(sent).toBeGreaterThan(50);
    expect(samples.length).toBeGreaterThanOrEqual(Math.floor(runMs / SAMPLE_MS));
    expect(samples.length).toBeLessThanOrEqual(Math.ceil(runMs / SAMPLE_MS) + 1);
    for (let i = 1; i < samples.length; i++) {
      const gap = (samples[i]?.at.getTime() ?? 0) - (samples[i - 1]?.at.getTime() ?? 0);
      expect(gap).toBeGreaterThanOrEqual(SAMPLE_MS);
    }

    // PostgreSQL saw one statement of each kind per flush (hello's flush included), not one per heartbeat.
    const writes = await writesFor(nodeId);
    const flushes = Math.ceil((Date.now() - started) / FLUSH_MS) + 1;
    const count = (kind: LoggedWrite['kind']) => writes.filter((w) => w.kind === kind).length;
    expect(count('last_seen')).toBeLessThanOrEqual(flushes);
    expect(count('samples')).toBeLessThanOrEqual(flushes);
    const perFlush = Math.ceil(FLUSH_MS / SAMPLE_MS) + 1;
    for (const w of writes) expect(w.ids.filter((id) => id === nodeId).length).toBeLessThanOrEqual(perFlush);
    // Consecutive writes of a kind are a flush interval apart (one timer per api process).
    for (const kind of ['last_seen', 'samples'] as const) {
      const times = writes.filter((w) => w.kind === kind).map((w) => w.loggedAt.getTime());
      for (let i = 1; i < times.length; i++) {
        expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThan(FLUSH_MS / 2);
      }
    }
  });
});

// The batch itself, over a stand-in client that records each statement's parameters.
describe('node write batch', () => {
  type Call = { sql: string; values: unknown[] };
  function fakePrisma(failures = 0) {
    const calls: Call[] = [];
    let failing = failures;
    const client = {
      async $executeRaw(strings: TemplateStringsArray, ...values: unknown[]) {
        if (failing > 0) {
          failing--;
          throw new Error('database unavailable');
        }
        calls.push({ sql: strings.join('?'), values });
        return 1;
      },
    };
    return { client: client as unknown as PrismaClient, calls };
  }
  const sample = (load: number): PendingSample => ({
    at: new Date(1_700_000_000_000 + load * 1_000),
    load,
    inflight: 0,
    gpuUtil: null,
    memUsedMb: null,
    payload: null,
  });
  const NODE_A = '00000000-0000-4000-8000-00000000000a';
  const NODE_B = '00000000-0000-4000-8000-00000000000b';

  it('writes one UPDATE for every node seen and one INSERT for every sample, nothing when idle', async () => {
    const { client, calls } = fakePrisma();
    const batch = new NodeWriteBatch(client, 2);
    expect(await batch.flush()).toEqual({ lastSeen: 0, samples: 0 });
    expect(calls).toEqual([]);
    batch.seen(NODE_A, new Date(2_000));
    batch.seen(NODE_A, new Date(1_000)); // older: ignored
    batch.seen(NODE_B, new Date(3_000));
    batch.sample(NODE_A, sample(1));
    batch.sample(NODE_B, sample(2));
    expect(await batch.flush()).toEqual({ lastSeen: 2, samples: 2 });
    expect(calls).toHaveLength(2);
    expect(calls[0]?.sql).toMatch(/UPDATE nodes/);
    expect(calls[0]?.values).toEqual([
      [NODE_A, NODE_B],
      [new Date(2_000).toISOString(), new Date(3_000).toISOString()],
    ]);
    expect(calls[1]?.sql).toMatch(/INSERT INTO node_metric_samples/);
    expect(calls[1]?.values[2]).toEqual([1, 2]);
    expect(batch.pendingNodes).toBe(0);
  });

  it('keeps a failed flush for the next one, with the newest time and the newest samples only', async () => {
    const { client, calls } = fakePrisma(2); // both statements of the first flush fail
    const batch = new NodeWriteBatch(client, 2);
    batch.seen(NODE_A, new Date(1_000));
    batch.sample(NODE_A, sample(1));
    batch.sample(NODE_A, sample(2));
    await expect(batch.flush()).rejects.toThrow('database unavailable');
    expect([batch.pendingNodes, batch.pendingSamples]).toEqual([1, 2]);
    // Meanwhile: a newer heartbeat and a third sample (the oldest one then falls out: 2 per node).
    batch.seen(NODE_A, new Date(5_000));
    batch.sample(NODE_A, sample(3));
    expect(batch.pendingSamples).toBe(2);
    await batch.flush();
    expect(calls[0]?.values[1]).toEqual([new Date(5_000).toISOString()]);
    expect(calls[1]?.values[2]).toEqual([2, 3]);
  });

  it('bounds the batch at MAX_PENDING_NODES nodes, counting what it drops', () => {
    const batch = new NodeWriteBatch(fakePrisma().client, 2);
    const at = new Date();
    for (let i = 0; i < MAX_PENDING_NODES + 10; i++) batch.seen(`node-${i}`, at);
    expect([batch.pendingNodes, batch.dropped]).toEqual([MAX_PENDING_NODES, 10]);
  });

  it('flushes once more when the api closes', async () => {
    const { client, calls } = fakePrisma();
    const config = { NODE_FLUSH_INTERVAL_MS: 60_000, METRICS_SAMPLE_INTERVAL_MS: 10_000 } as Config;
    const flusher = startNodeFlusher({ prisma: client, config, log: createLogger('test', 'silent') });
    // The flusher's batch is the one heartbeats use for this client.
    nodeWrites({ prisma: client, config }).seen(NODE_A, new Date(1_000));
    await flusher.close();
    expect(calls.map((c) => c.values[0])).toEqual([[NODE_A]]);
  });
});
