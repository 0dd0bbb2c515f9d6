import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export interface HttpMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route' | 'status'>;
}

/** One registry per process (not prom-client's global), so tests can build several apps. */
export function createMetricsRegistry(): { registry: Registry; http: HttpMetrics } {
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
  return { registry, http };
}
