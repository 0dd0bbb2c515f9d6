/**
 * Fault injection for the fault tests, ignored when NODE_ENV=production:
 * - `NEUROGRID_FAULTS=<point>[,<point>…]` makes this process die by SIGKILL at that point, as a crash
 *   or the OOM killer would;
 * - `NEUROGRID_FAULT_DELAYS=<point>=<ms>[,…]` holds an activity at that point, so a test can race a
 *   cancel against one exact step of the task path.
 * Both are read when a point is reached, so a test can set them for its own process.
 */
export const FAULT_POINTS = ['after-settlement-posting', 'before-workflow-start'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

export const DELAY_POINTS = ['before-verify', 'before-settle', 'before-complete'] as const;
export type DelayPoint = (typeof DELAY_POINTS)[number];

const active = () => process.env.NODE_ENV !== 'production';

/** Die here if the environment asks for it (test-only; see the module comment). */
export function crashPoint(point: FaultPoint): void {
  if (!active()) return;
  if ((process.env.NEUROGRID_FAULTS ?? '').split(',').includes(point)) process.kill(process.pid, 'SIGKILL');
}

/** Wait here as long as the environment asks (test-only; see the module comment). */
export async function delayPoint(point: DelayPoint): Promise<void> {
  if (!active()) return;
  for (const entry of (process.env.NEUROGRID_FAULT_DELAYS ?? '').split(',')) {
    const [name, ms] = entry.split('=');
    if (name === point && Number(ms) > 0) await new Promise((r) => setTimeout(r, Number(ms)));
  }
}
