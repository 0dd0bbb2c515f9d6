import type { Services } from '../lib/services.js';

/** Every activity the main-queue worker runs, bound to this process's connections. */
export function createActivities(_services: Services) {
  return {};
}

export type Activities = ReturnType<typeof createActivities>;
