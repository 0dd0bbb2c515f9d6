import { z } from 'zod';
import { amount } from '../../lib/ledger/money.js';
import { safeText, storableJson } from '../../protocol/text.js';
import { TASK_STATUSES } from '../../workflows/task-status.js';
import { isStorableTime } from '../middleware/validate.js';
import { decodeCursor } from './view.js';

/**
 * `POST /api/tasks`. Input and params are checked against the model's task type afterwards. No text
 * anywhere in it may hold NUL or a lone surrogate (the JSON-valued fields are walked whole).
 */
export const createTaskBody = z
  .object({
    model: safeText().min(1).max(128),
    /** Omitted: the newest active version of the model. */
    version: safeText().min(1).max(64).optional(),
    input: z
      .unknown()
      .refine((v) => v !== undefined, 'Required')
      .superRefine(storableJson),
    params: z.record(safeText(), z.unknown()).superRefine(storableJson).default({}),
    /**
     * The most the client will pay, in minor units; the hold is the lower of this and the worst case.
     * A task whose hold would exceed 2^63 − 1 needs one (422 otherwise; see holdAmount).
     */
    maxPrice: amount.optional(),
    /** 0 (default) … 9; each level adds PRIORITY_SURCHARGE_BPS to the price. */
    priority: z.number().int().min(0).max(9).default(0),
    /** How long the task may wait for a node, in ms (default TASK_QUEUE_TIMEOUT_MS, at most 24 h). */
    queueTimeoutMs: z
      .number()
      .int()
      .min(1_000)
      .max(24 * 3600 * 1000)
      .optional(),
  })
  .strict();
export type CreateTaskBody = z.infer<typeof createTaskBody>;

/** Letters, digits and `-_.:`; 1–128 characters (UUIDs fit). */
export const idempotencyKey = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 of A-Z a-z 0-9 _ . : -');

/** Task ids: `t_` + 26 base32 characters (derived) or + 32 hex (random). */
export const taskIdPattern = /^t_[a-z0-9]{26,32}$/;

/** Only what `encodeCursor` can have produced: a task id and a time PostgreSQL can compare. */
function isTaskCursor(cursor: string): boolean {
  try {
    const { createdAt, id } = decodeCursor(cursor);
    return taskIdPattern.test(id) && isStorableTime(createdAt);
  } catch {
    return false;
  }
}

export const listTasksQuery = z
  .object({
    status: z.enum(TASK_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    /** The `nextCursor` of the previous page. */
    cursor: safeText().max(200).refine(isTaskCursor, 'not a cursor returned by this endpoint').optional(),
  })
  .strict();
