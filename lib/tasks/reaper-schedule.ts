import { type Client, ScheduleAlreadyRunning, type ScheduleOptions } from '@temporalio/client';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

/** The reaper's schedule id: one per task queue, so coordinators sharing a namespace keep their own. */
export const reaperScheduleId = (taskQueue: string) => `neurogrid-reaper-${taskQueue}`;

/**
 * Make sure the schedule that runs the reaper of stranded holds exists with this configuration. Run
 * by every worker at start (idempotent): the schedule lives in Temporal, so the reaper keeps running
 * whichever processes die, and an operator can pause or trigger it in the Temporal UI.
 */
export async function ensureReaperSchedule(
  client: Client,
  config: Pick<Config, 'TEMPORAL_TASK_QUEUE' | 'REAPER_INTERVAL_MS' | 'TASK_STRANDED_GRACE_MS'>,
  log: Logger,
): Promise<void> {
  const scheduleId = reaperScheduleId(config.TEMPORAL_TASK_QUEUE);
  const options = {
    scheduleId,
    spec: { intervals: [{ every: config.REAPER_INTERVAL_MS }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'reaperWorkflow',
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args: [{ graceMs: config.TASK_STRANDED_GRACE_MS }],
      // A pass that cannot run (no worker) must not pile up behind the next.
      workflowExecutionTimeout: Math.max(60_000, 2 * config.REAPER_INTERVAL_MS),
    },
    policies: { overlap: 'SKIP', catchupWindow: 60_000 },
  } satisfies ScheduleOptions;
  try {
    await client.schedule.create(options);
    log.info({ scheduleId, everyMs: config.REAPER_INTERVAL_MS }, 'reaper schedule created');
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({
      ...previous,
      spec: options.spec,
      action: { ...previous.action, ...options.action },
      policies: { ...previous.policies, ...options.policies },
    }));
  }
}
