import { ApplicationFailure } from '@temporalio/activity';
import { delayPoint } from '../lib/faults.js';
import type { Services } from '../lib/services.js';
import {
  closeOpenAttempts,
  type FinishResult,
  finishAttempt,
  reserveAttempt,
} from '../lib/tasks/attempts.js';
import { FailureType } from '../workflows/policies.js';
import { type ClosedOutcome, type TaskStatus, TERMINAL_STATUSES } from '../workflows/task-status.js';
import type { Verdict } from './verification.js';

type Deps = Pick<Services, 'prisma' | 'store'>;

/** Channel on which a task's status changes are published (for streaming clients). */
export const taskEventsChannel = (taskId: string) => `task:${taskId}`;

/**
 * Bookkeeping of the read model behind `GET /api/tasks/:id`. Every write is idempotent (activities
 * run at least once) and never moves a task out of a terminal status.
 */
export function createTaskActivities({ prisma, store }: Deps) {
  const publish = (taskId: string, event: Record<string, unknown>) =>
    store.pubsub.publish(
      taskEventsChannel(taskId),
      JSON.stringify({ taskId, at: new Date().toISOString(), ...event }),
    );

  const openTask = { status: { notIn: [...TERMINAL_STATUSES] } };

  return {
    async recordTaskStatus(input: {
      taskId: string;
      status: TaskStatus;
      nodeId?: string;
      attempts?: number;
    }) {
      const { taskId, status, nodeId, attempts } = input;
      await prisma.task.updateMany({
        where: { id: taskId, ...openTask },
        data: { status, ...(nodeId ? { nodeId } : {}), ...(attempts ? { attempts } : {}) },
      });
      if (status === 'assigned') {
        await prisma.task.updateMany({
          where: { id: taskId, startedAt: null },
          data: { startedAt: new Date() },
        });
      }
      await publish(taskId, { status, ...(nodeId ? { nodeId } : {}) });
    },

    async startAttempt(input: { taskId: string; attemptNo: number; nodeId: string }) {
      await reserveAttempt(prisma, input);
    },

    /**
     * Close an attempt. A timeout that finds the node's result already stored leaves the attempt open
     * and answers its hash: the result counts (its signal was late, e.g. Temporal was unreachable).
     */
    async finishAttempt(input: {
      taskId: string;
      attemptNo: number;
      outcome: ClosedOutcome;
      error?: string;
    }): Promise<FinishResult> {
      return finishAttempt(prisma, input);
    },

    /** Copy the verified attempt's output into the task and close it as completed. */
    async completeTask(input: { taskId: string; attemptNo: number; verdict: Verdict }) {
      await delayPoint('before-complete');
      const attempt = await prisma.taskAttempt.findUnique({
        where: { taskId_attemptNo: { taskId: input.taskId, attemptNo: input.attemptNo } },
        select: { output: true, nodeId: true },
      });
      if (!attempt?.output) {
        throw ApplicationFailure.create({
          type: FailureType.TaskNotFound,
          message: `attempt ${input.attemptNo} of task ${input.taskId} has no output`,
          nonRetryable: true,
        });
      }
      const result = attempt.output;
      await prisma.$transaction(async (tx) => {
        await tx.task.updateMany({
          where: { id: input.taskId, ...openTask },
          data: {
            status: 'completed',
            result,
            verdict: { ...input.verdict },
            nodeId: attempt.nodeId,
            completedAt: new Date(),
          },
        });
        await closeOpenAttempts(tx, input.taskId, 'the task completed on another attempt');
      });
      await publish(input.taskId, { status: 'completed' });
    },

    /** Fail or cancel the task; any attempt still open is closed in the same transaction. */
    async finishTask(input: { taskId: string; status: 'failed' | 'cancelled'; reason: string }) {
      await prisma.$transaction(async (tx) => {
        // The task row first: its lock orders this against a reservation (`lockOpenTask`).
        await tx.task.updateMany({
          where: { id: input.taskId, ...openTask },
          data: {
            status: input.status,
            failureReason: input.reason.slice(0, 2_000),
            completedAt: new Date(),
          },
        });
        await closeOpenAttempts(tx, input.taskId, `task ${input.status}: ${input.reason}`);
      });
      await publish(input.taskId, { status: input.status, reason: input.reason });
    },
  };
}
