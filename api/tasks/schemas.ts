import { z } from 'zod';
import { amount } from '../../lib/ledger/money.js';
import { TASK_STATUSES } from '../../workflows/task-status.js';

/** `POST /api/tasks`. Input and params are checked against the model's task type afterwards. */
export const createTaskBody = z
  .object({
    model: z.string().min(1).max(128),
    /** Omitted: the newest active version of the model. */
    version: z.string().min(1).max(64).optional(),
    input: z.unknown().refine((v) => v !== undefined, 'Required'),
    params: z.record(z.string(), z.unknown()).default({}),
    /** The most the client will pay, in minor units; the hold is the lower of this and the worst case. */
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

export const listTasksQuery = z
  .object({
    status: z.enum(TASK_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    /** The `nextCursor` of the previous page. */
    cursor: z.string().max(200).optional(),
  })
  .strict();

/** Task ids: `t_` + 26 base32 characters (derived) or + 32 hex (random). */
export const taskIdPattern = /^t_[a-z0-9]{26,32}$/;
