import { z } from 'zod';
import { TASK_TYPES } from '../../protocol/task-types.js';
import { pageQuery } from '../pagination.js';

/** PostgreSQL BIGINT's ceiling: prices are stored as BigInt minor units. */
const MAX_BIGINT = 2n ** 63n - 1n;

/**
 * A price in integer minor units: a non-negative number, or a numeric string for values beyond
 * JavaScript's safe integers (which a JSON number would silently round).
 */
export const price = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ok =
    typeof value === 'number'
      ? Number.isSafeInteger(value) && value >= 0
      : /^\d{1,19}$/.test(value) && BigInt(value) <= MAX_BIGINT;
  if (ok) return BigInt(value);
  ctx.addIssue({
    code: 'custom',
    message: 'must be a non-negative integer in minor units (a string for values above 2^53)',
  });
  return z.NEVER;
});

/** Catalog names are identifiers that nodes advertise and clients send: no spaces or control chars. */
const modelName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'letters, digits and . _ : / - only');
const modelVersion = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'letters, digits and . _ + - only');

const limits = {
  maxInputBytes: z.number().int().min(1).max(104_857_600),
  maxOutputTokens: z.number().int().min(1).max(1_000_000),
};

/** `POST /api/models`. */
export const createModelBody = z
  .object({
    name: modelName,
    version: modelVersion,
    taskType: z.enum(TASK_TYPES),
    ...limits,
    pricePerRequest: price.optional(),
    pricePerInputToken: price.optional(),
    pricePerOutputToken: price.optional(),
    active: z.boolean().optional(),
  })
  .strict();

/** `PATCH /api/models/:id`: name, version and task type are the model's identity and never change. */
export const updateModelBody = z
  .object({
    maxInputBytes: limits.maxInputBytes.optional(),
    maxOutputTokens: limits.maxOutputTokens.optional(),
    pricePerRequest: price.optional(),
    pricePerInputToken: price.optional(),
    pricePerOutputToken: price.optional(),
    active: z.boolean().optional(),
  })
  .strict()
  .refine((body) => Object.keys(body).length > 0, { message: 'send at least one field to change' });

/** `GET /api/models?active=true|false&limit&cursor`. */
export const listModelsQuery = pageQuery
  .extend({
    active: z
      .enum(['true', 'false'])
      .transform((v) => v === 'true')
      .optional(),
  })
  .strict();
