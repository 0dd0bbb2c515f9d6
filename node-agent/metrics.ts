import os from 'node:os';
import type { z } from 'zod';
import type { nodeMetrics } from '../protocol/frames.js';

export type NodeMetrics = z.infer<typeof nodeMetrics>;

/**
 * Host CPU utilisation since the previous sample and used memory, for heartbeats. Host-wide rather
 * than this process: the inference server is another process on the same machine. GPU metrics are
 * not known here (no portable source), so `gpuUtil` is left out.
 * @example const sample = createMetricsSampler(); setInterval(() => send(sample()), 10_000);
 */
export function createMetricsSampler(): () => NodeMetrics {
  let previous = cpuTimes();
  return () => {
    const current = cpuTimes();
    const total = current.total - previous.total;
    const busy = total - (current.idle - previous.idle);
    previous = current;
    const metrics: NodeMetrics = { memUsedMb: Math.round((os.totalmem() - os.freemem()) / 1_048_576) };
    if (total > 0) metrics.cpuUtil = Math.min(1, Math.max(0, busy / total));
    return metrics;
  };
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}
