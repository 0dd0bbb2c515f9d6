/** Small measurement helpers shared by the benchmark and the demo. */

/** The `p`-th percentile (0–100, nearest rank) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export interface LatencySummary {
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

/** p50/p99/mean/max in whole milliseconds. */
export function summarizeLatencies(values: readonly number[]): LatencySummary {
  const round = (n: number) => Math.round(n);
  const mean = values.reduce((a, b) => a + b, 0) / (values.length || 1);
  return {
    p50: round(percentile(values, 50)),
    p99: round(percentile(values, 99)),
    mean: round(mean),
    max: round(Math.max(...values)),
  };
}

/**
 * Run `job(0) … job(count - 1)` with at most `concurrency` in flight; resolves with the results in
 * index order. A job that throws stops new jobs from starting and rejects the whole run.
 */
export async function runPool<T>(
  count: number,
  concurrency: number,
  job: (index: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < count) {
      const i = next++;
      try {
        results[i] = await job(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}
