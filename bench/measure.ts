import proto from '@temporalio/proto';
import { type LatencySummary, runPool, summarizeLatencies } from './stats.js';

const { EventType } = proto.temporal.api.enums.v1;

/** A progress line on stdout, prefixed so it stands apart from any log output. */
export const progress = (line: string) => void process.stdout.write(`[bench] ${line}\n`);

export interface Measurement {
  count: number;
  concurrency: number;
  seconds: number;
  /** Completed items per second of wall time, over the whole run. */
  perSecond: number;
  latencyMs: LatencySummary;
}

/**
 * Run `job(0 … count-1)` at `concurrency`, with a progress line every 5 s. Each job resolves with its
 * own latency in ms (it knows which part of its work is the latency being measured).
 */
export async function measure(
  label: string,
  count: number,
  concurrency: number,
  job: (index: number) => Promise<number>,
): Promise<Measurement> {
  const latencies: number[] = [];
  const started = performance.now();
  const rate = () => latencies.length / ((performance.now() - started) / 1000);
  const ticker = setInterval(
    () => progress(`${label}: ${latencies.length}/${count} (${rate().toFixed(1)}/s)`),
    5_000,
  );
  try {
    await runPool(count, concurrency, async (i) => void latencies.push(await job(i)));
  } finally {
    clearInterval(ticker);
  }
  const seconds = (performance.now() - started) / 1000;
  const result = {
    count,
    concurrency,
    seconds: round(seconds, 2),
    perSecond: round(count / seconds, 2),
    latencyMs: summarizeLatencies(latencies),
  };
  progress(`${label}: ${count}/${count} in ${result.seconds} s (${result.perSecond}/s)`);
  return result;
}

export interface PhaseOptions {
  tasks: number;
  concurrency: number;
  warmup: number;
  /** How many finished workflows' histories to count events in. */
  historySample: number;
}

export interface PhaseResult extends Measurement {
  eventsPerItem: number;
  eventsSample: number[];
  /** Mean events of each type per history. */
  eventsByType: Record<string, number>;
}

export const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * Mean length of the given workflows' histories (each must have finished), and how many events of each
 * type a history has on average (where a workflow spends its events).
 */
export async function historyEvents(
  fetchHistory: (workflowId: string) => Promise<{ events?: Array<{ eventType?: number | null }> | null }>,
  workflowIds: string[],
): Promise<{ mean: number; sample: number[]; byType: Record<string, number> }> {
  const histories = await Promise.all(workflowIds.map(async (id) => (await fetchHistory(id)).events ?? []));
  const byType: Record<string, number> = {};
  for (const event of histories.flat()) {
    const name = EventType[event.eventType ?? 0]?.replace(/^EVENT_TYPE_/, '') ?? String(event.eventType);
    byType[name] = (byType[name] ?? 0) + 1;
  }
  for (const name of Object.keys(byType)) byType[name] = round((byType[name] ?? 0) / histories.length, 1);
  const sample = histories.map((h) => h.length);
  return { mean: round(sample.reduce((a, b) => a + b, 0) / sample.length, 1), sample, byType };
}

/** `n` indexes spread evenly over `0 … count-1`. */
export function spread(count: number, n: number): number[] {
  const picks = Math.min(n, count);
  return [...new Set(Array.from({ length: picks }, (_, k) => Math.floor((k * count) / picks)))];
}

/** Run a bench's main: exit 0 when it resolves, 1 with the error when it fails. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      console.error(`\nbench failed: ${err.stack ?? err.message}`);
      process.exit(1);
    },
  );
}
