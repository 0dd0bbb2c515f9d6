import type { Prisma, PrismaClient } from '../../generated/prisma/client.js';
import {
  type ClosedOutcome,
  isTerminal,
  OPEN_OUTCOMES,
  type TaskStatus,
} from '../../workflows/task-status.js';

/**
 * The one owner of an attempt's lifecycle (one assignment of a task to one node):
 * reserved (`pending`) → `accepted` → result stored → closed with a final outcome.
 * Every transition is a conditional write, so a transition that lost a race changes nothing, a
 * closed attempt is never reopened, and no attempt stays open after its task has finished.
 */

type Db = PrismaClient | Prisma.TransactionClient;

export interface AttemptRef {
  taskId: string;
  attemptNo: number;
}

const open = { in: [...OPEN_OUTCOMES] };
const byRef = ({ taskId, attemptNo }: AttemptRef) => ({ taskId_attemptNo: { taskId, attemptNo } });

/** Reserve the attempt for a node (idempotent: a retry finds the same row). */
export async function reserveAttempt(db: Db, ref: AttemptRef & { nodeId: string }): Promise<void> {
  await db.taskAttempt.upsert({ where: byRef(ref), create: ref, update: {} });
}

/**
 * The node accepted. `accepted` the first time; `closed` for a repeated accept or an attempt that is
 * no longer waiting for one (timed out, cancelled, reassigned).
 */
export async function acceptAttempt(
  db: Db,
  ref: AttemptRef & { nodeId: string },
): Promise<'accepted' | 'closed'> {
  const { count } = await db.taskAttempt.updateMany({
    where: { ...ref, outcome: 'pending' },
    data: { outcome: 'accepted', acceptedAt: new Date() },
  });
  return count === 1 ? 'accepted' : 'closed';
}

/**
 * Store the node's output on an open attempt. `stored` the first time; `resent` when the same output
 * is already stored (its first signal may have been lost, so it is signalled again); `closed` for a
 * different output or an attempt that is no longer open.
 */
export async function storeAttemptResult(
  db: Db,
  ref: AttemptRef & { nodeId: string; output: Prisma.InputJsonValue; outputHash: string; usage?: object },
): Promise<'stored' | 'resent' | 'closed'> {
  const { output, outputHash, usage, ...where } = ref;
  const { count } = await db.taskAttempt.updateMany({
    where: { ...where, outcome: open, outputHash: null },
    data: { output, outputHash, ...(usage ? { usage } : {}) },
  });
  if (count === 1) return 'stored';
  const stored = await db.taskAttempt.findUnique({
    where: byRef(ref),
    select: { outcome: true, outputHash: true, nodeId: true },
  });
  const resend =
    stored?.nodeId === ref.nodeId &&
    stored.outputHash === outputHash &&
    OPEN_OUTCOMES.includes(stored.outcome);
  return resend ? 'resent' : 'closed';
}

/** Where an open attempt stands, or null when it is closed or unknown (for reject and error reports). */
export async function openAttempt(db: Db, ref: AttemptRef & { nodeId: string }) {
  const row = await db.taskAttempt.findUnique({ where: byRef(ref), select: { outcome: true, nodeId: true } });
  return row && row.nodeId === ref.nodeId && OPEN_OUTCOMES.includes(row.outcome) ? row : null;
}

export type FinishResult =
  /** The attempt is closed with the outcome asked for (now, or by an earlier run of the same step). */
  | { closed: true }
  /** A timeout found a result the node stored meanwhile (its signal was late): the attempt stays open. */
  | { closed: false; resultHash: string };

/**
 * Close an open attempt with its final outcome. A `timeout` does not close an attempt whose result is
 * already stored: the node delivered, only the signal was late (e.g. Temporal was unreachable).
 */
export async function finishAttempt(
  db: Db,
  ref: AttemptRef & { outcome: ClosedOutcome; error?: string },
): Promise<FinishResult> {
  const attempt = await db.taskAttempt.findUnique({
    where: byRef(ref),
    select: { assignedAt: true, outcome: true, outputHash: true },
  });
  if (!attempt || !OPEN_OUTCOMES.includes(attempt.outcome)) return { closed: true };
  const finishedAt = new Date();
  const { count } = await db.taskAttempt.updateMany({
    where: {
      taskId: ref.taskId,
      attemptNo: ref.attemptNo,
      outcome: open,
      ...(ref.outcome === 'timeout' ? { outputHash: null } : {}),
    },
    data: {
      outcome: ref.outcome,
      error: ref.error?.slice(0, 2_000) ?? null,
      finishedAt,
      latencyMs: finishedAt.getTime() - attempt.assignedAt.getTime(),
    },
  });
  if (count === 0 && ref.outcome === 'timeout') {
    const now = await db.taskAttempt.findUnique({
      where: byRef(ref),
      select: { outcome: true, outputHash: true },
    });
    if (now?.outputHash && OPEN_OUTCOMES.includes(now.outcome)) {
      return { closed: false, resultHash: now.outputHash };
    }
  }
  return { closed: true };
}

/**
 * Close every attempt of a task that is still open, as `cancelled` (the task has finished). Run it in
 * the transaction that moves the task to a terminal status, after that update: the task row's lock
 * orders it against a reservation being made at the same moment (see `lockOpenTask`).
 */
export async function closeOpenAttempts(db: Db, taskId: string, reason: string): Promise<number> {
  const finishedAt = new Date();
  const { count } = await db.taskAttempt.updateMany({
    where: { taskId, outcome: open },
    data: { outcome: 'cancelled', error: reason.slice(0, 2_000), finishedAt },
  });
  return count;
}

/**
 * Lock the task row for a reservation; false when the task has already finished, so no new attempt
 * can be opened for it. Also marks that the task's workflow exists (it is the one calling).
 */
export async function lockOpenTask(tx: Prisma.TransactionClient, taskId: string): Promise<boolean> {
  const rows = await tx.$queryRaw<Array<{ status: TaskStatus; seen: boolean }>>`
    SELECT status::text AS status, workflow_seen_at IS NOT NULL AS seen FROM tasks WHERE id = ${taskId} FOR UPDATE`;
  const row = rows[0];
  if (row === undefined || isTerminal(row.status)) return false;
  // Written once per task, not on every selection.
  if (!row.seen) await tx.task.update({ where: { id: taskId }, data: { workflowSeenAt: new Date() } });
  return true;
}
