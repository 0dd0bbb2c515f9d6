/**
 * `npm run bench:settlement [-- --tasks 500 --concurrency 8 --warmup 20]`
 *
 * What settling a task costs: the `settleTask` activity's duration (the capture of a verified task's
 * hold: one read of the task and its attempt, one ledger posting under `task:<id>:settle`, one update of
 * the task row), measured in one process and one run against a fresh database, next to two baselines
 * on the same Prisma client:
 * - `SELECT 1`: one minimal round trip, the floor of any database call;
 * - a ledger top-up: a plain single-leg `post` (one transaction, two accounts locked).
 * Each is timed sequentially (the latency a workflow sees) and at `--concurrency` (how calls queue on a
 * loaded worker), `--tasks` calls per phase; settling each task a second time times the idempotent
 * replay path (a retried activity). Then the ledger is verified and the balances are checked against
 * the prices the fixture implies.
 *
 * Fixture (not timed): a priced model, one client topped up through the ledger, four nodes, and
 * 2 × tasks + warmup + 3 tasks inserted directly as completed and verified, each with one attempt (node,
 * output, usage) and its hold posted (`task:<id>:hold`), as admission and the workflow leave them.
 * The last 3 are settled (untimed) on a second client whose connections count the statements they send,
 * to show how many round trips each kind of call makes.
 *
 * Database: a fresh one on `DATABASE_URL`'s server (mode `services`) or an in-memory PGlite (mode
 * `embedded`). Results go to `bench/results/settlement-<embedded|services>.json`.
 */
import { randomUUID } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { createSettlementActivities, type SettlementSummary } from '../activities/settlement.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { loadConfig } from '../lib/config.js';
import { createPrisma } from '../lib/db/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { postHold } from '../lib/ledger/task-postings.js';
import type { AccountRef, Ledger } from '../lib/ledger/types.js';
import { holdAmount, type PricingTerms, type Settlement, settle } from '../lib/pricing.js';
import { createTestDatabase, type TestDatabase } from '../tests/helpers/database.js';
import { progress, round, runBench } from './measure.js';
import { percentile, runPool } from './stats.js';

const RESULTS_DIR = path.join(import.meta.dirname, 'results');
/** The coordinator's pool size (`createPrisma` without `max`: pg's default), so calls queue as in a worker. */
const POOL = 10;
const NODES = 4;
/** The README's worked example: 10 per request, 2 per input token, 5 per output token. */
const MODEL = {
  name: 'bench-settle',
  version: '1',
  taskType: 'text_generation' as const,
  maxInputBytes: 10_000,
  maxOutputTokens: 512,
  pricePerRequest: 10n,
  pricePerInputToken: 2n,
  pricePerOutputToken: 5n,
};
const MAX_TOKENS = 100;
/** Tasks settled on the counting client. */
const PROBES = 3;

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '500' },
      concurrency: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '20' },
    },
  });
  const int = (name: string, value: string | undefined) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0`);
    return n;
  };
  return {
    tasks: Math.max(1, int('tasks', values.tasks)),
    concurrency: Math.max(1, int('concurrency', values.concurrency)),
    warmup: int('warmup', values.warmup),
  };
}

// ---------------------------------------------------------------------------------------------------
// Timing

interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

interface Phase {
  calls: number;
  concurrency: number;
  seconds: number;
  perSecond: number;
  /** Milliseconds, to the microsecond: a local `SELECT 1` takes a fraction of one. */
  latencyMs: LatencyMs;
}

function summarize(values: readonly number[]): LatencyMs {
  const r = (n: number) => round(n, 3);
  return {
    p50: r(percentile(values, 50)),
    p90: r(percentile(values, 90)),
    p99: r(percentile(values, 99)),
    mean: r(values.reduce((a, b) => a + b, 0) / (values.length || 1)),
    min: r(Math.min(...values)),
    max: r(Math.max(...values)),
  };
}

/** Run `call(0 … count-1)` at `concurrency`, timing each call on its own; a progress line every 5 s. */
async function timeCalls(
  label: string,
  count: number,
  concurrency: number,
  call: (index: number) => Promise<unknown>,
): Promise<Phase> {
  const durations: number[] = [];
  const started = performance.now();
  const ticker = setInterval(() => progress(`${label}: ${durations.length}/${count}`), 5_000);
  try {
    await runPool(count, concurrency, async (i) => {
      const t0 = performance.now();
      await call(i);
      durations.push(performance.now() - t0);
    });
  } finally {
    clearInterval(ticker);
  }
  const seconds = (performance.now() - started) / 1000;
  const phase = {
    calls: count,
    concurrency,
    seconds: round(seconds, 2),
    perSecond: round(count / seconds, 1),
    latencyMs: summarize(durations),
  };
  progress(
    `${label}: ${count} calls in ${phase.seconds} s, p50 ${phase.latencyMs.p50} ms, p99 ${phase.latencyMs.p99} ms`,
  );
  return phase;
}

/**
 * A Prisma client like `createPrisma`'s, on a pool whose connections count the statements sent (BEGIN
 * and COMMIT included): each is one round trip to the database.
 */
function countingPrisma(url: string) {
  let count = 0;
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('connect', (client) => {
    const target = client as unknown as { query: (...args: unknown[]) => unknown };
    const query = target.query.bind(client);
    target.query = (...args) => {
      count++;
      return query(...args);
    };
  });
  return {
    prisma: new PrismaClient({ adapter: new PrismaPg(pool) }),
    statements: () => count,
    end: () => pool.end(),
  };
}

// ---------------------------------------------------------------------------------------------------
// Fixture

interface FixtureTask {
  id: string;
  nodeId: string;
  hold: bigint;
  /** What settling it must pay, by the same pricing the activity uses. */
  expected: Settlement;
}

interface Fixture {
  clientId: string;
  nodeIds: string[];
  tasks: FixtureTask[];
  initialTopup: bigint;
}

/**
 * A model, a client, nodes, and `count` tasks as the workflow leaves them just before settling:
 * completed, verified, one finished attempt with output and usage, the hold posted.
 */
async function createFixture(
  prisma: PrismaClient,
  ledger: Ledger,
  terms: PricingTerms,
  count: number,
  concurrency: number,
): Promise<Fixture> {
  const model = await prisma.model.create({ data: MODEL });
  const client = await prisma.client.create({ data: { name: 'bench-settlement' } });
  const owner = await prisma.nodeOwner.create({ data: { name: 'bench-settlement' } });
  const nodeIds: string[] = [];
  for (let n = 0; n < NODES; n++) {
    const node = await prisma.node.create({
      data: { ownerId: owner.id, name: `bench-node-${n}`, capacity: 16, status: 'online' },
    });
    nodeIds.push(node.id);
  }

  const now = Date.now();
  const tasks: FixtureTask[] = [];
  const taskRows = [];
  const attemptRows = [];
  for (let i = 0; i < count; i++) {
    const id = `t_${randomUUID().replaceAll('-', '')}`;
    const nodeId = nodeIds[i % NODES] as string;
    const priority = i % 3;
    const input = { prompt: `Summarise benchmark document number ${i} in a few sentences.` };
    const params = { maxTokens: MAX_TOKENS };
    const words = 20 + (i % 40);
    const output = {
      text: Array.from({ length: words }, (_, w) => `word${w}`).join(' '),
      finishReason: 'stop',
    };
    const usage = { inputTokens: input.prompt.split(' ').length, outputTokens: words };
    const inputBytes = Buffer.byteLength(JSON.stringify(input));
    const hold = holdAmount(model, { inputBytes, maxOutputTokens: MAX_TOKENS, priority }, terms);
    const expected = settle(
      model,
      { hold, inputBytes, maxOutputTokens: MAX_TOKENS, priority },
      { ...usage, outputBytes: Buffer.byteLength(JSON.stringify(output)) },
      { qualityBps: 10_000, reputationBps: 10_000 },
      terms,
    );
    tasks.push({ id, nodeId, hold, expected });
    const assignedAt = new Date(now - 2_000);
    const finishedAt = new Date(now - 1_000);
    taskRows.push({
      id,
      clientId: client.id,
      modelId: model.id,
      holdAmount: hold,
      nodeShareBps: terms.nodeShareBps,
      input,
      params,
      priority,
      status: 'completed' as const,
      attempts: 1,
      nodeId,
      result: output,
      verdict: { checks: ['format', 'limits', 'usage'], quality: 1 },
      deadlineAt: new Date(now + 300_000),
      startedAt: assignedAt,
      completedAt: finishedAt,
    });
    attemptRows.push({
      taskId: id,
      attemptNo: 1,
      nodeId,
      outcome: 'completed' as const,
      assignedAt,
      acceptedAt: assignedAt,
      finishedAt,
      latencyMs: 1_000,
      output,
      usage,
    });
  }
  for (let i = 0; i < count; i += 250) {
    await prisma.task.createMany({ data: taskRows.slice(i, i + 250) });
    await prisma.taskAttempt.createMany({ data: attemptRows.slice(i, i + 250) });
  }

  const clientRef: AccountRef = { kind: 'client', ownerId: client.id };
  const initialTopup = tasks.reduce((sum, t) => sum + t.hold, 0n) + 1_000_000n;
  await ledger.post({
    idempotencyKey: 'bench:topup:initial',
    type: 'topup',
    legs: [{ from: { kind: 'external_topups' }, to: clientRef, amount: initialTopup }],
  });
  await runPool(count, concurrency, async (i) => {
    const t = tasks[i] as FixtureTask;
    await postHold(ledger, { taskId: t.id, clientId: client.id, amount: t.hold });
  });
  return { clientId: client.id, nodeIds, tasks, initialTopup };
}

// ---------------------------------------------------------------------------------------------------
// Checks

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The activity's answer for a task: posted on the first run, not on a replay; the expected figures. */
function summaryProblem(t: FixtureTask, s: SettlementSummary | null, posted: boolean): string | null {
  const want = {
    price: t.expected.price.toString(),
    reward: t.expected.reward.toString(),
    fee: t.expected.fee.toString(),
    refund: t.expected.refund.toString(),
    posted,
  };
  // Only these fields: the summary may carry more than this benchmark knows about.
  const same = s !== null && (Object.keys(want) as Array<keyof typeof want>).every((k) => s[k] === want[k]);
  return same ? null : `task ${t.id}: got ${JSON.stringify(s)}, want ${JSON.stringify(want)}`;
}

async function checkBalances(
  prisma: PrismaClient,
  ledger: Ledger,
  fixture: Fixture,
  extraTopups: bigint,
): Promise<{ checks: Check[]; balances: Record<string, string> }> {
  const sum = (f: (t: FixtureTask) => bigint, tasks = fixture.tasks) => tasks.reduce((a, t) => a + f(t), 0n);
  const paid = sum((t) => t.expected.price);
  const fees = sum((t) => t.expected.fee);
  const topups = fixture.initialTopup + extraTopups;

  const client = await ledger.balance({ kind: 'client', ownerId: fixture.clientId });
  const platform = await ledger.balance({ kind: 'platform_fees' });
  const external = await ledger.balance({ kind: 'external_topups' });
  const nodes = await Promise.all(
    fixture.nodeIds.map(async (nodeId) => ({
      nodeId,
      balance: await ledger.balance({ kind: 'node', ownerId: nodeId }),
      expected: sum(
        (t) => t.expected.reward,
        fixture.tasks.filter((t) => t.nodeId === nodeId),
      ),
    })),
  );
  const nodeTotal = nodes.reduce((a, n) => a + n.balance.total, 0n);
  const rows = await prisma.task.findMany({
    where: { id: { in: fixture.tasks.map((t) => t.id) } },
    select: { id: true, price: true, reward: true, fee: true },
  });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const wrongRows = fixture.tasks.filter((t) => {
    const r = byId.get(t.id);
    return r?.price !== t.expected.price || r.reward !== t.expected.reward || r.fee !== t.expected.fee;
  });

  const check = (name: string, ok: boolean, detail: string): Check => ({ name, ok, detail });
  const checks = [
    check(
      'client',
      client.available === topups - paid && client.held === 0n,
      `available ${client.available} = top-ups ${topups} − paid ${paid}; held ${client.held} = 0`,
    ),
    check(
      'nodes',
      nodes.every((n) => n.balance.available === n.expected && n.balance.held === 0n),
      `${nodes.map((n) => n.balance.available).join(' + ')} = ${nodeTotal} = rewards ${sum((t) => t.expected.reward)}`,
    ),
    check('platform', platform.available === fees, `fees ${platform.available} = ${fees}`),
    check(
      'conservation',
      client.total + nodeTotal + platform.total === -external.total && external.total === -topups,
      `client ${client.total} + nodes ${nodeTotal} + platform ${platform.total} = top-ups ${-external.total}`,
    ),
    check(
      'task rows',
      wrongRows.length === 0,
      `${fixture.tasks.length - wrongRows.length}/${fixture.tasks.length} carry their price, reward and fee`,
    ),
  ];
  const balances = {
    client: client.available.toString(),
    clientHeld: client.held.toString(),
    nodes: nodeTotal.toString(),
    platformFees: platform.available.toString(),
    externalTopups: external.total.toString(),
  };
  return { checks, balances };
}

// ---------------------------------------------------------------------------------------------------

async function main() {
  const params = parseCommandLine();
  const mode = process.env.DATABASE_URL ? 'services' : 'embedded';
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
  };
  const { tasks: n, concurrency, warmup } = params;
  progress(
    `mode ${mode}: ${n} calls per phase, sequential and at concurrency ${concurrency} (warm-up ${warmup})`,
  );

  // The pricing terms from the defaults, not this shell's environment, so runs compare.
  const config = loadConfig({ NODE_ENV: 'development', LOG_LEVEL: 'error' });
  const terms: PricingTerms = {
    prioritySurchargeBps: config.PRIORITY_SURCHARGE_BPS,
    nodeShareBps: config.NODE_SHARE_BPS,
  };

  progress(mode === 'services' ? 'creating a PostgreSQL database' : 'starting PGlite (in memory)');
  const db: TestDatabase = await createTestDatabase({ migrated: true });
  const prisma = createPrisma(db.url, { max: POOL });
  const stop = async () => {
    await prisma.$disconnect().catch(() => {});
    await db.drop().catch((err) => progress(`cleanup failed: ${String(err)}`));
  };
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  try {
    const ledger = createLedger(prisma);
    const { settleTask } = createSettlementActivities({ prisma, config });

    const total = 2 * n + warmup + PROBES;
    progress(`fixture: ${total} completed, verified tasks with their holds (not timed)`);
    const setupStarted = performance.now();
    const fixture = await createFixture(prisma, ledger, terms, total, concurrency);
    const setupSeconds = round((performance.now() - setupStarted) / 1000, 1);
    progress(`fixture ready in ${setupSeconds} s`);
    const warm = fixture.tasks.slice(0, warmup);
    const batches = {
      sequential: fixture.tasks.slice(warmup, warmup + n),
      concurrent: fixture.tasks.slice(warmup + n, warmup + 2 * n),
    };

    const problems: string[] = [];
    const clientRef: AccountRef = { kind: 'client', ownerId: fixture.clientId };
    let topups = 0n;
    const topup = (key: string) => {
      topups += 1n;
      return ledger.post({
        idempotencyKey: `bench:topup:${key}`,
        type: 'topup',
        legs: [{ from: { kind: 'external_topups' }, to: clientRef, amount: 1n }],
      });
    };
    const settleOnce = async (t: FixtureTask, posted: boolean) => {
      const problem = summaryProblem(t, await settleTask({ taskId: t.id, attemptNo: 1 }), posted);
      if (problem) problems.push(problem);
    };

    // Unmeasured warm-up of every path: JIT, the pool's connections, the accounts' first rows.
    progress(`warm-up: ${warmup} of each call`);
    for (let i = 0; i < warmup; i++) {
      const t = warm[i] as FixtureTask;
      await prisma.$queryRaw`SELECT 1`;
      await topup(`warmup:${i}`);
      await settleOnce(t, true);
      await settleOnce(t, false);
    }
    // Open the pool's connections now, not inside the first concurrent phase.
    await runPool(4 * concurrency, concurrency, () => prisma.$queryRaw`SELECT 1`);

    progress(`counting the statements of each call on ${PROBES} more tasks`);
    const statements = await countStatements(
      fixture.tasks.slice(warmup + 2 * n),
      async (t, prisma, statementsSent) => {
        const probe = {
          ledger: createLedger(prisma),
          settleTask: createSettlementActivities({ prisma, config }).settleTask,
        };
        const counted = async (fn: () => Promise<unknown>) => {
          const before = statementsSent();
          await fn();
          return statementsSent() - before;
        };
        return {
          select1: await counted(() => prisma.$queryRaw`SELECT 1`),
          topup: await counted(() => {
            topups += 1n;
            return probe.ledger.post({
              idempotencyKey: `bench:topup:probe:${t.id}`,
              type: 'topup',
              legs: [{ from: { kind: 'external_topups' }, to: clientRef, amount: 1n }],
            });
          }),
          settle: await counted(async () => {
            const problem = summaryProblem(t, await probe.settleTask({ taskId: t.id, attemptNo: 1 }), true);
            if (problem) problems.push(problem);
          }),
          replay: await counted(async () => {
            const problem = summaryProblem(t, await probe.settleTask({ taskId: t.id, attemptNo: 1 }), false);
            if (problem) problems.push(problem);
          }),
        };
      },
      db.url,
    );
    progress(
      `statements per call: ${Object.entries(statements)
        .map(([k, v]) => `${k} ${v.join('/')}`)
        .join(', ')}`,
    );

    const runs = async (c: number, tasks: FixtureTask[], tag: string) => ({
      select1: await timeCalls(`SELECT 1 ×${c}`, n, c, () => prisma.$queryRaw`SELECT 1`),
      topup: await timeCalls(`ledger top-up ×${c}`, n, c, (i) => topup(`${tag}:${i}`)),
      settle: await timeCalls(`settleTask ×${c}`, n, c, (i) => settleOnce(tasks[i] as FixtureTask, true)),
      replay: await timeCalls(`settleTask replay ×${c}`, n, c, (i) =>
        settleOnce(tasks[i] as FixtureTask, false),
      ),
    });
    const sequential = await runs(1, batches.sequential, 'seq');
    const concurrent = await runs(concurrency, batches.concurrent, `c${concurrency}`);

    const ratio = (a: Phase, b: Phase) => ({
      p50: round(a.latencyMs.p50 / b.latencyMs.p50, 2),
      p99: round(a.latencyMs.p99 / b.latencyMs.p99, 2),
    });
    const ratiosOf = (r: typeof sequential) => ({
      settleOverSelect1: ratio(r.settle, r.select1),
      settleOverTopup: ratio(r.settle, r.topup),
      replayOverSettle: ratio(r.replay, r.settle),
    });
    const ratios = { sequential: ratiosOf(sequential), concurrent: ratiosOf(concurrent) };

    progress('verifying the ledger and the balances');
    const verify = await ledger.verify();
    const { checks, balances } = await checkBalances(prisma, ledger, fixture, topups);
    const summaries: Check = {
      name: 'activity results',
      ok: problems.length === 0,
      detail: `${total * 2 - problems.length}/${total * 2} settle/replay calls returned the expected figures`,
    };
    const allChecks = [
      { name: 'ledger.verify()', ok: verify.ok, detail: verify.ok ? 'ok' : verify.problems.join('; ') },
      summaries,
      ...checks,
    ];
    const describe = {
      database: db.backend === 'postgres' ? 'PostgreSQL (DATABASE_URL)' : 'PGlite in memory',
      pool: POOL,
    };
    printTable({ sequential, concurrent }, ratios, statements, allChecks, describe, n);

    const file = path.join(RESULTS_DIR, `settlement-${mode}.json`);
    const results = {
      mode,
      timestamp: new Date().toISOString(),
      machine,
      parameters: {
        ...params,
        fixtureTasks: total,
        nodes: NODES,
        model: { ...MODEL, pricePerRequest: 10, pricePerInputToken: 2, pricePerOutputToken: 5 },
        terms,
        ...describe,
      },
      setupSeconds,
      sequential,
      concurrent,
      ratios,
      statementsPerCall: statements,
      checks: allChecks,
      balances,
      ...(problems.length > 0 ? { problems: problems.slice(0, 20) } : {}),
    };
    // Written whole or not at all: an interrupted run never leaves a truncated results file.
    await writeFile(`${file}.tmp`, `${JSON.stringify(results, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
    progress(`results written to ${path.relative(process.cwd(), file)}`);
    const failed = allChecks.filter((c) => !c.ok);
    if (failed.length > 0) throw new Error(`checks failed: ${failed.map((c) => c.name).join(', ')}`);
  } finally {
    await stop();
  }
}

type Kind = 'select1' | 'topup' | 'settle' | 'replay';

/** Run `probe` on each task with the counting client; each kind's statement counts, task by task. */
async function countStatements(
  tasks: FixtureTask[],
  probe: (t: FixtureTask, prisma: PrismaClient, statements: () => number) => Promise<Record<Kind, number>>,
  url: string,
): Promise<Record<Kind, number[]>> {
  const counting = countingPrisma(url);
  const out: Record<Kind, number[]> = { select1: [], topup: [], settle: [], replay: [] };
  try {
    for (const t of tasks) {
      const counts = await probe(t, counting.prisma, counting.statements);
      for (const k of Object.keys(out) as Kind[]) out[k].push(counts[k]);
    }
  } finally {
    await counting.prisma.$disconnect();
    await counting.end().catch(() => {});
  }
  return out;
}

type Runs = Record<Kind, Phase>;
type Ratios = Record<
  'settleOverSelect1' | 'settleOverTopup' | 'replayOverSettle',
  { p50: number; p99: number }
>;

function printTable(
  runs: { sequential: Runs; concurrent: Runs },
  ratios: { sequential: Ratios; concurrent: Ratios },
  statements: Record<Kind, number[]>,
  checks: Check[],
  describe: { database: string; pool: number },
  n: number,
) {
  const row = (cells: Array<string | number>) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(20) : String(c).padStart(9))).join(' ');
  const ms = (v: number) => v.toFixed(2);
  const names: Record<keyof Runs, string> = {
    select1: 'SELECT 1',
    topup: 'ledger top-up',
    settle: 'settleTask',
    replay: 'settleTask (replay)',
  };
  const lines = (r: Runs) =>
    (Object.keys(names) as Array<keyof Runs>).map((k) => {
      const p = r[k];
      const l = p.latencyMs;
      return row([
        names[k],
        statements[k].at(-1) ?? '',
        p.concurrency,
        p.perSecond,
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.mean),
        ms(l.max),
      ]);
    });
  const ratioLines = (label: string, r: Ratios) => [
    `  ${label}: settleTask ÷ SELECT 1  p50 ×${r.settleOverSelect1.p50}  p99 ×${r.settleOverSelect1.p99}`,
    `  ${' '.repeat(label.length)}  settleTask ÷ top-up    p50 ×${r.settleOverTopup.p50}  p99 ×${r.settleOverTopup.p99}`,
    `  ${' '.repeat(label.length)}  replay ÷ settleTask    p50 ×${r.replayOverSettle.p50}  p99 ×${r.replayOverSettle.p99}`,
  ];
  const c = runs.concurrent.settle.concurrency;
  console.log(
    [
      '',
      `Settlement overhead (database: ${describe.database}; pool ${describe.pool}; ${n} calls per row)`,
      row(['', 'stmts', 'conc.', 'per s', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'max ms']),
      ...lines(runs.sequential),
      ...lines(runs.concurrent),
      ...ratioLines('sequential     ', ratios.sequential),
      ...ratioLines(`concurrency ${String(c).padEnd(3)}`, ratios.concurrent),
      '  stmts: statements (round trips, BEGIN/COMMIT included) one call sends, counted untimed',
      '',
      ...checks.map((k) => `  ${k.ok ? 'ok  ' : 'FAIL'} ${k.name.padEnd(17)} ${k.detail}`),
      '',
    ].join('\n'),
  );
}

runBench(main);
