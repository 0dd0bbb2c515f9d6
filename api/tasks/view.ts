import type { Prisma } from '../../generated/prisma/client.js';
import { ApiError } from '../errors.js';

export const taskInclude = {
  model: { select: { id: true, name: true, version: true, taskType: true } },
} as const satisfies Prisma.TaskInclude;

export type TaskRow = Prisma.TaskGetPayload<{ include: typeof taskInclude }>;

/** The task as the API shows it; `brief` (lists) leaves out the input and the result. */
export function toTaskView(task: TaskRow, { brief = false } = {}) {
  return {
    id: task.id,
    status: task.status,
    model: { name: task.model.name, version: task.model.version, taskType: task.model.taskType },
    priority: task.priority,
    attempts: task.attempts,
    nodeId: task.nodeId,
    failureReason: task.failureReason,
    /** Tokens (minor units, decimal strings): held at admission; paid, earned and kept once settled. */
    tokens: {
      held: task.holdAmount?.toString() ?? '0',
      price: task.price?.toString() ?? null,
      reward: task.reward?.toString() ?? null,
      fee: task.fee?.toString() ?? null,
    },
    idempotencyKey: task.idempotencyKey,
    deadlineAt: task.deadlineAt,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    startedAt: task.startedAt,
    completedAt: task.completedAt,
    ...(brief ? {} : { input: task.input, params: task.params, result: task.result, verdict: task.verdict }),
  };
}

/** Keyset pagination: the position after the last row of a page, opaque to clients. */
export function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [string, string];
    const createdAt = new Date(at);
    if (typeof id !== 'string' || Number.isNaN(createdAt.getTime())) throw new Error('bad cursor');
    return { createdAt, id };
  } catch {
    throw new ApiError(400, 'validation_failed', 'cursor: not a cursor returned by this endpoint');
  }
}
