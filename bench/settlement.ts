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
import { rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createSettlementActivities } from '../activities/settlement.js';
import { loadConfig } from '../lib/config.js';
import { createPrisma } from '../lib/db/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import type { AccountRef } from '../lib/ledger/types.js';
import type { PricingTerms } from '../lib/pricing.js';
import { createTestDatabase, type TestDatabase } from '../tests/helpers/database.js';
import { progress, round, runBench } from './measure.js';
import { type Check, checkBalances, summaryProblem } from './settlement-checks.js';
import { createFixture, type FixtureTask, MODEL, NODES } from './settlement-fixture.js';
import { printTable } from './settlement-report.js';
import { countStatements, type Phase, timeCalls } from './settlement-timing.js';
import { runPool } from './stats.js';

const RESULTS_DIR = path.join(import.meta.dirname, 'results');
/** The coordinator's pool size (`createPrisma` without `max`: pg's default), so calls queue as in a worker. */
const POOL = 10;
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

runBench(main);
