import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Endpoints } from '../lib/services.js';
import { connectTemporalClient } from '../lib/temporal/connection.js';
import { ensureNamespace } from '../lib/temporal/namespace.js';
import { startTemporalWorker } from '../worker/worker.js';
import type { BaselineActivities } from './baseline-workflow.js';
import { historyEvents, type Measurement, measure, progress, spread } from './measure.js';
import { runPool } from './stats.js';

const workflowsPath = fileURLToPath(new URL('./baseline-workflow.ts', import.meta.url));

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

/**
 * The server's ceiling: `baselineWorkflow` (one no-op activity) on its own task queue and worker, run
 * `tasks` times at `concurrency`; latency is start → result as the client sees it.
 */
export async function runBaseline(
  services: { config: Config; log: Logger; endpoints: Endpoints },
  opts: PhaseOptions,
): Promise<PhaseResult> {
  const { config, log, endpoints } = services;
  const taskQueue = `bench-baseline-${randomBytes(4).toString('hex')}`;
  const activities: BaselineActivities = { async noop() {} };
  const { connection, client } = await connectTemporalClient(
    endpoints.temporalAddress,
    config.TEMPORAL_NAMESPACE,
    log,
  );
  // An external server may not have the namespace yet (the coordinator's worker would register it later).
  await ensureNamespace(connection, config.TEMPORAL_NAMESPACE, log);
  const worker = await startTemporalWorker(services, { taskQueue, workflowsPath, activities });
  try {
    const run = async (id: string) => {
      const started = performance.now();
      await client.workflow.execute('baselineWorkflow', { taskQueue, workflowId: id });
      return performance.now() - started;
    };
    // Unmeasured warm-up: JIT, the worker's workflow cache, connection pools.
    progress(`baseline: warm-up (${opts.warmup} workflows)`);
    await runPool(opts.warmup, opts.concurrency, (i) => run(`${taskQueue}-warmup-${i}`));

    const measured = await measure('baseline', opts.tasks, opts.concurrency, (i) => run(`${taskQueue}-${i}`));
    const ids = spread(opts.tasks, opts.historySample).map((i) => `${taskQueue}-${i}`);
    const events = await historyEvents((id) => client.workflow.getHandle(id).fetchHistory(), ids);
    return {
      ...measured,
      eventsPerItem: events.mean,
      eventsSample: events.sample,
      eventsByType: events.byType,
    };
  } finally {
    await connection.close();
    await worker.close();
  }
}
