import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { TaskType } from '../protocol/task-types.js';
import type { AttemptOutcome, TaskStatus } from './task-status.js';

/** Everything the task workflow needs to run, fixed when the task is admitted. */
export interface TaskWorkflowInput {
  taskId: string;
  clientId: string;
  model: { id: string; name: string; version: string; taskType: TaskType };
  /** Epoch ms after which a task still waiting for a node fails. */
  queueDeadline: number;
  limits: TaskLimits;
  /**
   * Set by the reaper for a task whose workflow was never started (its api process died, or a keyed
   * 503 was never retried): the workflow only releases the hold and fails the task with this reason.
   */
  abandon?: { reason: string };
}

/** Per-task deadlines and limits; from configuration so tests can run them short. */
export interface TaskLimits {
  maxAttempts: number;
  acceptTimeoutMs: number;
  resultTimeoutMs: number;
  noNodeRetryMs: number;
}

/** A node's answer on one attempt, relayed by the api process that holds its socket. */
export interface NodeReport {
  attemptNo: number;
  nodeId: string;
  kind: 'accepted' | 'rejected' | 'result' | 'error';
  /** Rejection or error text from the node. */
  reason?: string;
  /** SHA-256 of the stored output (the output itself stays in PostgreSQL). */
  outputHash?: string;
}

export interface AttemptState {
  no: number;
  nodeId: string;
  outcome: AttemptOutcome;
  reason?: string;
}

/** What the `state` query answers: the live view of a running task. */
export interface TaskState {
  status: TaskStatus;
  attempts: AttemptState[];
  /** Reports that changed nothing: late, duplicate, or from a node not assigned the attempt. */
  ignoredReports: number;
  waitingForNode: boolean;
}

export interface TaskOutcome {
  status: 'completed';
  attemptNo: number;
  nodeId: string;
}

export const nodeReportSignal = defineSignal<[NodeReport]>('nodeReport');
export const stateQuery = defineQuery<TaskState>('state');

/** The task queue of the api process holding a node's socket (worker-specific task queue pattern). */
export const hostTaskQueue = (mainQueue: string, hostId: string): string => `${mainQueue}-host-${hostId}`;
