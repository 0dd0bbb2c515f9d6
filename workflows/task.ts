import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/host.js';
import type { Activities } from '../activities/index.js';
import {
  type AttemptState,
  hostTaskQueue,
  type NodeReport,
  nodeReportSignal,
  stateQuery,
  type TaskOutcome,
  type TaskState,
  type TaskWorkflowInput,
} from './definitions.js';
import { DATABASE_ACTIVITY, FailureType, HOST_DELIVERY, MAX_LOST_ATTEMPTS } from './policies.js';
import { TaskNodeKey, TaskSettlementKey, TaskStatusKey } from './search-attributes.js';
import type { AttemptOutcome, ClosedOutcome, TaskStatus } from './task-status.js';

const db = proxyActivities<Activities>(DATABASE_ACTIVITY);

/** Tasks started before token settlement existed replay without it (their histories have no marker). */
export const LEDGER_PATCH = 'ledger-settlement-v1';
/**
 * The cancel rule (README, "Cancelling a task"): once a node's result has reached the task, it is
 * verified, settled and completed without interruption, so a cancel can no longer split the ledger
 * from the task. Also: a lost dispatch does not use up an attempt, a result stored while its signal
 * was late still counts, and a task the reaper found without a workflow is abandoned.
 */
export const CANCEL_RULE_PATCH = 'verified-result-wins-v1';

interface CurrentAttempt extends AttemptState {
  hostId: string;
  accepted: boolean;
  final?: NodeReport;
}

/**
 * One inference task: select a node → dispatch to its host → wait for accept, then result (each with a
 * deadline) → verify → complete. A timeout, rejection, error, lost host or invalid result moves the
 * task to another node, up to `maxAttempts`; with no node available it waits until the queue deadline.
 */
export async function taskWorkflow(input: TaskWorkflowInput): Promise<TaskOutcome> {
  const { taskId, limits } = input;
  const state: TaskState = { status: 'queued', attempts: [], ignoredReports: 0, waitingForNode: false };
  const tried = new Set<string>();
  let current: CurrentAttempt | undefined;

  // handlers
  setHandler(stateQuery, () => state);
  setHandler(nodeReportSignal, (report) => {
    // At-least-once, possibly late or foreign: only the current attempt's node, once per phase.
    const a = current;
    const relevant =
      a !== undefined &&
      report.attemptNo === a.no &&
      report.nodeId === a.nodeId &&
      a.final === undefined &&
      !(report.kind === 'accepted' && a.accepted) &&
      !(report.kind === 'rejected' && a.accepted);
    if (!relevant) {
      state.ignoredReports++;
      return;
    }
    if (report.kind === 'accepted') a.accepted = true;
    else a.final = report;
  });

  const setStatus = async (status: TaskStatus, extra: { nodeId?: string; attempts?: number } = {}) => {
    state.status = status;
    upsertSearchAttributes([
      { key: TaskStatusKey, value: status },
      ...(extra.nodeId ? [{ key: TaskNodeKey, value: extra.nodeId }] : []),
    ]);
    await db.recordTaskStatus({ taskId, status, ...extra });
  };

  const closeAttempt = async (outcome: ClosedOutcome, reason?: string) => {
    const a = current as CurrentAttempt;
    a.outcome = outcome;
    a.reason = reason;
    state.attempts[a.no - 1] = { no: a.no, nodeId: a.nodeId, outcome, ...(reason ? { reason } : {}) };
    return db.finishAttempt({ taskId, attemptNo: a.no, outcome, ...(reason ? { error: reason } : {}) });
  };

  /** Give the whole hold back (failed or cancelled); shares its key with capture, so it runs once. */
  const release = async () => {
    if (!patched(LEDGER_PATCH)) return;
    if (await db.releaseTask({ taskId }))
      upsertSearchAttributes([{ key: TaskSettlementKey, value: 'released' }]);
  };

  const host = (hostId: string) =>
    proxyActivities<HostActivities>({
      ...HOST_DELIVERY,
      taskQueue: hostTaskQueue(workflowInfo().taskQueue, hostId),
    });

  // business logic
  try {
    if (input.abandon && patched(CANCEL_RULE_PATCH)) return await fail(input.abandon.reason);
    while (true) {
      const node = await db.selectNode({
        model: input.model,
        exclude: [...tried],
        taskId,
        attemptNo: state.attempts.length + 1,
      });
      if (!node) {
        if (Date.now() >= input.queueDeadline) {
          return await fail(
            state.attempts.length === 0
              ? 'no node serving the model was available before the queue deadline'
              : `no other node was available before the queue deadline after ${describeAttempts(state.attempts)}`,
          );
        }
        state.waitingForNode = true;
        await sleep(Math.min(limits.noNodeRetryMs, Math.max(1, input.queueDeadline - Date.now())));
        continue;
      }
      state.waitingForNode = false;
      tried.add(node.nodeId);
      const attemptNo = state.attempts.length + 1;
      current = {
        no: attemptNo,
        nodeId: node.nodeId,
        hostId: node.hostId,
        outcome: 'pending',
        accepted: false,
      };
      state.attempts.push({ no: attemptNo, nodeId: node.nodeId, outcome: 'pending' });
      await db.startAttempt({ taskId, attemptNo, nodeId: node.nodeId });
      await setStatus('assigned', { nodeId: node.nodeId, attempts: attemptNo });

      const outcome = await runAttempt(current);
      if (outcome === 'completed') {
        return { status: 'completed', attemptNo, nodeId: node.nodeId };
      }
      if (patched(CANCEL_RULE_PATCH)) {
        // A node that never saw the task (its host was gone) does not cost the task an attempt.
        const lost = state.attempts.filter((x) => x.outcome === 'lost').length;
        const spent = attemptNo - lost;
        if (spent >= limits.maxAttempts || lost > MAX_LOST_ATTEMPTS) {
          return await fail(`all ${spent} attempts failed: ${describeAttempts(state.attempts)}`);
        }
        continue;
      }
      if (attemptNo >= limits.maxAttempts) {
        return await fail(`all ${attemptNo} attempts failed: ${describeAttempts(state.attempts)}`);
      }
    }
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        if (current && (current.outcome === 'pending' || current.outcome === 'accepted')) {
          await host(current.hostId)
            .deliverCancel({
              taskId,
              attemptNo: current.no,
              nodeId: current.nodeId,
              reason: 'cancelled by client',
            })
            .catch(() => undefined); // the node's deadline covers a host that is gone
          await closeAttempt('cancelled', 'cancelled by client');
        }
        await release();
        await db.finishTask({ taskId, status: 'cancelled', reason: 'cancelled by client' });
        state.status = 'cancelled';
        upsertSearchAttributes([{ key: TaskStatusKey, value: 'cancelled' }]);
      });
    }
    throw err;
  }

  async function runAttempt(a: CurrentAttempt): Promise<AttemptOutcome> {
    // A node's report proves delivery even when the host died before reporting the activity done.
    let dispatchFailure: string | undefined;
    let delivered = false;
    host(a.hostId)
      .deliverAssignment({
        taskId,
        attemptNo: a.no,
        nodeId: a.nodeId,
        acceptTimeoutMs: limits.acceptTimeoutMs,
        resultTimeoutMs: limits.resultTimeoutMs,
      })
      .then(
        () => {
          delivered = true;
        },
        (err) => {
          dispatchFailure = failureMessage(err);
        },
      );
    const heard = () => a.accepted || a.final !== undefined;
    await condition(() => delivered || heard() || dispatchFailure !== undefined);
    if (!heard() && dispatchFailure !== undefined) {
      await closeAttempt('lost', `dispatch failed: ${dispatchFailure}`);
      return 'lost';
    }

    if (!(await condition(() => a.accepted || a.final !== undefined, limits.acceptTimeoutMs))) {
      if (!(await timeOut(a, `no accept within ${limits.acceptTimeoutMs} ms`))) return 'timeout';
    }
    if (a.final === undefined) {
      a.outcome = 'accepted';
      await setStatus('running');
      if (!(await condition(() => a.final !== undefined, limits.resultTimeoutMs))) {
        if (!(await timeOut(a, `no result within ${limits.resultTimeoutMs} ms of accepting`))) {
          return 'timeout';
        }
      }
    }
    const report = a.final as NodeReport;
    if (report.kind === 'rejected' || report.kind === 'error') {
      const outcome = report.kind === 'rejected' ? 'rejected' : 'error';
      await closeAttempt(outcome, report.reason ?? outcome);
      return outcome;
    }
    // From here a cancel no longer wins: the result is judged, and a verified one is paid and served.
    if (patched(CANCEL_RULE_PATCH)) return CancellationScope.nonCancellable(() => judge(a));
    return judge(a);
  }

  /** Verify the attempt's result; settle and complete the task when it passes. */
  async function judge(a: CurrentAttempt): Promise<AttemptOutcome> {
    await setStatus('verifying');
    const verdict = await db.verifyResult({ taskId, attemptNo: a.no });
    if (!verdict.ok) {
      await closeAttempt('invalid', verdict.reason);
      return 'invalid';
    }
    await closeAttempt('completed');
    if (
      patched(LEDGER_PATCH) &&
      (await db.settleTask({ taskId, attemptNo: a.no, quality: verdict.verdict.quality }))?.captured
    ) {
      upsertSearchAttributes([{ key: TaskSettlementKey, value: 'captured' }]);
    }
    await db.completeTask({ taskId, attemptNo: a.no, verdict: verdict.verdict });
    state.status = 'completed';
    upsertSearchAttributes([{ key: TaskStatusKey, value: 'completed' }]);
    return 'completed';
  }

  /**
   * The attempt's deadline passed: tell the node to stop (without waiting on a host that may be gone)
   * and close the attempt. True when the node's result turns out to be stored already (its signal was
   * late): the result then counts as if it had arrived in time.
   */
  async function timeOut(a: CurrentAttempt, reason: string): Promise<boolean> {
    host(a.hostId)
      .deliverCancel({ taskId, attemptNo: a.no, nodeId: a.nodeId, reason })
      .catch(() => undefined);
    const finished = await closeAttempt('timeout', reason);
    // Histories from before `finishAttempt` answered have no result here: the attempt closed.
    if (finished && !finished.closed) {
      a.outcome = 'accepted';
      a.reason = undefined;
      state.attempts[a.no - 1] = { no: a.no, nodeId: a.nodeId, outcome: 'accepted' };
      a.final = { attemptNo: a.no, nodeId: a.nodeId, kind: 'result', outputHash: finished.resultHash };
      return true;
    }
    return false;
  }

  async function fail(reason: string): Promise<never> {
    await release();
    await db.finishTask({ taskId, status: 'failed', reason });
    state.status = 'failed';
    upsertSearchAttributes([{ key: TaskStatusKey, value: 'failed' }]);
    throw ApplicationFailure.create({ type: FailureType.TaskFailed, message: reason, nonRetryable: true });
  }
}

function describeAttempts(attempts: AttemptState[]): string {
  return attempts.map((a) => `#${a.no} ${a.outcome}${a.reason ? ` (${a.reason})` : ''}`).join(', ');
}

function failureMessage(err: unknown): string {
  const cause = (err as { cause?: { message?: string } }).cause;
  return cause?.message ?? (err as Error).message ?? String(err);
}
