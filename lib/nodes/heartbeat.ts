import type { z } from 'zod';
import type { nodeMetrics } from '../../protocol/frames.js';
import type { Services } from '../services.js';
import { nodeWrites } from './flush.js';

export type NodeMetrics = z.infer<typeof nodeMetrics>;

/** What a node reports in a heartbeat, over REST or its socket. */
export interface HeartbeatInput {
  load: number;
  inflight: number;
  metrics?: NodeMetrics | undefined;
}

/** A node's latest heartbeat as kept in `store.heartbeats` (JSON: times are ISO strings). */
export interface HeartbeatRecord extends HeartbeatInput {
  /** When this heartbeat arrived: the node's last-seen time, fresher than `nodes.last_seen_at`. */
  at: string;
  /** When a NodeMetricSample was last taken for this node (throttles the samples). */
  sampledAt?: string | undefined;
  /** Whatever callers merged in (e.g. the socket session's advertised models and capacity). */
  [field: string]: unknown;
}

export interface RecordHeartbeatOptions {
  /** Take a metric sample if one is due (default true). A hello reports no load yet, so it does not. */
  sample?: boolean;
}

/**
 * Record a heartbeat. The only I/O is the store: the latest heartbeat goes to `store.heartbeats` (TTL
 * `NODE_PRESENCE_TTL_MS`, merged over the previous record so fields this one lacks, such as `extra`
 * from the hello, survive). The PostgreSQL side is queued in this process's {@link nodeWrites} batch
 * and written by the api's flusher every `NODE_FLUSH_INTERVAL_MS`: `nodes.last_seen_at`, and a
 * NodeMetricSample at most once per `METRICS_SAMPLE_INTERVAL_MS`. It does not touch presence: only a
 * live socket makes a node online.
 * @example await recordHeartbeat(services, nodeId, { load: 0.4, inflight: 1 }, { models, capacity });
 */
export async function recordHeartbeat(
  deps: Pick<Services, 'prisma' | 'store' | 'config'>,
  nodeId: string,
  hb: HeartbeatInput,
  extra: Record<string, unknown> = {},
  options: RecordHeartbeatOptions = {},
): Promise<void> {
  const { store, config } = deps;
  const now = new Date();
  const previous = await store.heartbeats.get<HeartbeatRecord>(nodeId);
  const lastSampled = previous?.sampledAt ? Date.parse(previous.sampledAt) : Number.NaN;
  // NaN (never sampled, or an unreadable time) compares false, so it samples.
  const sample =
    options.sample !== false && !(now.getTime() - lastSampled < config.METRICS_SAMPLE_INTERVAL_MS);

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
  // The record (with its new sampledAt) goes first: when the store write fails nothing is queued, and
  // the node's next heartbeat takes the sample.
  await store.heartbeats.put(nodeId, record, config.NODE_PRESENCE_TTL_MS);
  const writes = nodeWrites(deps);
  writes.seen(nodeId, now);
  if (sample) {
    writes.sample(nodeId, {
      at: now,
      load: hb.load,
      inflight: hb.inflight,
      gpuUtil: hb.metrics?.gpuUtil ?? null,
      memUsedMb: hb.metrics?.memUsedMb ?? null,
      payload: hb.metrics ?? null,
    });
  }
}
