import type { Services } from '../lib/services.js';
import { createSelectionActivities } from './selection.js';
import { createTaskActivities } from './tasks.js';
import { createVerificationActivities } from './verification.js';

/** Every activity the main-queue worker runs, bound to this process's connections. */
export function createActivities(services: Pick<Services, 'prisma' | 'store'>) {
  return {
    ...createSelectionActivities(services),
    ...createTaskActivities(services),
    ...createVerificationActivities(services),
  };
}

export type Activities = ReturnType<typeof createActivities>;
