import type { Services } from '../lib/services.js';
import { createReaperActivities } from './reaper.js';
import { createSelectionActivities } from './selection.js';
import { createSettlementActivities } from './settlement.js';
import { createTaskActivities } from './tasks.js';
import { createVerificationActivities } from './verification.js';
import { createWithdrawalActivities } from './withdrawals.js';

/** Every activity the main-queue worker runs, bound to this process's connections. */
export function createActivities(
  services: Pick<Services, 'prisma' | 'store' | 'config' | 'log' | 'temporal'>,
) {
  return {
    ...createSelectionActivities(services),
    ...createTaskActivities(services),
    ...createVerificationActivities(services),
    ...createSettlementActivities(services),
    ...createWithdrawalActivities(services),
    ...createReaperActivities(services),
  };
}

export type Activities = ReturnType<typeof createActivities>;
