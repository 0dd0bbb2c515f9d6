/**
 * `npm run bench:heartbeats [-- --nodes 1000 --seconds 30 --warmup 12]`
 *
 * What node heartbeats cost the coordinator: `--nodes` lean nodes on plain WebSockets (a hello, then one
 * heartbeat with metrics every second, no agent logic) held by one in-process api on PostgreSQL
 * (`DATABASE_URL`, a fresh database) and Redis (`REDIS_URL`); both are required. The nodes run in a
 * worker thread, so their own work does not sit on the api's event loop.
 *
 * Over a `--seconds` window, after all nodes said hello and `--warmup` seconds passed:
 * - heartbeat round trip (frame sent → ack received) p50/p90/p99/max;
 * - what PostgreSQL did, from its own counters for the bench database: `pg_stat_database` deltas
 *   (xact_commit, tup_updated, tup_inserted; reads count in xact_commit too) per second, and the write
 *   statements on `nodes` (UPDATE) and `node_metric_samples` (INSERT), counted exactly by
 *   statement-level triggers installed for the run (their own log rows are left out of tup_inserted).
 *
 * For comparison, before heartbeats were batched every heartbeat ran one UPDATE and every
 * METRICS_SAMPLE_INTERVAL_MS one INSERT per node: the issue's figure is 5,000 nodes (5 s heartbeats)
 * → ~1,000 UPDATEs/s and ~500 INSERTs/s; the results also give that old path's rate at this load.
 * Results go to `bench/results/heartbeats-<nodes>.json`.
 */
import { once } from 'node:events';
import { rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pg from 'pg';
import WebSocket from 'ws';
import { startApi } from '../api/api.js';
import { issueApiKey } from '../api/auth/keys.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { openServices } from '../lib/services.js';
import { NODE_SOCKET_PATH } from '../protocol/frames.js';
import { coordinatorEnv, startInfra } from './infra.js';
import { progress, round, runBench } from './measure.js';
import { percentile, runPool } from './stats.js';

const RESULTS_DIR = path.join(import.meta.dirname, 'results');
const HEARTBEAT_MS = 1_000;
const MODEL = { name: 'bench-hb', version: '1' };
/** Sockets opening (key check + hello) at once. */
const CONNECT_CONCURRENCY = 50;
const ISSUE_FIGURE = '5,000 nodes → ~1,000 UPDATEs/s and ~500 INSERTs/s (one UPDATE per heartbeat every 5 s)';

interface NodesInput {
  url: string;
  keys: string[];
  intervalMs: number;
}

/** Worker → main. */
type NodesMessage =
  | { type: 'connected'; seconds: number }
  | { type: 'result'; rttMs: number[]; sent: number; acked: number; errors: number; closed: number };

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '30' },
      // Longer than a flush interval, so the window starts in the steady state.
      warmup: { type: 'string', default: '12' },
    },
  });
  const int = (name: string, value: string | undefined, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}`);
    return n;
  };
  return {
    nodes: int('nodes', values.nodes, 1),
    seconds: int('seconds', values.seconds, 1),
    warmup: int('warmup', values.warmup, 0),
  };
}

// ---------------------------------------------------------------------------------------------------
// The nodes (worker thread)

/**
 * Open every socket and say hello, report `connected`, then heartbeat each node every `intervalMs`
 * (spread over the interval) and time the acks between `measure` and `stop`. Heartbeats of one socket
 * are answered in order, so each ack belongs to the oldest heartbeat still waiting.
 */
async function runNodes({ url, keys, intervalMs }: NodesInput) {
  const port = parentPort as NonNullable<typeof parentPort>;
  const wsUrl = `${url.replace(/^http/, 'ws')}${NODE_SOCKET_PATH}`;
  const rttMs: number[] = [];
  let measuring = false;
  let [sent, acked, errors, closed] = [0, 0, 0, 0];
  const frame = (load: number) =>
    JSON.stringify({
      v: 1,
      type: 'heartbeat',
      load,
      inflight: 0,
      metrics: { cpuUtil: load, memUsedMb: 4_096 },
    });

  const started = performance.now();
  const sockets = await runPool(keys.length, CONNECT_CONCURRENCY, async (i) => {
    const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${keys[i]}` } });
    const waiting: number[] = [];
    const helloAck = new Promise<void>((resolve, reject) => {
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { type: string; of?: string };
        if (f.type === 'ack' && f.of === 'hello') return resolve();
        if (f.type === 'ack' && f.of === 'heartbeat') {
          const sentAt = waiting.shift();
          if (measuring && sentAt !== undefined) {
            rttMs.push(performance.now() - sentAt);
            acked++;
          }
          return;
        }
        if (f.type === 'error') errors++;
      });
      ws.once('close', (code) => {
        closed++;
        reject(new Error(`socket ${i} closed with ${code} before its hello was acked`));
      });
    });
    await once(ws, 'open');
    ws.send(JSON.stringify({ v: 1, type: 'hello', models: [MODEL], capacity: 1 }));
    await helloAck;
    return { ws, waiting };
  });
  port.postMessage({ type: 'connected', seconds: round((performance.now() - started) / 1000, 1) });

  const timers = sockets.map(({ ws, waiting }) => {
    const beat = () => {
      if (ws.readyState !== ws.OPEN) return;
      waiting.push(performance.now());
      if (measuring) sent++;
      ws.send(frame(Math.random()));
    };
    // Spread over the interval, as independent nodes would be.
    return setTimeout(() => {
      beat();
      timers.push(setInterval(beat, intervalMs));
    }, Math.random() * intervalMs);
  });
  port.on('message', (m: 'measure' | 'stop') => {
    if (m === 'measure') measuring = true;
    if (m !== 'stop') return;
    measuring = false;
    for (const t of timers) clearInterval(t);
    port.postMessage({ type: 'result', rttMs, sent, acked, errors, closed } satisfies NodesMessage);
    for (const { ws } of sockets) ws.terminate();
  });
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL's view

interface PgCounters {
  xactCommit: number;
  tupUpdated: number;
  tupInserted: number;
  /** Write statements logged by the triggers, by table. */
  statements: { nodes: number; samples: number };
  /** Rows those statements changed. */
  rows: { nodes: number; samples: number };
  /** Rows inserted, updated or deleted so far, by table (system catalogs included). */
  tables: Record<string, number>;
}

/** Statement-level triggers logging each UPDATE of `nodes` and INSERT into `node_metric_samples`. */
async function installStatementLog(db: pg.Client) {
  await db.query(`
    CREATE TABLE bench_write_log (tbl text NOT NULL, n bigint NOT NULL);
    CREATE FUNCTION bench_log_nodes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO bench_write_log SELECT 'nodes', count(*) FROM changed; RETURN NULL; END $$;
    CREATE TRIGGER bench_log_nodes AFTER UPDATE ON nodes REFERENCING NEW TABLE AS changed
      FOR EACH STATEMENT EXECUTE FUNCTION bench_log_nodes();
    CREATE FUNCTION bench_log_samples() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO bench_write_log SELECT 'samples', count(*) FROM changed; RETURN NULL; END $$;
    CREATE TRIGGER bench_log_samples AFTER INSERT ON node_metric_samples REFERENCING NEW TABLE AS changed
      FOR EACH STATEMENT EXECUTE FUNCTION bench_log_samples();`);
}

async function readCounters(db: pg.Client): Promise<PgCounters> {
  const { rows: stat } = await db.query(
    `SELECT xact_commit, tup_updated, tup_inserted FROM pg_stat_database WHERE datname = current_database()`,
  );
  const { rows: log } = await db.query(
    `SELECT tbl, count(*)::int AS statements, COALESCE(sum(n), 0)::int AS rows FROM bench_write_log GROUP BY tbl`,
  );
  const { rows: tables } = await db.query(
    `SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_all_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0`,
  );
  const of = (tbl: string) => log.find((r) => r.tbl === tbl) ?? { statements: 0, rows: 0 };
  return {
    xactCommit: Number(stat[0].xact_commit),
    tupUpdated: Number(stat[0].tup_updated),
    tupInserted: Number(stat[0].tup_inserted),
    statements: { nodes: of('nodes').statements, samples: of('samples').statements },
    rows: { nodes: of('nodes').rows, samples: of('samples').rows },
    tables: Object.fromEntries(tables.map((t) => [t.relname as string, Number(t.n)])),
  };
}

// ---------------------------------------------------------------------------------------------------
// Main

async function createNodes(
  prisma: import('../generated/prisma/client.js').PrismaClient,
  count: number,
): Promise<string[]> {
  const owner = await prisma.nodeOwner.create({ data: { name: 'bench heartbeats' } });
  return runPool(count, 16, async (i) => {
    const node = await prisma.node.create({
      data: {
        ownerId: owner.id,
        name: `hb-${i}`,
        capacity: 1,
        models: { create: [{ modelName: MODEL.name, modelVersion: MODEL.version }] },
      },
    });
    const { apiKey } = await issueApiKey(prisma, { role: 'node', nodeId: node.id, nodeOwnerId: owner.id });
    return apiKey;
  });
}

async function main() {
  const opts = parseCommandLine();
  if (!process.env.DATABASE_URL || !process.env.REDIS_URL) {
    throw new Error('set DATABASE_URL (a superuser URL: a database is created) and REDIS_URL');
  }
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
  };
  const infra = await startInfra({ sqlite: false });
  const stops: Array<() => Promise<unknown>> = [() => infra.stop()];
  process.once('SIGINT', () => void infra.stop().finally(() => process.exit(130)));
  try {
    const config = loadConfig({
      ...coordinatorEnv(infra),
      NODE_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
      ...(process.env.NODE_FLUSH_INTERVAL_MS
        ? { NODE_FLUSH_INTERVAL_MS: process.env.NODE_FLUSH_INTERVAL_MS }
        : {}),
    });
    const log = createLogger('bench', config.LOG_LEVEL);
    const services = await openServices(
      config,
      { temporalAddress: infra.temporalAddress, databaseUrl: infra.databaseUrl, redisUrl: infra.redisUrl },
      log,
    );
    stops.push(() => services.close());
    const api = await startApi(services);
    stops.push(() => api.close());
    const db = new pg.Client({ connectionString: infra.databaseUrl });
    await db.connect();
    stops.push(() => db.end());
    await installStatementLog(db);

    progress(`registering ${opts.nodes} nodes`);
    const keys = await createNodes(services.prisma, opts.nodes);
    progress(`connecting ${opts.nodes} nodes (hello each)`);
    // This file again, in a worker thread with tsx's loader (a worker does not inherit `--import tsx`).
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
      .then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(boot, {
      eval: true,
      workerData: { url: api.url, keys, intervalMs: HEARTBEAT_MS } satisfies NodesInput,
    });
    stops.push(() => worker.terminate());
    const next = () =>
      new Promise<NodesMessage>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    const connected = await next();
    if (connected.type !== 'connected') throw new Error('the nodes did not connect');
    progress(`all connected in ${connected.seconds} s; warm-up ${opts.warmup} s`);
    await new Promise((resolve) => setTimeout(resolve, opts.warmup * 1_000));

    const before = await readCounters(db);
    const t0 = performance.now();
    worker.postMessage('measure');
    progress(`measuring for ${opts.seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, opts.seconds * 1_000));
    const result = next();
    worker.postMessage('stop');
    const after = await readCounters(db);
    const seconds = (performance.now() - t0) / 1000;
    const nodes = await result;
    if (nodes.type !== 'result') throw new Error('no result from the nodes');

    const perSecond = (n: number) => round(n / seconds, 2);
    const statements = {
      nodesUpdate: after.statements.nodes - before.statements.nodes,
      samplesInsert: after.statements.samples - before.statements.samples,
    };
    const loggedRows = statements.nodesUpdate + statements.samplesInsert; // the triggers' own inserts
    const r = (n: number) => round(n, 2);
    const rtt = nodes.rttMs;
    const postgres = {
      seconds: round(seconds, 1),
      xactCommitPerSecond: perSecond(after.xactCommit - before.xactCommit),
      tupUpdatedPerSecond: perSecond(after.tupUpdated - before.tupUpdated),
      tupInsertedPerSecond: perSecond(after.tupInserted - before.tupInserted - loggedRows),
      writeStatements: statements,
      writeStatementsPerSecond: perSecond(statements.nodesUpdate + statements.samplesInsert),
      rowsChangedByTable: Object.fromEntries(
        Object.entries(after.tables)
          .map(([t, n]) => [t, n - (before.tables[t] ?? 0)] as const)
          .filter(([, n]) => n > 0),
      ),
      rowsWritten: {
        lastSeen: after.rows.nodes - before.rows.nodes,
        samples: after.rows.samples - before.rows.samples,
      },
    };
    const heartbeatsPerSecond = perSecond(nodes.acked);
    const results = {
      timestamp: new Date().toISOString(),
      machine,
      parameters: {
        nodes: opts.nodes,
        heartbeatIntervalMs: HEARTBEAT_MS,
        seconds: opts.seconds,
        warmup: opts.warmup,
        flushIntervalMs: config.NODE_FLUSH_INTERVAL_MS,
        metricsSampleIntervalMs: config.METRICS_SAMPLE_INTERVAL_MS,
        ...infra.describe,
      },
      connectSeconds: connected.seconds,
      heartbeats: {
        sent: nodes.sent,
        acked: nodes.acked,
        perSecond: heartbeatsPerSecond,
        errors: nodes.errors,
        socketsClosed: nodes.closed,
        roundTripMs: {
          p50: r(percentile(rtt, 50)),
          p90: r(percentile(rtt, 90)),
          p99: r(percentile(rtt, 99)),
          max: r(Math.max(...rtt)),
          mean: r(rtt.reduce((a, b) => a + b, 0) / (rtt.length || 1)),
        },
      },
      postgres,
      before: {
        issue: ISSUE_FIGURE,
        // The old path at this load: an UPDATE per heartbeat, an INSERT per node per sample interval.
        atThisLoad: {
          updatesPerSecond: heartbeatsPerSecond,
          insertsPerSecond: round(opts.nodes / (config.METRICS_SAMPLE_INTERVAL_MS / 1000), 1),
        },
      },
    };
    const rt = results.heartbeats.roundTripMs;
    progress(
      `${heartbeatsPerSecond} heartbeats/s: round trip p50 ${rt.p50} ms, p99 ${rt.p99} ms; PostgreSQL ` +
        `${postgres.writeStatementsPerSecond} write statements/s (${statements.nodesUpdate} UPDATE, ` +
        `${statements.samplesInsert} INSERT in ${postgres.seconds} s), tup_updated ${postgres.tupUpdatedPerSecond}/s, ` +
        `tup_inserted ${postgres.tupInsertedPerSecond}/s, xact_commit ${postgres.xactCommitPerSecond}/s`,
    );
    progress(`before batching: ${ISSUE_FIGURE}; at this load ~${heartbeatsPerSecond} UPDATEs/s`);
    if (nodes.errors > 0 || nodes.closed > 0) {
      throw new Error(`${nodes.errors} error frame(s), ${nodes.closed} socket(s) closed during the run`);
    }
    const file = path.join(RESULTS_DIR, `heartbeats-${opts.nodes}.json`);
    // Written whole or not at all: an interrupted run never leaves a truncated results file.
    await writeFile(`${file}.tmp`, `${JSON.stringify(results, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
    progress(`results written to ${path.relative(process.cwd(), file)}`);
  } finally {
    for (const stop of stops.reverse())
      await stop().catch((err) => progress(`cleanup failed: ${String(err)}`));
  }
}

if (isMainThread) runBench(main);
else
  runNodes(workerData as NodesInput).catch((err) => {
    console.error(err);
    process.exit(1);
  });
