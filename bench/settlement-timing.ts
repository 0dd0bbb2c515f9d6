/** Timing the settlement bench's calls, and counting the statements (round trips) each one sends. */
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';
import { progress, round } from './measure.js';
import type { FixtureTask } from './settlement-fixture.js';
import { percentile, runPool } from './stats.js';

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export interface Phase {
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
export async function timeCalls(
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

export type Kind = 'select1' | 'topup' | 'settle' | 'replay';

/** Run `probe` on each task with the counting client; each kind's statement counts, task by task. */
export async function countStatements(
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
