import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from '../../lib/logger.js';
import type { HttpMetrics } from '../metrics/registry.js';

/** One JSON log line and one metrics observation per request, keyed by the matched route. */
export function requestLog(log: Logger, metrics: HttpMetrics): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const matched = routePath(c, -1);
    const route = matched && matched !== '*' && matched !== '/*' ? matched : 'unmatched';
    const labels = { method: c.req.method, route, status: String(c.res.status) };
    metrics.requests.inc(labels);
    metrics.duration.observe(labels, seconds);
    if (route === '/metrics' || route === '/api/health') return; // probes would drown the log
    log.info(
      { requestId: c.get('requestId'), ...labels, path: c.req.path, ms: Math.round(seconds * 1000) },
      'request',
    );
  };
}
