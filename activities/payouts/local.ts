import type { Logger } from '../../lib/logger.js';
import type { PayoutAdapter } from './types.js';

/**
 * Development payouts: the payout is written to the log and succeeds, so withdrawals can be tried end
 * to end without a provider. Nothing is paid.
 */
export function localPayoutAdapter(log: Logger): PayoutAdapter {
  return {
    async pay({ withdrawalId, idempotencyKey, nodeId, amount, destination }) {
      log.info(
        { withdrawalId, idempotencyKey, nodeId, amount, destination },
        'local payout recorded (PAYOUT_ADAPTER=local: nothing was paid)',
      );
      return { reference: `local:${withdrawalId}` };
    },
  };
}
