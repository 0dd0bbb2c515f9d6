import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface NodeMetrics {
  frames: Counter<'type' | 'result'>;
  /** Node reports that changed nothing: late, duplicate, or about someone else's attempt. */
  ignoredReports: Counter<'reason'>;
  connected: Gauge;
}

export interface HttpMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route' | 'status'>;
}

/** One registry per process (not prom-client's global), so tests can build several apps. */
export function createMetricsRegistry(): { registry: Registry; http: HttpMetrics; nodes: NodeMetrics } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'neurogrid_' });
  const http: HttpMetrics = {
    requests: new Counter({
      name: 'neurogrid_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'neurogrid_http_request_duration_seconds',
      help: 'HTTP request duration by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
  const nodes: NodeMetrics = {
    frames: new Counter({
      name: 'neurogrid_node_frames_total',
      help: 'WebSocket frames received from nodes, by type and result (ok, invalid, refused)',
      labelNames: ['type', 'result'],
      registers: [registry],
    }),
    ignoredReports: new Counter({
      name: 'neurogrid_node_reports_ignored_total',
      help: 'Node reports that changed nothing, by reason (late, duplicate, foreign)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    connected: new Gauge({
      name: 'neurogrid_nodes_connected',
      help: 'Node sockets held by this api process',
      registers: [registry],
    }),
  };
  return { registry, http, nodes };
}
