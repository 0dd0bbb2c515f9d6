import { ApplicationFailure } from '@temporalio/activity';
import type { Services } from '../lib/services.js';
import { type CoordinatorFrame, formatAttemptId, PROTOCOL_VERSION } from '../protocol/frames.js';
import type { TaskType } from '../protocol/task-types.js';
import { FailureType } from '../workflows/policies.js';

export interface DeliverAssignmentInput {
  taskId: string;
  attemptNo: number;
  nodeId: string;
  acceptTimeoutMs: number;
  resultTimeoutMs: number;
}

/** What delivery needs of the node sockets this process holds (the api's `NodeSessions`). */
export interface HeldSockets {
  get(
    nodeId: string,
  ):
    | { hello?: object | undefined; assigned: Set<string>; send(frame: CoordinatorFrame): boolean }
    | undefined;
}

type Deps = Pick<Services, 'prisma'> & { sessions: HeldSockets; hostId: string };

/**
 * Activities of an api process's own host task queue: they push frames to node sockets that only
 * this process holds. The prompt is read here from PostgreSQL, so it never enters workflow history.
 */
export function createHostActivities({ prisma, sessions, hostId }: Deps) {
  const sessionOf = (nodeId: string) => {
    const session = sessions.get(nodeId);
    if (!session?.hello) {
      throw ApplicationFailure.create({
        type: FailureType.NodeNotConnected,
        message: `node ${nodeId} is not connected to host ${hostId}`,
        nonRetryable: true,
      });
    }
    return session;
  };

  return {
    async deliverAssignment(input: DeliverAssignmentInput): Promise<void> {
      const session = sessionOf(input.nodeId);
      const task = await prisma.task.findUnique({
        where: { id: input.taskId },
        select: {
          input: true,
          params: true,
          model: { select: { name: true, version: true, taskType: true } },
        },
      });
      if (!task) {
        throw ApplicationFailure.create({
          type: FailureType.TaskNotFound,
          message: `task ${input.taskId} not found`,
          nonRetryable: true,
        });
      }
      const attemptId = formatAttemptId(input.taskId, input.attemptNo);
      session.assigned.add(attemptId);
      const sent = session.send({
        v: PROTOCOL_VERSION,
        type: 'assign',
        attemptId,
        taskId: input.taskId,
        model: { ...task.model, taskType: task.model.taskType as TaskType },
        input: task.input,
        params: (task.params ?? {}) as Record<string, unknown>,
        acceptTimeoutMs: input.acceptTimeoutMs,
        resultTimeoutMs: input.resultTimeoutMs,
      });
      if (!sent) {
        throw ApplicationFailure.create({
          type: FailureType.NodeNotConnected,
          message: `node ${input.nodeId}'s socket closed before the assignment was sent`,
          nonRetryable: true,
        });
      }
    },

    async deliverCancel(input: { taskId: string; attemptNo: number; nodeId: string; reason: string }) {
      const session = sessions.get(input.nodeId);
      const attemptId = formatAttemptId(input.taskId, input.attemptNo);
      session?.assigned.delete(attemptId);
      session?.send({ v: PROTOCOL_VERSION, type: 'cancel', attemptId, reason: input.reason });
    },
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
