/**
 * Fault injection for the kill tests: `NEUROGRID_FAULTS=<point>[,<point>…]` makes this process die by
 * SIGKILL at that point, as a crash or the OOM killer would. Ignored when NODE_ENV=production.
 */
export const FAULT_POINTS = ['after-settlement-posting'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

const enabled = new Set(
  process.env.NODE_ENV === 'production'
    ? []
    : (process.env.NEUROGRID_FAULTS ?? '').split(',').filter(Boolean),
);

/** Die here if the environment asks for it (test-only; see the module comment). */
export function crashPoint(point: FaultPoint): void {
  if (enabled.has(point)) process.kill(process.pid, 'SIGKILL');
}
