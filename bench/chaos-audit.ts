import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { holdKey, settlementKey } from '../lib/ledger/task-postings.js';
import type { LedgerTransactionRecord } from '../lib/ledger/types.js';
import { isTerminal, OPEN_OUTCOMES, type TaskStatus } from '../workflows/task-status.js';
import { runPool } from './stats.js';

/** What a task's workflow says about it (describe: status and search attributes). */
interface WorkflowView {
  status: string;
  taskStatus: string | null;
  settlement: string | null;
}

const WORKFLOW_STATUS: Record<string, string> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
};

/** One broken promise, named with its task, for the report (capped). */
export interface Finding {
  taskId: string;
  problem: string;
}

export interface ChaosAudit {
  tasks: {
    rows: number;
    completed: number;
    failed: number;
    cancelled: number;
    unfinished: number;
    neverAdmitted: number;
  };
  /** Promised zero: a cancelled or failed task whose hold was captured. */
  chargedWhileCancelled: number;
  /** Promised zero: a completed task whose hold was released instead of captured. */
  completedButReleased: number;
  /** Promised zero: a hold with no settlement (the task finished, or did not finish in time). */
  strandedHolds: number;
  /** Promised zero: a settlement that does not move exactly the hold out of client_hold. */
  settlementAmountMismatches: number;
  /** Promised zero: an attempt still pending/accepted although its task is finished. */
  leakedAttempts: number;
  lostAttempts: number;
  tasksWithLostAttempts: number;
  /** Tasks that failed with every attempt used ("all N attempts failed"). */
  tasksExhaustedAttempts: number;
  attemptOutcomes: Record<string, number>;
  /** Promised zero: the row's status is not what the workflow's outcome and `TaskStatus` say. */
  statusMismatches: number;
  /** Promised zero: `TaskSettlement` is not the ledger's settlement of the task. */
  settlementAttributeMismatches: number;
  workflowStatuses: Record<string, number>;
  failureReasons: Record<string, number>;
  ledger: { ok: boolean; problems: string[] };
  payouts: { nodeBalances: string; completedRewards: string; equal: boolean };
  findings: Finding[];
}

const MAX_FINDINGS = 50;

/**
 * Everything the coordinator promises about finished tasks, counted over the whole database: the row,
 * the workflow (outcome and search attributes), the ledger's hold and settlement of each task, the open
 * attempts, the ledger's own invariants and the node payouts.
 */
export async function auditChaosRun(options: {
  prisma: PrismaClient;
  temporal: Client;
  /** Tasks that were submitted but never got a row. */
  neverAdmitted: number;
  nodeIds: string[];
  say: (line: string) => void;
}): Promise<ChaosAudit> {
  const { prisma, temporal } = options;
  const ledger = createLedger(prisma);
  const findings: Finding[] = [];
  const note = (taskId: string, problem: string) => {
    if (findings.length < MAX_FINDINGS) findings.push({ taskId, problem });
  };

  const rows = await prisma.task.findMany({
    select: { id: true, status: true, holdAmount: true, reward: true, price: true, failureReason: true },
  });
  const attempts = await prisma.taskAttempt.findMany({ select: { taskId: true, outcome: true } });
  const statusOf = new Map(rows.map((r) => [r.id, r.status as TaskStatus]));

  const count = (s: TaskStatus) => rows.filter((r) => r.status === s).length;
  const result: ChaosAudit = {
    tasks: {
      rows: rows.length,
      completed: count('completed'),
      failed: count('failed'),
      cancelled: count('cancelled'),
      unfinished: rows.filter((r) => !isTerminal(r.status as TaskStatus)).length,
      neverAdmitted: options.neverAdmitted,
    },
    chargedWhileCancelled: 0,
    completedButReleased: 0,
    strandedHolds: 0,
    settlementAmountMismatches: 0,
    leakedAttempts: 0,
    lostAttempts: 0,
    tasksWithLostAttempts: 0,
    tasksExhaustedAttempts: 0,
    attemptOutcomes: {},
    statusMismatches: 0,
    settlementAttributeMismatches: 0,
    workflowStatuses: {},
    failureReasons: {},
    ledger: { ok: false, problems: [] },
    payouts: { nodeBalances: '0', completedRewards: '0', equal: false },
    findings,
  };

  // Attempts: open ones of finished tasks, lost ones.
  const lostTasks = new Set<string>();
  for (const a of attempts) {
    result.attemptOutcomes[a.outcome] = (result.attemptOutcomes[a.outcome] ?? 0) + 1;
    const status = statusOf.get(a.taskId);
    if ((OPEN_OUTCOMES as readonly string[]).includes(a.outcome) && status && isTerminal(status)) {
      result.leakedAttempts++;
      note(a.taskId, `attempt still ${a.outcome} on a ${status} task`);
    }
    if (a.outcome === 'lost') {
      result.lostAttempts++;
      lostTasks.add(a.taskId);
    }
  }
  result.tasksWithLostAttempts = lostTasks.size;
  for (const r of rows) {
    if (r.status === 'failed' && r.failureReason && /^all \d+ attempts failed/.test(r.failureReason)) {
      result.tasksExhaustedAttempts++;
    }
    if (r.status === 'failed') {
      const reason = reasonClass(r.failureReason);
      result.failureReasons[reason] = (result.failureReasons[reason] ?? 0) + 1;
    }
  }

  // Per task: ledger and workflow.
  let audited = 0;
  await runPool(rows.length, 6, async (i) => {
    const row = rows[i] as (typeof rows)[number];
    const status = row.status as TaskStatus;
    const [hold, settle] = await Promise.all([
      ledger.findTransaction(holdKey(row.id)),
      ledger.findTransaction(settlementKey(row.id)),
    ]);
    const held = row.holdAmount ?? 0n;
    if (settle?.type === 'capture' && (status === 'cancelled' || status === 'failed')) {
      result.chargedWhileCancelled++;
      note(row.id, `${status} but its hold was captured`);
    }
    if (settle?.type === 'release' && status === 'completed') {
      result.completedButReleased++;
      note(row.id, 'completed but its hold was released');
    }
    if (hold && !settle) {
      result.strandedHolds++;
      note(row.id, `hold posted, no settlement (task ${status})`);
    }
    if (settle && hold) {
      const out = -legOn(settle, 'client_hold');
      const into = legOn(hold, 'client_hold');
      if (out !== held || into !== held) {
        result.settlementAmountMismatches++;
        note(row.id, `held ${held}, hold moved ${into}, settlement moved ${out} out of client_hold`);
      }
    }

    const wf = await describeSettled(temporal, row.id, isTerminal(status));
    result.workflowStatuses[wf.status] = (result.workflowStatuses[wf.status] ?? 0) + 1;
    const expected = WORKFLOW_STATUS[wf.status];
    const rowVsWorkflow = isTerminal(status) ? expected === status : wf.status === 'RUNNING';
    if (!rowVsWorkflow || (wf.status !== 'MISSING' && wf.taskStatus !== status)) {
      result.statusMismatches++;
      note(row.id, `row ${status}, workflow ${wf.status}, TaskStatus ${wf.taskStatus ?? 'unset'}`);
    }
    const ledgerSettlement = settle ? (settle.type === 'capture' ? 'captured' : 'released') : null;
    if (wf.status !== 'MISSING' && wf.settlement !== ledgerSettlement) {
      result.settlementAttributeMismatches++;
      note(row.id, `TaskSettlement ${wf.settlement ?? 'unset'}, ledger ${settle?.type ?? 'no settlement'}`);
    }
    if (++audited % 100 === 0) options.say(`audit: ${audited}/${rows.length} tasks`);
  });

  result.ledger = await ledger.verify();

  let nodeBalances = 0n;
  for (const nodeId of options.nodeIds) {
    nodeBalances += (await ledger.balance({ kind: 'node', ownerId: nodeId })).total;
  }
  const completedRewards = rows
    .filter((r) => r.status === 'completed')
    .reduce((sum, r) => sum + (r.reward ?? 0n), 0n);
  result.payouts = {
    nodeBalances: nodeBalances.toString(),
    completedRewards: completedRewards.toString(),
    equal: nodeBalances === completedRewards,
  };
  return result;
}

/** The net amount a transaction moved on accounts of `kind`. */
function legOn(tx: LedgerTransactionRecord, kind: string): bigint {
  return tx.postings.filter((p) => p.account.kind === kind).reduce((sum, p) => sum + p.amount, 0n);
}

/**
 * Describe the task's workflow. A finished task's workflow closes a moment after its row is written,
 * so a running one is described again for a while before it counts as running.
 */
async function describeSettled(
  temporal: Client,
  taskId: string,
  rowTerminal: boolean,
): Promise<WorkflowView> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    let view: WorkflowView;
    try {
      const d = await temporal.workflow.getHandle(taskId).describe();
      const attrs = d.searchAttributes as Record<string, unknown[] | undefined>;
      view = {
        status: d.status.name,
        taskStatus: (attrs.TaskStatus?.[0] as string | undefined) ?? null,
        settlement: (attrs.TaskSettlement?.[0] as string | undefined) ?? null,
      };
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      view = { status: 'MISSING', taskStatus: null, settlement: null };
    }
    if (!(rowTerminal && view.status === 'RUNNING') || Date.now() > deadline) return view;
    await sleep(500);
  }
}

/** A failure reason without its task-specific details, to group them. */
function reasonClass(reason: string | null): string {
  if (!reason) return '(none)';
  return reason
    .replace(/#\d+ /g, '#n ')
    .replace(/\([^)]*\)/g, '(…)')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
}
