import { proxyActivities } from '@temporalio/workflow';
import type { ReaperActivities } from '../activities/reaper.js';
import { REAPER_PASS } from './policies.js';

const { reapStrandedTasks } = proxyActivities<ReaperActivities>(REAPER_PASS);

/** One pass of the reaper of stranded holds; run by a Temporal schedule (`lib/tasks/reaper-schedule.ts`). */
export async function reaperWorkflow(input: { graceMs: number }) {
  return reapStrandedTasks(input);
}
