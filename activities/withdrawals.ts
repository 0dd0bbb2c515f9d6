import { ApplicationFailure } from '@temporalio/activity';
import { createLedger } from '../lib/ledger/ledger.js';
import type { AccountRef } from '../lib/ledger/types.js';
import type { Services } from '../lib/services.js';
import { FailureType } from '../workflows/policies.js';
import { createPayoutAdapter, type PayoutAdapter } from './payouts/index.js';

type Deps = Pick<Services, 'prisma' | 'config' | 'log'>;

/** The idempotency key of each side effect of a withdrawal, derived from its id and the step. */
export const withdrawalKeys = {
  /** node → node_pending, posted by the api before the withdrawal exists. */
  reserve: (id: string) => `withdrawal:${id}:reserve`,
  /** Sent to the payout provider on every try. */
  payout: (id: string) => `withdrawal:${id}`,
  /** Shared by complete and reverse, so a withdrawal is settled once and one way only. */
  settle: (id: string) => `withdrawal:${id}:settle`,
};

type Settlement = 'withdrawal_complete' | 'withdrawal_reverse';

/**
 * The withdrawal workflow's activities: the payout through the configured adapter, and the settlement
 * in the ledger and the `withdrawals` row. Each is safe to run again.
 */
export function createWithdrawalActivities(
  { prisma, config, log }: Deps,
  adapter: PayoutAdapter = createPayoutAdapter(config, log),
) {
  const ledger = createLedger(prisma);

  const load = async (withdrawalId: string) => {
    const w = await prisma.withdrawal.findUnique({ where: { id: withdrawalId } });
    if (!w) {
      throw ApplicationFailure.create({
        type: FailureType.WithdrawalNotFound,
        message: `withdrawal ${withdrawalId} not found`,
        nonRetryable: true,
      });
    }
    return w;
  };

  /** Post the settlement; the row then follows whichever settlement the ledger holds under the key. */
  const settle = async (
    withdrawalId: string,
    type: Settlement,
    outcome: { reference?: string; reason?: string },
  ) => {
    const w = await load(withdrawalId);
    const pending: AccountRef = { kind: 'node_pending', ownerId: w.nodeId };
    const to: AccountRef =
      type === 'withdrawal_complete' ? { kind: 'external_payouts' } : { kind: 'node', ownerId: w.nodeId };
    const key = withdrawalKeys.settle(withdrawalId);
    const posted = await ledger.post({
      idempotencyKey: key,
      type,
      legs: [{ from: pending, to, amount: w.amount }],
      reference: withdrawalId,
      metadata: { nodeId: w.nodeId, ...outcome },
    });
    const settled = posted.created ? type : ((await ledger.findTransaction(key))?.type ?? type);
    const status = settled === 'withdrawal_complete' ? 'completed' : 'failed';
    await prisma.withdrawal.updateMany({
      where: { id: withdrawalId, status: 'pending' },
      data: {
        status,
        completedAt: new Date(),
        ...(status === 'completed'
          ? { payoutReference: outcome.reference ?? null }
          : { failureReason: (outcome.reason ?? 'payout failed').slice(0, 2_000) }),
      },
    });
    log.info({ withdrawalId, nodeId: w.nodeId, amount: w.amount.toString(), status }, 'withdrawal settled');
    return { status };
  };

  return {
    /** Pay the withdrawal out, once per idempotency key; a settled withdrawal is never paid again. */
    async payOutWithdrawal({ withdrawalId }: { withdrawalId: string }): Promise<{ reference: string }> {
      const w = await load(withdrawalId);
      if (w.status === 'completed') return { reference: w.payoutReference ?? withdrawalKeys.payout(w.id) };
      if (w.status === 'failed') {
        throw ApplicationFailure.create({
          type: FailureType.PayoutRejected,
          message: w.failureReason ?? 'payout failed',
          nonRetryable: true,
        });
      }
      return adapter.pay({
        withdrawalId,
        idempotencyKey: withdrawalKeys.payout(withdrawalId),
        nodeId: w.nodeId,
        amount: w.amount.toString(),
        destination: w.destination,
      });
    },

    /** The payout was made: node_pending → external_payouts. */
    async completeWithdrawal({ withdrawalId, reference }: { withdrawalId: string; reference: string }) {
      return settle(withdrawalId, 'withdrawal_complete', { reference });
    },

    /** The payout was refused for good: node_pending → node, and the reason on the withdrawal. */
    async reverseWithdrawal({ withdrawalId, reason }: { withdrawalId: string; reason: string }) {
      return settle(withdrawalId, 'withdrawal_reverse', { reason });
    },
  };
}
