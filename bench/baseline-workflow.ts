import { proxyActivities } from '@temporalio/workflow';

/** The baseline's only activity; `bench/baseline.ts` registers it (it does nothing). */
export interface BaselineActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<BaselineActivities>({ startToCloseTimeout: '10 seconds' });

/**
 * The cheapest workflow that still does real work: one activity round trip. Its throughput on a server
 * is the ceiling the task workflow is compared with (bench/throughput.ts).
 */
export async function baselineWorkflow(): Promise<void> {
  await noop();
}
