/**
 * `npm run bench [-- --tasks 300 --concurrency 20 --sqlite --observe events|poll --warmup 20 --dev-server-defaults]`
 *
 * How close the task workflow gets to what the Temporal server can process, in one process tree and one
 * run on the same server: a one-activity baseline workflow, then the real coordinator (api + worker +
 * simulated nodes) with tasks submitted over REST. Prints a table and two ratios:
 * - raw: task tasks/s ÷ baseline workflows/s;
 * - normalised: (tasks/s × history events per task) ÷ (workflows/s × events per workflow): the share of
 *   the baseline's event-processing rate the task workflow achieves. Both run at the same concurrency, so
 *   this is the ceiling at that concurrency; raise `--concurrency` to find where the server saturates.
 *
 * Services: `TEMPORAL_ADDRESS` or our own dev server (in memory; `--sqlite`: SQLite in WAL mode, like
 * `npm start`); `DATABASE_URL` (a fresh database on it) or PGlite in memory; `REDIS_URL` or the
 * in-process store. `--dev-server-defaults`: our dev server without DEV_SERVER_DYNAMIC_CONFIG (Temporal's own
 * dispatch pacing), to compare. Results go to `bench/results/throughput-<embedded|services>[-dev-defaults].json`.
 */
import { rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { runBaseline } from './baseline.js';
import { type Observe, runTaskWorkflows, type TaskPhaseResult } from './coordinator.js';
import { type BenchInfra, coordinatorEnv, startInfra } from './infra.js';
import { type PhaseOptions, type PhaseResult, progress, round, runBench } from './measure.js';

const RESULTS_DIR = path.join(import.meta.dirname, 'results');
/** Zero-latency nodes with room for every task in flight: the workflow, not the nodes, is measured. */
const NODES = { nodes: 4, capacity: 16 };
const POLL_MS = 50;

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '300' },
      concurrency: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '20' },
      sqlite: { type: 'boolean', default: false },
      observe: { type: 'string', default: 'events' },
      'dev-server-defaults': { type: 'boolean', default: false },
    },
  });
  const int = (name: string, value: string | undefined) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0`);
    return n;
  };
  if (values.observe !== 'events' && values.observe !== 'poll') throw new Error('--observe: events or poll');
  const phase: PhaseOptions = {
    tasks: Math.max(1, int('tasks', values.tasks)),
    concurrency: Math.max(1, int('concurrency', values.concurrency)),
    warmup: int('warmup', values.warmup),
    historySample: 5,
  };
  return {
    phase,
    sqlite: values.sqlite ?? false,
    observe: values.observe as Observe,
    devServerDefaults: values['dev-server-defaults'] ?? false,
  };
}

async function main() {
  const { phase, sqlite, observe, devServerDefaults } = parseCommandLine();
  const mode = process.env.DATABASE_URL || process.env.REDIS_URL ? 'services' : 'embedded';
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
  };
  progress(
    `mode ${mode}: ${phase.tasks} items at concurrency ${phase.concurrency} (warm-up ${phase.warmup})`,
  );

  const infra = await startInfra({ sqlite, devServerDefaults });
  process.once('SIGINT', () => void infra.stop().finally(() => process.exit(130)));
  try {
    const env = coordinatorEnv(infra);
    const config = loadConfig(env);
    const log = createLogger('bench', config.LOG_LEVEL);
    const endpoints = {
      temporalAddress: infra.temporalAddress,
      databaseUrl: infra.databaseUrl,
      redisUrl: infra.redisUrl,
    };
    const baseline = await runBaseline({ config, log, endpoints }, phase);
    const task = await runTaskWorkflows(env, { ...phase, ...NODES, observe, pollMs: POLL_MS });

    const ratios = {
      raw: round(task.perSecond / baseline.perSecond, 3),
      normalisedByEvents: round(
        (task.perSecond * task.eventsPerItem) / (baseline.perSecond * baseline.eventsPerItem),
        3,
      ),
    };
    printTable(baseline, task, ratios, infra);
    const defaults = devServerDefaults && !process.env.TEMPORAL_ADDRESS ? '-dev-defaults' : '';
    const file = path.join(RESULTS_DIR, `throughput-${mode}${defaults}.json`);
    const results = {
      mode,
      timestamp: new Date().toISOString(),
      machine,
      parameters: {
        ...phase,
        ...NODES,
        observe,
        pollMs: POLL_MS,
        sqlite,
        devServerDefaults,
        ...infra.describe,
      },
      baseline,
      task,
      ratios,
    };
    // Written whole or not at all: an interrupted run never leaves a truncated results file.
    await writeFile(`${file}.tmp`, `${JSON.stringify(results, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
    progress(`results written to ${path.relative(process.cwd(), file)}`);
    if (task.failed > 0) throw new Error(`${task.failed} task(s) did not complete`);
  } finally {
    await infra.stop();
  }
}

function printTable(
  baseline: PhaseResult,
  task: TaskPhaseResult,
  ratios: { raw: number; normalisedByEvents: number },
  infra: BenchInfra,
) {
  const row = (cells: Array<string | number>) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(16) : String(c).padStart(9))).join(' ');
  const line = (name: string, r: PhaseResult) =>
    row([
      name,
      r.count,
      r.concurrency,
      r.seconds,
      r.perSecond,
      r.latencyMs.p50,
      r.latencyMs.p99,
      r.eventsPerItem,
    ]);
  const { temporal, database, redis } = infra.describe;
  console.log(
    [
      '',
      `Throughput (Temporal: ${temporal}; database: ${database}; Redis: ${redis})`,
      row(['', 'items', 'conc.', 'seconds', 'per s', 'p50 ms', 'p99 ms', 'events']),
      line('baseline wf', baseline),
      line('task workflow', task),
      `  task workflow: ${task.attemptsPerTask} attempts and ${task.requestsPerTask} REST requests per task (observe: ${task.observe})`,
      `  ratio, raw throughput:          ${ratios.raw}  (tasks/s ÷ baseline workflows/s)`,
      `  ratio, normalised by events:    ${ratios.normalisedByEvents}  (tasks/s × events/task ÷ workflows/s × events/workflow)`,
      '',
    ].join('\n'),
  );
}

runBench(main);
