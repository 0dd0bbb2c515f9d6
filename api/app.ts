import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { Registry } from 'prom-client';
import type { Services } from '../lib/services.js';
import { healthRoutes } from './health/index.js';
import { metricsRoutes } from './metrics/index.js';
import type { HttpMetrics } from './metrics/registry.js';
import { errorHandler, notFoundHandler } from './middleware/error-handler.js';
import { requestLog } from './middleware/request-log.js';

/** What the routes need: the process's shared services plus this app's metrics. */
export interface AppDeps
  extends Pick<Services, 'config' | 'log' | 'prisma' | 'store' | 'temporal' | 'checks'> {
  metrics: { registry: Registry; http: HttpMetrics };
}

/**
 * Build the HTTP app: request ids, JSON request logs, one error handler, and every resource's routes.
 * Tests build it the same way with their own dependencies.
 */
export function createApp(deps: AppDeps) {
  const app = new Hono();
  app.use('*', requestId({ limitLength: 64 }));
  app.use('*', requestLog(deps.log, deps.metrics.http));
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);

  app.route('/', metricsRoutes(deps.metrics.registry));
  app.route('/api', healthRoutes(deps.checks));
  return app;
}

export type App = ReturnType<typeof createApp>;
