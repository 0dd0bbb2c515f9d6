export interface BackoffOptions {
  /** Ceiling of the first delay. */
  initialDelayMs: number;
  /** No delay is ever longer than this. */
  maxDelayMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialDelayMs: 250, maxDelayMs: 15_000 };

/**
 * Delay before reconnect attempt `attempt` (0 = first retry): the ceiling doubles each attempt up to
 * `maxDelayMs`, and the delay is drawn from [ceiling/2, ceiling] ("equal jitter"), so a fleet of nodes
 * cut off together does not reconnect in lockstep, yet each waits at least half the ceiling.
 * @example backoffDelay(3, { initialDelayMs: 250, maxDelayMs: 15_000 }) // 1000–2000 ms
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(
    options.maxDelayMs,
    options.initialDelayMs * 2 ** Math.min(Math.max(attempt, 0), 30),
  );
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
