import { Hono } from 'hono';
import type { Registry } from 'prom-client';

/** `GET /metrics`: Prometheus text exposition. */
export function metricsRoutes(registry: Registry) {
  return new Hono().get('/metrics', async (c) => {
    c.header('Content-Type', registry.contentType);
    return c.body(await registry.metrics());
  });
}
