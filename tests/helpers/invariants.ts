import type { Client } from '@temporalio/client';
import { expect } from 'vitest';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { createLedger } from '../../lib/ledger/ledger.js';
import { holdKey, settlementKey } from '../../lib/ledger/task-postings.js';
import { OPEN_OUTCOMES } from '../../workflows/task-status.js';

const WORKFLOW_STATUS: Record<string, string> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
};

export interface TaskAudit {
  status: string;
  settlement: 'captured' | 'released' | null;
}

/**
 * The promises a finished task keeps, checked from the outside: the row, the workflow's outcome and
 * its `TaskStatus`/`TaskSettlement` search attributes agree; a completed task captured its hold and a
 * failed or cancelled one released all of it (captured + released = held, never both); no attempt is
 * left open.
 */
export async function auditFinishedTask(
  prisma: PrismaClient,
  temporal: Client,
  taskId: string,
): Promise<TaskAudit> {
  const handle = temporal.workflow.getHandle(taskId);
  await handle.result().catch(() => undefined);
  const row = await prisma.task.findUniqueOrThrow({ where: { id: taskId } });
  const description = await handle.describe();
  const attrs = description.searchAttributes as Record<string, string[] | undefined>;
  const workflowStatus = WORKFLOW_STATUS[description.status.name];
  const where = `task ${taskId}`;

  expect(row.status, `${where}: row vs workflow`).toBe(workflowStatus);
  expect(attrs.TaskStatus?.[0], `${where}: TaskStatus`).toBe(row.status);

  const ledger = createLedger(prisma);
  const hold = await ledger.findTransaction(holdKey(taskId));
  const settled = await ledger.findTransaction(settlementKey(taskId));
  const held = row.holdAmount ?? 0n;
  if (held > 0n) {
    expect(hold, `${where}: hold posted`).toBeTruthy();
    const expected = row.status === 'completed' ? 'capture' : 'release';
    expect(settled?.type, `${where}: settlement`).toBe(expected);
    expect(attrs.TaskSettlement?.[0], `${where}: TaskSettlement`).toBe(
      expected === 'capture' ? 'captured' : 'released',
    );
    if (row.status !== 'completed') expect(row.price, `${where}: no price on an unpaid task`).toBeNull();
  }

  const open = await prisma.taskAttempt.count({ where: { taskId, outcome: { in: [...OPEN_OUTCOMES] } } });
  expect(open, `${where}: open attempts`).toBe(0);
  if (row.status === 'completed') expect(row.result, `${where}: result`).not.toBeNull();
  return {
    status: row.status,
    settlement: settled ? (settled.type === 'capture' ? 'captured' : 'released') : null,
  };
}

/** The ledger as a whole still balances (every posting sums to zero, cached balances match). */
export async function expectLedgerBalanced(prisma: PrismaClient) {
  const report = await createLedger(prisma).verify();
  expect(report.ok, JSON.stringify(report)).toBe(true);
}
