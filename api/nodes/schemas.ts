import { z } from 'zod';
import { heartbeatFrame, helloFrame, nodeMetrics } from '../../protocol/frames.js';
import { pageQuery } from '../pagination.js';

/**
 * `POST /api/nodes/register`: the models, capacity and hardware rules are the hello frame's, so a
 * registration and a later hello can never disagree on what is valid.
 */
export const registerNodeBody = helloFrame
  .pick({ models: true, capacity: true, hardware: true })
  .extend({ name: z.string().trim().min(1).max(128) })
  .strict();
export type RegisterNodeBody = z.infer<typeof registerNodeBody>;

/** `POST /api/nodes/:id/heartbeat`: the heartbeat frame without its envelope (`v`, `type`). */
export const heartbeatBody = heartbeatFrame
  .pick({ load: true, inflight: true })
  .extend({ metrics: nodeMetrics.strict().optional() })
  .strict();

/** `GET /api/nodes?limit&cursor`. */
export const listNodesQuery = pageQuery.strict();

/** `GET /api/nodes/:id/metrics?since&limit`: newest first. */
export const metricsQuery = z
  .object({
    since: z.iso
      .datetime({ offset: true })
      .transform((s) => new Date(s))
      .optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .strict();
