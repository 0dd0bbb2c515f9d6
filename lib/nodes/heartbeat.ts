import type { z } from 'zod';
import type { nodeMetrics } from '../../protocol/frames.js';
import type { Services } from '../services.js';

export type NodeMetrics = z.infer<typeof nodeMetrics>;

/** What a node reports in a heartbeat, over REST or its socket. */
export interface HeartbeatInput {
  load: number;
  inflight: number;
  metrics?: NodeMetrics | undefined;
}

/** A node's latest heartbeat as kept in `store.heartbeats` (JSON: times are ISO strings). */
export interface HeartbeatRecord extends HeartbeatInput {
  /** When this heartbeat arrived. */
  at: string;
  /** When a NodeMetricSample was last written for this node (throttles the samples). */
  sampledAt?: string | undefined;
  /** Whatever callers merged in (e.g. the socket session's advertised models and capacity). */
  [field: string]: unknown;
}

/**
 * Record a heartbeat: the latest one goes to `store.heartbeats` (TTL `NODE_PRESENCE_TTL_MS`, merged
 * over the previous record so fields this one lacks, such as `extra` from the hello, survive),
 * `nodes.last_seen_at` is updated, and a NodeMetricSample is written at most once per
 * `METRICS_SAMPLE_INTERVAL_MS`. It does not touch presence: only a live socket makes a node online.
 * @example await recordHeartbeat(services, nodeId, { load: 0.4, inflight: 1 }, { models, capacity });
 */
export async function recordHeartbeat(
  deps: Pick<Services, 'prisma' | 'store' | 'config'>,
  nodeId: string,
  hb: HeartbeatInput,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const { prisma, store, config } = deps;
  const now = new Date();
  const previous = await store.heartbeats.get<HeartbeatRecord>(nodeId);
  const lastSampled = previous?.sampledAt ? Date.parse(previous.sampledAt) : Number.NaN;
  // NaN (never sampled, or an unreadable time) compares false, so it samples.
  const sample = !(now.getTime() - lastSampled < config.METRICS_SAMPLE_INTERVAL_MS);

  const record: HeartbeatRecord = {
    ...previous,
    ...extra,
    // Named fields only: callers may pass a whole heartbeat frame (v, type), which is not state.
    load: hb.load,
    inflight: hb.inflight,
    ...(hb.metrics ? { metrics: hb.metrics } : {}),
    at: now.toISOString(),
    sampledAt: sample ? now.toISOString() : previous?.sampledAt,
  };
  // The record (with its new sampledAt) goes first: a failed insert then skips one sample rather
  // than letting concurrent heartbeats write several.
  await store.heartbeats.put(nodeId, record, config.NODE_PRESENCE_TTL_MS);
  await prisma.node.updateMany({ where: { id: nodeId }, data: { lastSeenAt: now } });
  if (sample) {
    await prisma.nodeMetricSample.create({
      data: {
        nodeId,
        at: now,
        load: hb.load,
        inflight: hb.inflight,
        gpuUtil: hb.metrics?.gpuUtil ?? null,
        memUsedMb: hb.metrics?.memUsedMb ?? null,
        ...(hb.metrics ? { payload: hb.metrics } : {}),
      },
    });
  }
}
