/**
 * `npm run chaos [-- --tasks 300 --concurrency 12 --cancel-ratio 0.25 --kill-every-ms 6000 …]`
 *
 * The coordinator as operators run it (2 api processes, 2 workers, 4 `neurogrid-node` agents with the
 * simulated backend, a Temporal dev server on SQLite, PostgreSQL and Redis), with one random part
 * SIGKILLed and restarted every few seconds while tasks run and some are cancelled. At the end every
 * task is audited against the row, its workflow and the ledger, and the counts we promise about are
 * printed and written to `bench/results/chaos-<label>.json`. Exit 1 when a promise is broken.
 *
 * Needs DATABASE_URL (a server where a fresh database can be created) and REDIS_URL.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { taskIdFor } from '../api/tasks/ids.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createPrisma } from '../lib/db/client.js';
import { locateTemporalCli } from '../lib/temporal/cli.js';
import { seed } from '../tests/helpers/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../tests/helpers/database.js';
import { freePort } from '../tests/helpers/ports.js';
import { isTerminal, type TaskStatus } from '../workflows/task-status.js';
import { auditChaosRun, type ChaosAudit } from './chaos-audit.js';
import {
  apiComponent,
  Cluster,
  type Component,
  KINDS,
  type Kind,
  nodeComponent,
  startWithRetries,
  temporalComponent,
  workerComponent,
} from './chaos-cluster.js';
import { progress, round } from './measure.js';
import { percentile } from './stats.js';

const RESULTS_DIR = path.join(import.meta.dirname, 'results');
const NAMESPACE = 'neurogrid';
const MODEL = { name: 'chaos-llm', version: '1' } as const;

/** Coordinator settings the run sets, with their flags (all durations in ms). */
const SETTINGS = {
  'accept-timeout-ms': { env: 'TASK_ACCEPT_TIMEOUT_MS', value: 3_000 },
  'result-timeout-ms': { env: 'TASK_RESULT_TIMEOUT_MS', value: 8_000 },
  'queue-timeout-ms': { env: 'TASK_QUEUE_TIMEOUT_MS', value: 60_000 },
  'no-node-retry-ms': { env: 'TASK_NO_NODE_RETRY_MS', value: 1_000 },
  'start-timeout-ms': { env: 'TASK_START_TIMEOUT_MS', value: 3_000 },
  'stranded-grace-ms': { env: 'TASK_STRANDED_GRACE_MS', value: 8_000 },
  'reaper-interval-ms': { env: 'REAPER_INTERVAL_MS', value: 2_000 },
  'heartbeat-interval-ms': { env: 'NODE_HEARTBEAT_INTERVAL_MS', value: 1_000 },
  'presence-ttl-ms': { env: 'NODE_PRESENCE_TTL_MS', value: 5_000 },
  'host-lease-ttl-ms': { env: 'HOST_LEASE_TTL_MS', value: 3_000 },
  'max-attempts': { env: 'TASK_MAX_ATTEMPTS', value: 3 },
} as const;
type Setting = keyof typeof SETTINGS;

/** The run's own knobs. */
const KNOBS = {
  tasks: 300,
  concurrency: 12,
  'kill-every-ms': 6_000,
  'restart-min-ms': 500,
  'restart-max-ms': 3_000,
  'cancel-window-ms': 3_000,
  'submit-tries': 4,
  'final-wait-ms': 180_000,
  'node-capacity': 4,
} as const;
type Knob = keyof typeof KNOBS;

const USAGE = `Usage: npm run chaos -- [options]
  --tasks N (300)  --concurrency C (12)  --cancel-ratio R (0.25)  --label L (the task count)
  --kill-every-ms (6000, jittered ±50 %)  --restart-min-ms (500)  --restart-max-ms (3000)
  --kinds api,worker,node,temporal (what may be killed)  --cancel-window-ms (3000)
  --submit-tries (4)  --final-wait-ms (180000)  --node-capacity (4)  --sim-latency-ms (50-1500)
  --keep-db (keep the database and print its URL)
  coordinator settings: ${Object.entries(SETTINGS)
    .map(([flag, s]) => `--${flag} (${s.env}, ${s.value})`)
    .join(', ')}`;

type Options = Record<Knob, number> &
  Record<Setting, number> & {
    cancelRatio: number;
    label: string;
    kinds: Kind[];
    simLatency: string;
    keepDb: boolean;
  };

function parseCommandLine(): Options {
  const names = [...Object.keys(KNOBS), ...Object.keys(SETTINGS)];
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
      'cancel-ratio': { type: 'string' },
      label: { type: 'string' },
      kinds: { type: 'string' },
      'sim-latency-ms': { type: 'string' },
      'keep-db': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, fallback: number) => {
    const raw = values[name as keyof typeof values];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) usage(`--${name} must be a whole number ≥ 0`);
    return n;
  };
  const options = {
    ...Object.fromEntries(Object.entries(KNOBS).map(([k, v]) => [k, int(k, v)])),
    ...Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, int(k, s.value)])),
  } as Record<Knob | Setting, number>;
  const cancelRatio = Number(values['cancel-ratio'] ?? 0.25);
  if (!(cancelRatio >= 0 && cancelRatio <= 1)) usage('--cancel-ratio must be from 0 to 1');
  const kinds = (values.kinds ?? KINDS.join(',')).split(',').map((k) => k.trim()) as Kind[];
  if (kinds.some((k) => !KINDS.includes(k))) usage(`--kinds: a list of ${KINDS.join(', ')}`);
  const simLatency = values['sim-latency-ms'] ?? '50-1500';
  if (!/^\d+(-\d+)?$/.test(simLatency)) usage('--sim-latency-ms: n or a-b');
  if (options.tasks < 1 || options.concurrency < 1) usage('--tasks and --concurrency must be ≥ 1');
  if (options['restart-max-ms'] < options['restart-min-ms']) usage('--restart-max-ms < --restart-min-ms');
  const label = values.label ?? String(options.tasks);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(label)) usage('--label: letters, digits, . _ -');
  return { ...options, cancelRatio, label, kinds, simLatency, keepDb: values['keep-db'] ?? false };
}

function usage(message: string): never {
  console.error(`chaos: ${message}\n${USAGE}`);
  process.exit(2);
}

const rand = (min: number, max: number) => min + Math.random() * (max - min);
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

/** One submitted task, as the client saw it. */
interface TaskRecord {
  index: number;
  key: string;
  id: string;
  client: 'A' | 'B';
  submittedAt: number;
  /** accepted: 202; gave_up: network errors/503 every try; refused: any other answer. */
  submit: 'pending' | 'accepted' | 'gave_up' | 'refused';
  submitTries: number;
  submitAnswers: string[];
  cancel?: {
    delayMs: number;
    outcome: 'pending' | 'accepted' | 'conflict' | 'not_found' | 'gave_up' | 'refused';
    tries: number;
  };
  /** The terminal status the client waited for, or `timeout`. */
  observed?: string;
}

interface KillRecord {
  no: number;
  component: string;
  kind: Kind;
  /** Epoch ms of the SIGKILL. */
  at: number;
  /** Seconds since the load started. */
  atS: number;
  /** How long it stayed down before the restart began. */
  downMs: number;
  /** Restart until ready again (api: health 200; worker: "worker running"; node: connected; Temporal: namespace answers). */
  restartMs: number | null;
  /** Kill until ready again. */
  outageMs: number | null;
  /** Kill until the next task completion anywhere (from the tasks' completedAt). */
  recoveryMs: number | null;
  error?: string;
}

type Answer = { status: number; body: unknown; retryAfter: number | null } | { error: string };

/** One HTTP request with a timeout; a network failure is an answer too. */
async function request(url: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body ?? {}),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    const retryAfter = Number(res.headers.get('retry-after'));
    return {
      status: res.status,
      body: json,
      retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    } satisfies Answer;
  } catch (err) {
    return { error: (err as Error).name === 'TimeoutError' ? 'timeout' : 'network' } satisfies Answer;
  }
}
const answerName = (a: Answer) => ('error' in a ? a.error : String(a.status));
const retriable = (a: Answer) => 'error' in a || a.status === 503;

async function main() {
  const opts = parseCommandLine();
  if (!process.env.DATABASE_URL || !process.env.REDIS_URL) {
    console.error(
      'chaos: DATABASE_URL (a PostgreSQL server where a fresh database can be created) and REDIS_URL must be set;\n' +
        'the run kills processes that share state through them, so the embedded stand-ins cannot be used.',
    );
    process.exit(2);
  }
  const startedAt = new Date();
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
  };

  const dir = await mkdtemp(path.join(os.tmpdir(), 'ng-chaos-'));
  const cluster = new Cluster((line) => progress(line));
  let db: TestDatabase | undefined;
  let prisma: PrismaClient | undefined;
  let connection: Connection | undefined;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    cluster.stopping = true;
    await connection?.close().catch(() => undefined);
    await prisma?.$disconnect().catch(() => undefined);
    await cluster.stopAll();
    if (db && !opts.keepDb) await db.drop().catch((err) => progress(`dropping the database: ${err}`));
    else if (db) progress(`database kept: ${db.url}`);
    await rm(dir, { recursive: true, force: true });
  };
  process.on('exit', () => cluster.killAllNow());
  process.once('SIGINT', () => {
    progress('interrupted: stopping every process');
    cluster.stopping = true;
    void cleanup().finally(() => process.exit(130));
  });

  try {
    // --- Services -------------------------------------------------------------------------------
    const cli = await locateTemporalCli({ log: (line) => progress(`[setup] ${line}`) });
    const temporal = cluster.add(
      temporalComponent({
        cliPath: cli.path,
        namespace: NAMESPACE,
        port: await freePort(),
        dbFile: path.join(dir, 'temporal.sqlite'),
      }),
    ) as ReturnType<typeof temporalComponent>;
    progress(`starting the Temporal dev server (SQLite) on ${temporal.address}`);
    await temporal.start();
    progress('creating a fresh PostgreSQL database');
    db = await createTestDatabase({ migrated: true, backend: 'postgres' });
    prisma = createPrisma(db.url, { max: 4 });

    const run = randomBytes(4).toString('hex');
    const adminKey = `chaos-admin-${randomBytes(24).toString('hex')}`;
    const env: Record<string, string> = {
      NODE_ENV: 'development',
      DATA_DIR: path.join(dir, 'data'),
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: NAMESPACE,
      TEMPORAL_TASK_QUEUE: `chaos-${run}`,
      DATABASE_URL: db.url,
      REDIS_URL: process.env.REDIS_URL,
      REDIS_KEY_PREFIX: `chaos${run}:`,
      ADMIN_API_KEY: adminKey,
      // The load generator is one client: the per-key and per-address limits would only throttle it.
      RATE_LIMIT_PER_MINUTE: '100000000',
      RATE_LIMIT_IP_PER_MINUTE: '100000000',
      ...Object.fromEntries(
        Object.entries(SETTINGS).map(([flag, s]) => [s.env, String(opts[flag as Setting])]),
      ),
    };

    const apiUrls: string[] = [];
    const apis: Component[] = [];
    for (let i = 1; i <= 2; i++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      apiUrls.push(url);
      const apiEnv = { ...env, PORT: String(port), HOST_ID: `chaos-api-${i}` };
      apis.push(cluster.add(apiComponent(cluster, `api-${i}`, apiEnv, url)));
    }
    const workers = [1, 2].map((i) => cluster.add(workerComponent(cluster, `worker-${i}`, env)));
    progress('starting 2 workers and 2 api processes');
    await Promise.all(
      [...workers, ...apis].map((c) => startWithRetries(c, progress, () => cluster.stopping)),
    );

    // --- Accounts, model, nodes (through the admin API, as an operator would) --------------------
    const s = await seed(apiUrls[0] as string, adminKey);
    const model = await s.admin.post('/api/models', {
      ...MODEL,
      taskType: 'text_generation',
      maxInputBytes: 10_000,
      maxOutputTokens: 256,
      pricePerRequest: 5,
      pricePerInputToken: 1,
      pricePerOutputToken: 2,
    });
    if (model.status !== 201) throw new Error(`model: ${model.status} ${JSON.stringify(model.body)}`);
    // Two paying clients: seed()'s first tenant, and one of our own (seed() keeps its second key to itself).
    const second = await s.admin.post('/api/admin/clients', { name: 'Chaos tenant' });
    if (second.status !== 201) throw new Error(`client: ${second.status} ${JSON.stringify(second.body)}`);
    const clients = {
      A: { id: s.clientAId, key: s.clientAKey },
      B: { id: second.body.client.id as string, key: second.body.apiKey as string },
    };
    const topup = await s.admin.post(
      '/api/tokens/topup',
      { clientId: clients.B.id, amount: '1000000', note: 'chaos funds' },
      { 'Idempotency-Key': `chaos-${clients.B.id}` },
    );
    if (topup.status !== 201) throw new Error(`top-up: ${topup.status} ${JSON.stringify(topup.body)}`);

    const nodeIds: string[] = [];
    const nodes: Component[] = [];
    for (let i = 1; i <= 4; i++) {
      const r = await s.ownerApi.post('/api/nodes/register', {
        name: `chaos-node-${i}`,
        models: [MODEL],
        capacity: opts['node-capacity'],
      });
      if (r.status !== 201) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
      nodeIds.push(r.body.node.id);
      const apiUrl = apiUrls[(i - 1) % 2] as string;
      const args = [
        '--coordinator',
        apiUrl,
        '--backend',
        'simulated',
        '--models',
        `${MODEL.name}:${MODEL.version}`,
        '--concurrency',
        String(opts['node-capacity']),
        '--sim-latency-ms',
        opts.simLatency,
        '--log-level',
        'info',
      ];
      nodes.push(
        cluster.add(nodeComponent(cluster, `node-${i}`, args, { NEUROGRID_NODE_KEY: r.body.nodeKey })),
      );
    }
    progress(`starting 4 node agents (capacity ${opts['node-capacity']}, latency ${opts.simLatency} ms)`);
    await Promise.all(nodes.map((c) => startWithRetries(c, progress, () => cluster.stopping)));

    // --- Load, cancels and chaos ------------------------------------------------------------------
    const records: TaskRecord[] = [];
    const loadStart = Date.now();
    const since = () => ((Date.now() - loadStart) / 1000).toFixed(0);
    const waiters = new Map<string, (status: string) => void>();
    let pollerOn = true;
    const db_ = prisma;
    const poller = (async () => {
      while (pollerOn) {
        await sleep(500);
        const ids = [...waiters.keys()];
        if (ids.length === 0) continue;
        try {
          const rows = await db_.task.findMany({
            where: { id: { in: ids } },
            select: { id: true, status: true },
          });
          for (const r of rows) {
            if (isTerminal(r.status as TaskStatus)) waiters.get(r.id)?.(r.status);
          }
        } catch (err) {
          if (!cluster.stopping) progress(`poller: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    })();
    const waitTerminal = (id: string, timeoutMs: number) =>
      new Promise<string>((resolve) => {
        const timer = setTimeout(() => done('timeout'), timeoutMs);
        const done = (status: string) => {
          clearTimeout(timer);
          waiters.delete(id);
          resolve(status);
        };
        waiters.set(id, done);
      });

    const submitAnswers: Record<string, number> = {};
    const cancelAnswers: Record<string, number> = {};
    const tally = (into: Record<string, number>, a: Answer) => {
      into[answerName(a)] = (into[answerName(a)] ?? 0) + 1;
    };

    type CancelOutcome = NonNullable<TaskRecord['cancel']>['outcome'];
    const cancelTask = async (rec: TaskRecord, cancel: NonNullable<TaskRecord['cancel']>) => {
      await sleep(cancel.delayMs);
      cancel.outcome = await sendCancel(rec, cancel);
    };
    const sendCancel = async (
      rec: TaskRecord,
      cancel: NonNullable<TaskRecord['cancel']>,
    ): Promise<CancelOutcome> => {
      const key = clients[rec.client].key;
      let retries = 0;
      for (;;) {
        cancel.tries++;
        const a = await request(`${pick(apiUrls)}/api/tasks/${rec.id}/cancel`, key);
        tally(cancelAnswers, a);
        if (!('error' in a)) {
          if (a.status === 202) return 'accepted';
          if (a.status === 409) return 'conflict';
          if (a.status === 404) {
            // Not admitted yet: wait for the submission to settle, then ask once more.
            if (rec.submit === 'pending' && cancel.tries < 60) {
              await sleep(300);
              continue;
            }
            if (rec.submit === 'accepted' && retries++ < 1) continue;
            return 'not_found';
          }
        }
        if (!retriable(a)) return 'refused';
        if (++retries >= 5) return 'gave_up';
        const wait = 'retryAfter' in a && a.retryAfter ? a.retryAfter * 1000 : 500 * retries;
        await sleep(Math.min(2_000, wait));
      }
    };

    const perTaskWaitMs =
      opts['queue-timeout-ms'] + opts['result-timeout-ms'] + opts['accept-timeout-ms'] + 30_000;
    const runTask = async (index: number) => {
      const client = Math.random() < 0.5 ? 'A' : 'B';
      const key = `chaos-${run}-${index}`;
      const rec: TaskRecord = {
        index,
        key,
        id: taskIdFor(clients[client].id, key),
        client,
        submittedAt: Date.now(),
        submit: 'pending',
        submitTries: 0,
        submitAnswers: [],
      };
      records.push(rec);
      const body = {
        model: MODEL.name,
        input: { prompt: `chaos task ${index}: ${randomBytes(6).toString('hex')} tell me about the weather` },
        params: { maxTokens: 16 + Math.floor(Math.random() * 112) },
      };
      let cancelling: Promise<void> | undefined;
      if (Math.random() < opts.cancelRatio) {
        rec.cancel = { delayMs: Math.round(rand(0, opts['cancel-window-ms'])), outcome: 'pending', tries: 0 };
        cancelling = cancelTask(rec, rec.cancel);
      }
      for (;;) {
        rec.submitTries++;
        const a = await request(`${pick(apiUrls)}/api/tasks`, clients[client].key, body, {
          'Idempotency-Key': key,
        });
        tally(submitAnswers, a);
        rec.submitAnswers.push(answerName(a));
        if (!('error' in a) && a.status === 202) {
          rec.submit = 'accepted';
          break;
        }
        if (!retriable(a)) {
          rec.submit = 'refused';
          break;
        }
        if (rec.submitTries >= opts['submit-tries']) {
          rec.submit = 'gave_up';
          break;
        }
        const wait = 'retryAfter' in a && a.retryAfter ? a.retryAfter * 1000 : 500 * rec.submitTries;
        await sleep(Math.min(2_000, wait));
      }
      if (rec.submit === 'accepted') rec.observed = await waitTerminal(rec.id, perTaskWaitMs);
      await cancelling;
    };

    let nextIndex = 0;
    const lanes = Promise.all(
      Array.from({ length: Math.min(opts.concurrency, opts.tasks) }, async () => {
        while (nextIndex < opts.tasks) await runTask(nextIndex++);
      }),
    );

    const kills: KillRecord[] = [];
    let chaosOn = true;
    const candidates = (kind: Kind) =>
      cluster.components.filter((c) => c.kind === kind && !cluster.busy.has(c.name));
    const chaos = (async () => {
      while (chaosOn && !cluster.stopping) {
        await sleep(opts['kill-every-ms'] * rand(0.5, 1.5));
        if (!chaosOn || cluster.stopping) break;
        const kinds = opts.kinds.filter((k) => candidates(k).length > 0);
        if (kinds.length === 0) continue;
        const victim = pick(candidates(pick(kinds)));
        cluster.busy.add(victim.name);
        const kill: KillRecord = {
          no: kills.length + 1,
          component: victim.name,
          kind: victim.kind,
          at: Date.now(),
          atS: round((Date.now() - loadStart) / 1000, 1),
          downMs: Math.round(rand(opts['restart-min-ms'], opts['restart-max-ms'])),
          restartMs: null,
          outageMs: null,
          recoveryMs: null,
        };
        kills.push(kill);
        try {
          await victim.kill();
          progress(`kill #${kill.no}: ${victim.name} (SIGKILL), restarting in ${kill.downMs} ms`);
          await sleep(kill.downMs);
          const restartAt = Date.now();
          await startWithRetries(victim, progress, () => cluster.stopping);
          kill.restartMs = Date.now() - restartAt;
          kill.outageMs = Date.now() - kill.at;
          progress(`kill #${kill.no}: ${victim.name} ready again after ${kill.restartMs} ms`);
        } catch (err) {
          kill.error = (err as Error).message.split('\n')[0];
          progress(`kill #${kill.no}: ${victim.name} did not come back: ${kill.error}`);
        } finally {
          cluster.busy.delete(victim.name);
        }
      }
    })();

    const statusCounts = async () => {
      const groups = await db_.task.groupBy({ by: ['status'], _count: { _all: true } });
      return Object.fromEntries(groups.map((g) => [g.status, g._count._all])) as Record<string, number>;
    };
    const describeCounts = (counts: Record<string, number>) =>
      Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    const ticker = setInterval(() => {
      void statusCounts()
        .then((counts) => {
          const accepted = records.filter((r) => r.submit === 'accepted').length;
          const gaveUp = records.filter((r) => r.submit === 'gave_up').length;
          progress(
            `t=${since()}s submitted ${records.length}/${opts.tasks} (202: ${accepted}, gave up: ${gaveUp}); ` +
              `rows: ${describeCounts(counts) || 'none'}; kills ${kills.length}`,
          );
          for (const c of cluster.components) c.trimOutput();
        })
        .catch(() => undefined);
    }, 5_000);

    progress(
      `load: ${opts.tasks} tasks at concurrency ${opts.concurrency}, ~${Math.round(opts.cancelRatio * 100)} % cancelled; ` +
        `killing one of [${opts.kinds.join(', ')}] every ~${opts['kill-every-ms']} ms`,
    );
    await lanes;
    const loadSeconds = (Date.now() - loadStart) / 1000;
    progress(
      `all ${opts.tasks} tasks submitted and waited for (${loadSeconds.toFixed(0)} s); stopping the chaos`,
    );
    chaosOn = false;
    await chaos;
    // Whatever exited on its own is restarted by the cluster: wait for that too.
    await waitFor(() => cluster.busy.size === 0, 120_000);
    pollerOn = false;
    await poller;

    // --- Settle: every admitted task must reach a terminal status ---------------------------------
    const waitStart = Date.now();
    let unfinished = 0;
    for (;;) {
      const counts = await statusCounts();
      unfinished = Object.entries(counts)
        .filter(([st]) => !isTerminal(st as TaskStatus))
        .reduce((n, [, c]) => n + c, 0);
      if (unfinished === 0) break;
      if (Date.now() - waitStart > opts['final-wait-ms']) {
        progress(`${unfinished} task(s) still unfinished after ${opts['final-wait-ms']} ms`);
        break;
      }
      progress(`waiting for ${unfinished} unfinished task(s): ${describeCounts(counts)}`);
      await sleep(5_000);
    }
    clearInterval(ticker);
    const settleSeconds = (Date.now() - waitStart) / 1000;

    // --- Recovery: from each kill to the next completed task --------------------------------------
    const completions = (
      await db_.task.findMany({ where: { status: 'completed' }, select: { completedAt: true } })
    )
      .map((t) => t.completedAt?.getTime() ?? 0)
      .sort((a, b) => a - b);
    for (const k of kills) {
      const next = completions.find((t) => t > k.at);
      k.recoveryMs = next === undefined ? null : next - k.at;
    }

    // --- Audit -------------------------------------------------------------------------------------
    progress('auditing every task (database, ledger, Temporal)');
    connection = await Connection.connect({ address: temporal.address });
    const temporalClient = new Client({ connection, namespace: NAMESPACE });
    const rowIds = new Set((await db_.task.findMany({ select: { id: true } })).map((r) => r.id));
    const neverAdmitted = records.filter((r) => !rowIds.has(r.id));
    const audit = await auditChaosRun({
      prisma: db_,
      temporal: temporalClient,
      neverAdmitted: neverAdmitted.length,
      nodeIds,
      say: progress,
    });

    const client = {
      submitted: records.length,
      accepted202: records.filter((r) => r.submit === 'accepted').length,
      gaveUp: records.filter((r) => r.submit === 'gave_up').length,
      gaveUpButAdmitted: records.filter((r) => r.submit === 'gave_up' && rowIds.has(r.id)).length,
      refused: records.filter((r) => r.submit === 'refused').length,
      retriedSubmissions: records.filter((r) => r.submitTries > 1).length,
      submitAnswers,
      cancelsSent: records.filter((r) => r.cancel).length,
      cancelOutcomes: countBy(records.flatMap((r) => (r.cancel ? [r.cancel.outcome] : []))),
      cancelAnswers,
      waitTimeouts: records.filter((r) => r.observed === 'timeout').length,
    };
    const recovery = recoverySummary(kills);
    const promises = {
      chargedWhileCancelled: audit.chargedWhileCancelled,
      completedButReleased: audit.completedButReleased,
      strandedHolds: audit.strandedHolds,
      settlementAmountMismatches: audit.settlementAmountMismatches,
      leakedAttempts: audit.leakedAttempts,
      statusMismatches: audit.statusMismatches,
      settlementAttributeMismatches: audit.settlementAttributeMismatches,
      ledgerNotOk: audit.ledger.ok ? 0 : 1,
      payoutMismatch: audit.payouts.equal ? 0 : 1,
    };
    const broken = Object.entries(promises).filter(([, n]) => n > 0);

    printSummary({ opts, audit, client, kills, recovery, promises, unexpected: cluster.unexpectedExits });

    const results = {
      label: opts.label,
      timestamp: startedAt.toISOString(),
      machine,
      parameters: {
        ...Object.fromEntries(Object.entries(KNOBS).map(([k]) => [k, opts[k as Knob]])),
        cancelRatio: opts.cancelRatio,
        kinds: opts.kinds,
        simLatencyMs: opts.simLatency,
        apis: 2,
        workers: 2,
        nodes: 4,
        coordinator: Object.fromEntries(
          Object.entries(SETTINGS).map(([flag, st]) => [st.env, opts[flag as Setting]]),
        ),
        services: 'Temporal dev server (SQLite), PostgreSQL (DATABASE_URL), Redis (REDIS_URL)',
      },
      seconds: { load: round(loadSeconds, 1), settle: round(settleSeconds, 1) },
      promises,
      promisesKept: broken.length === 0,
      tasks: audit.tasks,
      client,
      attempts: {
        outcomes: audit.attemptOutcomes,
        lost: audit.lostAttempts,
        tasksWithLostAttempts: audit.tasksWithLostAttempts,
        tasksExhaustedAttempts: audit.tasksExhaustedAttempts,
      },
      failureReasons: audit.failureReasons,
      workflowStatuses: audit.workflowStatuses,
      ledger: audit.ledger,
      payouts: audit.payouts,
      recovery,
      kills: kills.map(({ at, ...k }) => ({ ...k, at: new Date(at).toISOString() })),
      unexpectedExits: cluster.unexpectedExits.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
      findings: audit.findings,
    };
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `chaos-${opts.label}.json`);
    await writeFile(`${file}.tmp`, `${JSON.stringify(results, bigintJson, 2)}\n`);
    await rename(`${file}.tmp`, file);
    progress(`results written to ${path.relative(process.cwd(), file)}`);
    if (broken.length > 0) {
      throw new Error(`promises broken: ${broken.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    }
  } finally {
    await cleanup();
  }
}

async function waitFor(check: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await sleep(200);
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

const bigintJson = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);

type Spread = { count: number; min: number; median: number; max: number } | { count: 0 };
function spreadOf(values: number[]): Spread {
  if (values.length === 0) return { count: 0 };
  return {
    count: values.length,
    min: Math.min(...values),
    median: percentile(values, 50),
    max: Math.max(...values),
  };
}

/** Per kind of component: restart (spawn → ready), outage (kill → ready) and recovery (kill → next completion). */
function recoverySummary(kills: KillRecord[]) {
  const out: Record<
    string,
    { kills: number; failedRestarts: number; restartMs: Spread; outageMs: Spread; recoveryMs: Spread }
  > = {};
  for (const kind of KINDS) {
    const ks = kills.filter((k) => k.kind === kind);
    if (ks.length === 0) continue;
    const values = (f: (k: KillRecord) => number | null) => ks.map(f).filter((v): v is number => v !== null);
    out[kind] = {
      kills: ks.length,
      failedRestarts: ks.filter((k) => k.error).length,
      restartMs: spreadOf(values((k) => k.restartMs)),
      outageMs: spreadOf(values((k) => k.outageMs)),
      recoveryMs: spreadOf(values((k) => k.recoveryMs)),
    };
  }
  return out;
}

function printSummary(r: {
  opts: Options;
  audit: ChaosAudit;
  client: Record<string, unknown> & { submitted: number; accepted202: number; gaveUp: number };
  kills: KillRecord[];
  recovery: ReturnType<typeof recoverySummary>;
  promises: Record<string, number>;
  unexpected: Cluster['unexpectedExits'];
}) {
  const { audit } = r;
  const line = (name: string, value: unknown, note = '') =>
    `  ${name.padEnd(34)} ${String(value).padStart(8)}${note ? `  ${note}` : ''}`;
  const spread = (s: Spread) => ('min' in s ? `${s.min} / ${s.median} / ${s.max}` : '-');
  const out = [
    '',
    `Chaos run: ${r.client.submitted} tasks, ${r.kills.length} kills (${r.opts.kinds.join(', ')}), ${r.unexpected.length} unexpected exits`,
    '',
    'Tasks',
    line('completed', audit.tasks.completed),
    line('failed', audit.tasks.failed),
    line('cancelled', audit.tasks.cancelled),
    line('still unfinished', audit.tasks.unfinished),
    line('never admitted', audit.tasks.neverAdmitted, 'no 202 and no row'),
    line('submissions answered 202', r.client.accepted202),
    line('submissions given up', r.client.gaveUp, `of which admitted anyway: ${r.client.gaveUpButAdmitted}`),
    line('cancels sent', r.client.cancelsSent, JSON.stringify(r.client.cancelOutcomes)),
    '',
    'Attempts',
    line('lost attempts', audit.lostAttempts, `on ${audit.tasksWithLostAttempts} task(s)`),
    line('tasks that used all attempts', audit.tasksExhaustedAttempts),
    line('outcomes', JSON.stringify(audit.attemptOutcomes)),
    '',
    'Promises (must all be 0)',
    line('charged while cancelled/failed', r.promises.chargedWhileCancelled),
    line('completed but released', r.promises.completedButReleased),
    line('stranded holds', r.promises.strandedHolds),
    line('settlement ≠ hold amount', r.promises.settlementAmountMismatches),
    line('leaked attempts', r.promises.leakedAttempts),
    line('row ≠ workflow status', r.promises.statusMismatches),
    line('TaskSettlement ≠ ledger', r.promises.settlementAttributeMismatches),
    line('ledger verify', audit.ledger.ok ? 'ok' : 'FAILED', audit.ledger.problems.slice(0, 3).join('; ')),
    line(
      'node payouts = completed rewards',
      audit.payouts.equal ? 'yes' : 'NO',
      `${audit.payouts.nodeBalances} vs ${audit.payouts.completedRewards}`,
    ),
    '',
    'Recovery per component, ms (min / median / max)',
    `  ${'kind'.padEnd(9)} ${'kills'.padStart(5)}  ${'restart → ready'.padEnd(22)} ${'kill → ready'.padEnd(22)} kill → next completion`,
    ...Object.entries(r.recovery).map(
      ([kind, v]) =>
        `  ${kind.padEnd(9)} ${String(v.kills).padStart(5)}  ${spread(v.restartMs).padEnd(22)} ${spread(v.outageMs).padEnd(22)} ${spread(v.recoveryMs)}${v.failedRestarts ? `  (${v.failedRestarts} failed restarts)` : ''}`,
    ),
  ];
  if (audit.findings.length > 0) {
    out.push('', `Findings (first ${Math.min(10, audit.findings.length)})`);
    for (const f of audit.findings.slice(0, 10)) out.push(`  ${f.taskId}: ${f.problem}`);
  }
  if (r.unexpected.length > 0) {
    out.push('', 'Unexpected exits');
    for (const e of r.unexpected.slice(0, 10)) {
      out.push(`  ${e.component} at ${new Date(e.at).toISOString()}: ${e.signal ?? `code ${e.code}`}`);
    }
  }
  console.log(`${out.join('\n')}\n`);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(`\nchaos: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
