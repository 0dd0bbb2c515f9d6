import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { DATABASE_ACTIVITY, FailureType, PAYOUT } from './policies.js';

const db = proxyActivities<Activities>(DATABASE_ACTIVITY);
const payouts = proxyActivities<Activities>(PAYOUT);

/** What the api fixes when it accepts a withdrawal; the amount is already reserved (node → node_pending). */
export interface WithdrawalWorkflowInput {
  withdrawalId: string;
  /** For operators reading the workflow; the activities work from the withdrawal row. */
  nodeId: string;
  amount: string;
}

export interface WithdrawalOutcome {
  status: 'completed';
  reference: string;
}

/** One workflow per withdrawal: its id is derived from the withdrawal's, so a retried request joins it. */
export const withdrawalWorkflowId = (withdrawalId: string): string => `withdrawal-${withdrawalId}`;

/**
 * Pay a reserved withdrawal out, then settle it once: `withdrawal_complete` (node_pending →
 * external_payouts) when paid, `withdrawal_reverse` (node_pending → node) when the provider refuses.
 * Provider outages are retried by the PAYOUT policy with the same idempotency key, for as long as they
 * last. A refused payout ends the workflow Failed with `WithdrawalFailed`.
 */
export async function withdrawalWorkflow(input: WithdrawalWorkflowInput): Promise<WithdrawalOutcome> {
  const { withdrawalId } = input;
  let reference: string;
  try {
    ({ reference } = await payouts.payOutWithdrawal({ withdrawalId }));
  } catch (err) {
    const reason = payoutRefusal(err);
    if (reason === undefined) throw err;
    await db.reverseWithdrawal({ withdrawalId, reason });
    throw ApplicationFailure.create({
      type: FailureType.WithdrawalFailed,
      message: reason,
      nonRetryable: true,
    });
  }
  await db.completeWithdrawal({ withdrawalId, reference });
  return { status: 'completed', reference };
}

/** The provider's refusal message when `err` is a `PayoutRejected` activity failure. */
function payoutRefusal(err: unknown): string | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const cause = err.cause;
  return cause instanceof ApplicationFailure && cause.type === FailureType.PayoutRejected
    ? cause.message
    : undefined;
}
