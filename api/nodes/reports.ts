import { createHash } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Prisma } from '../../generated/prisma/client.js';
import { acceptAttempt, openAttempt, storeAttemptResult } from '../../lib/tasks/attempts.js';
import {
  type CoordinatorErrorCode,
  PROTOCOL_VERSION,
  parseAttemptId,
  type ReportFrame,
} from '../../protocol/frames.js';
import { type NodeReport, nodeReportSignal } from '../../workflows/definitions.js';
import type { NodeSession } from './sessions.js';
import type { FrameAbout, SocketDeps } from './socket.js';

/**
 * How long the signal to a task's workflow may take. Past it the node gets `internal` and sends the
 * report again, rather than waiting for the client's own retries (~20 s) while Temporal is unreachable.
 */
export const SIGNAL_DEADLINE_MS = 3_000;

interface Helpers {
  sendError(session: NodeSession, code: CoordinatorErrorCode, message: string, about: FrameAbout): void;
  ownsAttempt(session: NodeSession, frame: ReportFrame): Promise<boolean>;
}

/**
 * A node's reports on its attempts (accept, reject, result, error): record what the database must know,
 * signal the task's workflow, then ack. Each step is idempotent, so a report re-sent after `internal`
 * or a lost ack is taken again (the workflow drops a duplicate signal) or answered `attempt_closed`.
 */
export function createReports(deps: SocketDeps, { sendError, ownsAttempt }: Helpers) {
  const { prisma, temporal, metrics } = deps;

  /** True when acked; false when refused (the error frame is sent). Throws when it failed (→ internal). */
  async function handle(session: NodeSession, frame: ReportFrame): Promise<boolean> {
    if (!(await ownsAttempt(session, frame))) return false;
    const { taskId, attemptNo } = parseAttemptId(frame.attemptId);
    const ref = { taskId, attemptNo, nodeId: session.nodeId };
    const report = (r: Omit<NodeReport, 'attemptNo' | 'nodeId'>): NodeReport => ({
      attemptNo,
      nodeId: session.nodeId,
      ...r,
    });

    if (frame.type === 'accept') {
      // Signal first, record second: an accept whose signal failed is still `pending` when re-sent, while
      // one that took effect is `accepted`, so a second accept is refused (`attempt_closed`).
      if ((await openAttempt(prisma, ref))?.outcome !== 'pending') return closed(session, frame);
      if (!(await signal(taskId, report({ kind: 'accepted' })))) return closed(session, frame);
      if ((await acceptAttempt(prisma, ref)) === 'closed') {
        // Accepted meanwhile by a copy of this frame (fine), or closed (e.g. its deadline passed).
        if ((await openAttempt(prisma, ref))?.outcome !== 'accepted') return closed(session, frame);
      }
    } else if (frame.type === 'result') {
      const outputJson = JSON.stringify(frame.output ?? null);
      const outputHash = createHash('sha256').update(outputJson).digest('hex');
      // The same result again (its signal failed, or the ack was lost) is `resent` and signalled again;
      // a different one, or one for a closed attempt, is refused.
      const stored = await storeAttemptResult(prisma, {
        ...ref,
        output: JSON.parse(outputJson) as Prisma.InputJsonValue,
        outputHash,
        ...(frame.usage ? { usage: frame.usage } : {}),
      });
      if (stored === 'closed') return closed(session, frame);
      if (!(await signal(taskId, report({ kind: 'result', outputHash })))) return closed(session, frame);
    } else {
      const attempt = await openAttempt(prisma, ref);
      if (!attempt) return closed(session, frame);
      // Rejecting after accepting is giving up on the attempt: the workflow treats it as an error.
      const kind = frame.type === 'reject' && attempt.outcome === 'pending' ? 'rejected' : 'error';
      const reason = frame.type === 'reject' ? frame.reason : frame.message;
      const told =
        kind === 'error' && frame.type === 'reject' ? `rejected after accepting: ${reason}` : reason;
      if (!(await signal(taskId, report({ kind, reason: told })))) return closed(session, frame);
    }
    if (frame.type !== 'accept') session.assigned.delete(frame.attemptId);
    session.send({ v: PROTOCOL_VERSION, type: 'ack', of: frame.type, attemptId: frame.attemptId });
    return true;
  }

  /** Signal the task's workflow within SIGNAL_DEADLINE_MS; false when the workflow is gone. */
  async function signal(taskId: string, report: NodeReport): Promise<boolean> {
    const { client } = temporal;
    try {
      await client.withDeadline(Date.now() + SIGNAL_DEADLINE_MS, () =>
        client.workflow.getHandle(taskId).signal(nodeReportSignal, report),
      );
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  function closed(session: NodeSession, frame: ReportFrame): false {
    metrics.ignoredReports.inc({ reason: 'late' });
    metrics.frames.inc({ type: frame.type, result: 'refused' });
    session.assigned.delete(frame.attemptId);
    const message =
      frame.type === 'accept'
        ? `attempt ${frame.attemptId} is not waiting for an accept (already accepted, timed out, cancelled or reassigned)`
        : `attempt ${frame.attemptId} is no longer open (timed out, answered, cancelled or reassigned)`;
    sendError(session, 'attempt_closed', message, { ref: frame.type, attemptId: frame.attemptId });
    return false;
  }

  return { handle };
}
