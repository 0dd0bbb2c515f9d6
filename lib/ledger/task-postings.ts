import type { Ledger, PostResult } from './types.js';

/**
 * The postings of a task's tokens, one place for their keys and legs. Capture and release share
 * `task:<id>:settle`, so a task is settled once: whichever comes first wins, the other changes nothing.
 */
export const holdKey = (taskId: string) => `task:${taskId}:hold`;
export const settlementKey = (taskId: string) => `task:${taskId}:settle`;

export interface TaskHold {
  taskId: string;
  clientId: string;
  amount: bigint;
}

/** Move the task's price cap from the client's available balance to its held balance. */
export function postHold(ledger: Ledger, hold: TaskHold): Promise<PostResult> {
  return ledger.post({
    idempotencyKey: holdKey(hold.taskId),
    type: 'hold',
    reference: hold.taskId,
    legs: [
      {
        from: { kind: 'client', ownerId: hold.clientId },
        to: { kind: 'client_hold', ownerId: hold.clientId },
        amount: hold.amount,
      },
    ],
  });
}

/** Give the whole hold back to the client (failed, cancelled or abandoned task). */
export function postRelease(ledger: Ledger, hold: TaskHold): Promise<PostResult> {
  return ledger.post({
    idempotencyKey: settlementKey(hold.taskId),
    type: 'release',
    reference: hold.taskId,
    legs: [
      {
        from: { kind: 'client_hold', ownerId: hold.clientId },
        to: { kind: 'client', ownerId: hold.clientId },
        amount: hold.amount,
      },
    ],
  });
}
