import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import type { Services } from '../lib/services.js';
import { ensureReaperSchedule } from '../lib/tasks/reaper-schedule.js';
import { connectTemporalWorker } from '../lib/temporal/connection.js';
import { ensureNamespace } from '../lib/temporal/namespace.js';
import { installTemporalRuntime } from '../lib/temporal/runtime.js';

export interface RunningWorker {
  close(): Promise<void>;
}

const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** Run the main-queue worker (task workflows and shared activities) until closed. */
export async function startWorker(services: Services): Promise<RunningWorker> {
  await ensureNamespace(services.temporal.connection, services.config.TEMPORAL_NAMESPACE, services.log);
  await ensureReaperSchedule(services.temporal.client, services.config, services.log);
  return startTemporalWorker(services, {
    taskQueue: services.config.TEMPORAL_TASK_QUEUE,
    workflowsPath,
    activities: createActivities(services),
  });
}

/** A Temporal worker on its own native connection, with our logging; shared by both worker kinds. */
export async function startTemporalWorker(
  services: Pick<Services, 'config' | 'log' | 'endpoints'>,
  options: { taskQueue: string; workflowsPath?: string; activities: object },
): Promise<RunningWorker> {
  const { config, log } = services;
  installTemporalRuntime(log);
  const connection = await connectTemporalWorker(services.endpoints.temporalAddress, log);
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: options.taskQueue,
    ...(options.workflowsPath ? { workflowsPath: options.workflowsPath } : {}),
    activities: options.activities,
  }).catch(async (err) => {
    await connection.close(); // the api retries this; a failed try must not leak its connection
    throw err;
  });
  const running = worker.run();
  log.info({ taskQueue: options.taskQueue }, 'worker running');
  return {
    async close() {
      // Drains in-flight activities before resolving; workflows resume on any other worker.
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
