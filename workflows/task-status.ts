/** A task's lifecycle, the one definition: REST responses, the read model and the `TaskStatus` attribute. */
export const TASK_STATUSES = [
  'queued',
  'assigned',
  'running',
  'verifying',
  'completed',
  'failed',
  'cancelled',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s: TaskStatus): boolean => TERMINAL_STATUSES.includes(s);

/** How one assignment of a task to a node ended. `pending`/`accepted` are still open. */
export const ATTEMPT_OUTCOMES = [
  'pending',
  'accepted',
  'completed',
  'rejected',
  'timeout',
  'error',
  'lost',
  'cancelled',
  'invalid',
] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];
export const OPEN_OUTCOMES: readonly AttemptOutcome[] = ['pending', 'accepted'];
/** The outcome an attempt is closed with. */
export type ClosedOutcome = Exclude<AttemptOutcome, 'pending' | 'accepted'>;
