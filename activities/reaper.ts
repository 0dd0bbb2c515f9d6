import { WorkflowNotFoundError } from '@temporalio/client';
import type { Services } from '../lib/services.js';
import { startTaskWorkflow } from '../lib/tasks/workflow-start.js';

type Deps = Pick<Services, 'prisma' | 'config' | 'log' | 'temporal'>;

/** Most tasks one reaper run looks at; the next run takes the rest. */
const BATCH = 200;

export interface ReapResult {
  /** Queued tasks past the grace period that had not been seen by their workflow. */
  examined: number;
  /** Of those, tasks whose workflow turned out to exist (never examined again). */
  running: number;
  /** Tasks with no workflow: started only to release their hold and fail. */
  abandoned: number;
}

/**
 * The reaper of stranded holds. A task's hold is taken before its workflow starts, so an api process
 * that dies in between, or a keyed 503 that is never retried, leaves a queued task with a hold and no
 * workflow. Such a task was never acknowledged with a 202, so it is not run late: its workflow is
 * started with `abandon`, which releases the whole hold and fails the task, by the same path (and
 * with the same search attributes) as any other failure.
 */
export function createReaperActivities({ prisma, config, log, temporal }: Deps) {
  return {
    async reapStrandedTasks(input: { graceMs: number }): Promise<ReapResult> {
      const candidates = await prisma.task.findMany({
        where: {
          status: 'queued',
          workflowSeenAt: null,
          createdAt: { lt: new Date(Date.now() - input.graceMs) },
        },
        orderBy: { createdAt: 'asc' },
        take: BATCH,
        select: {
          id: true,
          clientId: true,
          deadlineAt: true,
          model: { select: { id: true, name: true, version: true, taskType: true } },
        },
      });
      const result: ReapResult = { examined: candidates.length, running: 0, abandoned: 0 };
      for (const task of candidates) {
        try {
          await temporal.client.workflow.getHandle(task.id).describe();
          result.running++;
          await prisma.task.update({ where: { id: task.id }, data: { workflowSeenAt: new Date() } });
          continue;
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        const graceS = Math.round(input.graceMs / 1000);
        await startTaskWorkflow(temporal.client, config, task, {
          abandon: {
            reason: `the task was not started within ${graceS} s of admission (the coordinator could not reach its workflow service); nothing was charged`,
          },
        });
        result.abandoned++;
      }
      if (result.abandoned > 0) log.warn(result, 'released the holds of stranded tasks');
      return result;
    },
  };
}

export type ReaperActivities = ReturnType<typeof createReaperActivities>;
