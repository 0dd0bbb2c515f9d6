import { z } from 'zod';
import { heartbeatFrame, helloFrame, nodeMetrics } from '../../protocol/frames.js';
import { safeText, storableJson } from '../../protocol/text.js';
import { instant } from '../middleware/validate.js';
import { pageQuery } from '../pagination.js';

/** PostgreSQL INTEGER's ceiling: counters stored in INTEGER columns are capped here, not overflowed. */
const MAX_INT4 = 2 ** 31 - 1;

/**
 * `POST /api/nodes/register`: the models, capacity and hardware rules are the hello frame's, so a
 * registration and a later hello can never disagree on what is valid. No text in it (name, model
 * names, hardware keys and values) may hold NUL or a lone surrogate.
 */
export const registerNodeBody = helloFrame
  .pick({ models: true, capacity: true, hardware: true })
  .extend({ name: safeText().trim().min(1).max(128) })
  .strict()
  .superRefine(storableJson);
export type RegisterNodeBody = z.infer<typeof registerNodeBody>;

/**
 * `POST /api/nodes/:id/heartbeat`: the heartbeat frame without its envelope (`v`, `type`), with the
 * counters that land in INTEGER columns (inflight, memUsedMb) bounded by them.
 */
export const heartbeatBody = heartbeatFrame
  .pick({ load: true, inflight: true })
  .extend({
    inflight: heartbeatFrame.shape.inflight.max(MAX_INT4),
    metrics: nodeMetrics
      .extend({ memUsedMb: nodeMetrics.shape.memUsedMb.unwrap().max(MAX_INT4).optional() })
      .strict()
      .optional(),
  })
  .strict();

/** `GET /api/nodes?limit&cursor`. */
export const listNodesQuery = pageQuery.strict();

/** `GET /api/nodes/:id/metrics?since&limit`: newest first. */
export const metricsQuery = z
  .object({
    since: instant.optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .strict();
