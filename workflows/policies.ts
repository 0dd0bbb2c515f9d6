import type { ActivityOptions } from '@temporalio/workflow';

/**
 * Activity timeouts and retry policies, named once. Business failures are non-retryable
 * ApplicationFailures and end the attempt at once; infrastructure errors retry.
 */

/** Database work (selection, bookkeeping, verification): quick, retried until it succeeds. */
export const DATABASE_ACTIVITY: ActivityOptions = {
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds' },
};

/** One pass of the reaper of stranded holds; a pass that fails is covered by the next one. */
export const REAPER_PASS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
};

/**
 * Pushing a frame to a node socket on its host's queue. The host may have died, so the whole thing
 * is bounded by schedule-to-close: a lost host costs the attempt, not the task.
 */
export const HOST_DELIVERY: ActivityOptions = {
  scheduleToCloseTimeout: '10 seconds',
  startToCloseTimeout: '5 seconds',
  retry: {
    initialInterval: '250 milliseconds',
    maximumAttempts: 3,
    nonRetryableErrorTypes: ['NodeNotConnected'],
  },
};

/**
 * Paying a withdrawal out. A provider outage is retried for as long as it lasts: the idempotency key
 * makes every retry the same payout, and giving up could not tell a payout that was made from one that
 * was not. Only the provider's refusal (`PayoutRejected`) ends it, and the withdrawal is reversed.
 */
export const PAYOUT: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    nonRetryableErrorTypes: ['PayoutRejected'],
  },
};

/**
 * Dispatches lost to a host that is gone do not use up one of the task's attempts (the node never
 * saw the task); this bounds how many such attempts one task may make on top of `maxAttempts`.
 */
export const MAX_LOST_ATTEMPTS = 10;

/** Failure types the workflows and their activities raise. */
export const FailureType = {
  NodeNotConnected: 'NodeNotConnected',
  TaskFailed: 'TaskFailed',
  TaskNotFound: 'TaskNotFound',
  PayoutRejected: 'PayoutRejected',
  WithdrawalFailed: 'WithdrawalFailed',
  WithdrawalNotFound: 'WithdrawalNotFound',
} as const;
