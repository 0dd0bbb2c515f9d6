import type { PrismaClient } from '../../generated/prisma/client.js';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

/** A NodeMetricSample row waiting for the next flush. */
export interface PendingSample {
  at: Date;
  load: number;
  inflight: number;
  gpuUtil: number | null;
  memUsedMb: number | null;
  /** The heartbeat's `metrics` object, or null when it had none. */
  payload: object | null;
}

/** What one flush wrote. */
export interface FlushResult {
  /** Nodes whose `last_seen_at` was sent (a row already newer, or deleted, is left alone). */
  lastSeen: number;
  samples: number;
}

/**
 * Distinct nodes a batch holds at most. Heartbeats come only from registered nodes, so this is a
 * safety belt, not a limit that a healthy coordinator reaches; past it new nodes are dropped (and
 * counted in `dropped`) until a flush empties the batch.
 */
export const MAX_PENDING_NODES = 100_000;

/**
 * The PostgreSQL writes of heartbeats, held in process memory until the flusher writes them in one
 * statement each: the latest time each node was seen (`nodes.last_seen_at`) and the metric samples
 * (`node_metric_samples`, already downsampled by the caller). Bounded: one time per node (the newest
 * wins) and the newest `samplesPerNode` samples per node, kept across failed flushes.
 */
export class NodeWriteBatch {
  private lastSeen = new Map<string, Date>();
  private samples = new Map<string, PendingSample[]>();
  private running: Promise<FlushResult> | undefined;
  /** Heartbeats not kept because the batch was full (see {@link MAX_PENDING_NODES}). */
  dropped = 0;

  constructor(
    private readonly prisma: PrismaClient,
    /** Newest samples kept per node while flushes fail (older ones are dropped). */
    readonly samplesPerNode: number,
  ) {}

  /** Nodes with a pending write of either kind. */
  get pendingNodes(): number {
    return new Set([...this.lastSeen.keys(), ...this.samples.keys()]).size;
  }

  get pendingSamples(): number {
    let n = 0;
    for (const list of this.samples.values()) n += list.length;
    return n;
  }

  /** Note that `nodeId` was seen at `at` (a later call for the same node replaces it). */
  seen(nodeId: string, at: Date): void {
    const known = this.lastSeen.get(nodeId);
    if (known && known >= at) return;
    if (!known && this.full(this.lastSeen)) return;
    this.lastSeen.set(nodeId, at);
  }

  /** Queue a metric sample for `nodeId`. */
  sample(nodeId: string, sample: PendingSample): void {
    const list = this.samples.get(nodeId);
    if (list) {
      list.push(sample);
      if (list.length > this.samplesPerNode) list.splice(0, list.length - this.samplesPerNode);
    } else if (!this.full(this.samples)) {
      this.samples.set(nodeId, [sample]);
    }
  }

  /**
   * Write everything pending: one UPDATE and one INSERT (each skipped when it has nothing to send).
   * What a failed statement was sending goes back into the batch, merged with what arrived meanwhile,
   * and the error is rethrown. Concurrent calls share the flush in progress.
   */
  flush(): Promise<FlushResult> {
    this.running ??= this.write().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private full(map: Map<string, unknown>): boolean {
    if (map.size < MAX_PENDING_NODES) return false;
    this.dropped++;
    return true;
  }

  private async write(): Promise<FlushResult> {
    const seen = this.lastSeen;
    const samples = this.samples;
    this.lastSeen = new Map();
    this.samples = new Map();
    const result: FlushResult = { lastSeen: 0, samples: 0 };
    let error: unknown;
    try {
      result.lastSeen = await writeLastSeen(this.prisma, seen);
    } catch (err) {
      error = err;
      for (const [nodeId, at] of seen) this.seen(nodeId, at);
    }
    try {
      result.samples = await writeSamples(this.prisma, samples);
    } catch (err) {
      error ??= err;
      for (const [nodeId, failed] of samples) {
        // Older than anything queued meanwhile: put them first, then keep the newest.
        const queued = this.samples.get(nodeId) ?? [];
        this.samples.delete(nodeId);
        for (const s of [...failed, ...queued]) this.sample(nodeId, s);
      }
    }
    if (error) throw error;
    return result;
  }
}

/**
 * One statement for every node: a row only moves forward, so an api process that flushes an older
 * time than another one (a node that moved between them) cannot take `last_seen_at` back.
 */
async function writeLastSeen(prisma: PrismaClient, seen: Map<string, Date>): Promise<number> {
  if (seen.size === 0) return 0;
  // Sorted ids, so two api processes flushing overlapping sets tend to lock rows in one order.
  const ids = [...seen.keys()].sort();
  const ats = ids.map((id) => (seen.get(id) as Date).toISOString());
  await prisma.$executeRaw`
    UPDATE nodes AS n SET last_seen_at = v.at
    FROM unnest(${ids}::uuid[], ${ats}::timestamptz[]) AS v(id, at)
    WHERE n.id = v.id AND (n.last_seen_at IS NULL OR n.last_seen_at < v.at)`;
  return ids.length;
}

/** One multi-row INSERT; samples of nodes deleted since are skipped rather than failing the batch. */
async function writeSamples(prisma: PrismaClient, samples: Map<string, PendingSample[]>): Promise<number> {
  const rows = [...samples].flatMap(([nodeId, list]) => list.map((s) => ({ nodeId, ...s })));
  if (rows.length === 0) return 0;
  await prisma.$executeRaw`
    INSERT INTO node_metric_samples (node_id, at, load, inflight, gpu_util, mem_used_mb, payload)
    SELECT v.node_id, v.at, v.load, v.inflight, v.gpu_util, v.mem_used_mb, v.payload
    FROM unnest(
      ${rows.map((r) => r.nodeId)}::uuid[],
      ${rows.map((r) => r.at.toISOString())}::timestamptz[],
      ${rows.map((r) => r.load)}::float8[],
      ${rows.map((r) => r.inflight)}::int[],
      ${rows.map((r) => r.gpuUtil)}::float8[],
      ${rows.map((r) => r.memUsedMb)}::int[],
      ${rows.map((r) => (r.payload === null ? null : JSON.stringify(r.payload)))}::jsonb[]
    ) AS v(node_id, at, load, inflight, gpu_util, mem_used_mb, payload)
    WHERE EXISTS (SELECT 1 FROM nodes WHERE nodes.id = v.node_id)`;
  return rows.length;
}

const batches = new WeakMap<PrismaClient, NodeWriteBatch>();

/**
 * The heartbeat write batch of this process's database client: every api part that records
 * heartbeats (sockets, REST) shares it, and {@link startNodeFlusher} writes it out.
 * @example nodeWrites(services).seen(nodeId, new Date());
 */
export function nodeWrites(deps: { prisma: PrismaClient; config: Config }): NodeWriteBatch {
  let batch = batches.get(deps.prisma);
  if (!batch) {
    const { NODE_FLUSH_INTERVAL_MS: flushMs, METRICS_SAMPLE_INTERVAL_MS: sampleMs } = deps.config;
    // The samples two flush intervals can bring (one failed flush), at least 2.
    batch = new NodeWriteBatch(deps.prisma, Math.max(2, 2 * Math.ceil(flushMs / sampleMs)));
    batches.set(deps.prisma, batch);
  }
  return batch;
}

export interface NodeFlusher {
  /** Write what is pending now (also what the timer does). */
  flush(): Promise<FlushResult>;
  /** Stop the timer and flush once more (waiting for a flush in progress first). */
  close(): Promise<void>;
}

/**
 * Flush {@link nodeWrites} every `NODE_FLUSH_INTERVAL_MS`, for as long as the api process runs. A flush
 * that fails is logged and its writes are retried at the next tick.
 * @example const flusher = startNodeFlusher(services); … await flusher.close();
 */
export function startNodeFlusher(deps: { prisma: PrismaClient; config: Config; log: Logger }): NodeFlusher {
  const batch = nodeWrites(deps);
  let reportedDrops = 0;
  const flush = async () => {
    try {
      return await batch.flush();
    } finally {
      if (batch.dropped > reportedDrops) {
        deps.log.warn({ dropped: batch.dropped - reportedDrops }, 'heartbeat batch full: writes dropped');
        reportedDrops = batch.dropped;
      }
    }
  };
  const timer = setInterval(() => {
    flush().catch((err) =>
      deps.log.warn(
        { err, pendingNodes: batch.pendingNodes, pendingSamples: batch.pendingSamples },
        'heartbeat flush failed; retrying at the next interval',
      ),
    );
  }, deps.config.NODE_FLUSH_INTERVAL_MS);
  timer.unref();
  let closed: Promise<void> | undefined;
  return {
    flush,
    close() {
      closed ??= (async () => {
        clearInterval(timer);
        await flush().catch(() => undefined); // the one in progress, if any
        try {
          await flush();
        } catch (err) {
          deps.log.warn({ err, pendingNodes: batch.pendingNodes }, 'final heartbeat flush failed');
        }
      })();
      return closed;
    },
  };
}
