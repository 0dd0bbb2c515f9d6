import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Endpoints } from '../lib/services.js';
import { connectTemporalClient } from '../lib/temporal/connection.js';
import { ensureNamespace } from '../lib/temporal/namespace.js';
import { type RunningWorker, startTemporalWorker } from '../worker/worker.js';
import type { BaselineActivities, baselineWorkflow } from './baseline-workflow.js';
import { historyEvents, measure, type PhaseOptions, type PhaseResult, progress, spread } from './measure.js';
import { runPool } from './stats.js';

const workflowsPath = fileURLToPath(new URL('./baseline-workflow.ts', import.meta.url));

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
  const { connection, client } = connectTemporalClient(endpoints.temporalAddress, config.TEMPORAL_NAMESPACE);
  let worker: RunningWorker | undefined;
  try {
    // An external server may lack the namespace (the coordinator's own worker registers it only later).
    await ensureNamespace(connection, config.TEMPORAL_NAMESPACE, log);
    worker = await startTemporalWorker(services, { taskQueue, workflowsPath, activities });
    const run = async (id: string) => {
      const started = performance.now();
      await client.workflow.execute<typeof baselineWorkflow>('baselineWorkflow', {
        taskQueue,
        workflowId: id,
      });
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
    await worker?.close();
    await connection.close();
  }
}
