import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import { localPayoutAdapter } from './local.js';
import type { PayoutAdapter } from './types.js';
import { webhookPayoutAdapter } from './webhook.js';

export type { PayoutAdapter, PayoutRequest } from './types.js';

/**
 * The payout adapter `PAYOUT_ADAPTER` selects (lib/config.ts has already checked its settings).
 * @example const adapter = createPayoutAdapter(services.config, services.log);
 */
export function createPayoutAdapter(
  config: Pick<Config, 'PAYOUT_ADAPTER' | 'PAYOUT_WEBHOOK_URL' | 'PAYOUT_WEBHOOK_SECRET' | 'NODE_ENV'>,
  log: Logger,
): PayoutAdapter {
  if (config.PAYOUT_ADAPTER === 'webhook') {
    const { PAYOUT_WEBHOOK_URL: url, PAYOUT_WEBHOOK_SECRET: secret } = config;
    if (!url || !secret)
      throw new Error('PAYOUT_ADAPTER=webhook needs PAYOUT_WEBHOOK_URL and PAYOUT_WEBHOOK_SECRET');
    return webhookPayoutAdapter({ url, secret });
  }
  if (config.NODE_ENV === 'production') {
    log.warn('PAYOUT_ADAPTER=local in production: withdrawals are recorded as paid but nothing is paid');
  }
  return localPayoutAdapter(log.child({ part: 'payouts' }));
}
