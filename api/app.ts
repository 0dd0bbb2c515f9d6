import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { adminRoutes } from './admin/index.js';
import type { AppDeps } from './deps.js';
import { ApiError } from './errors.js';
import { healthRoutes } from './health/index.js';
import { metricsRoutes } from './metrics/index.js';
import { errorHandler, notFoundHandler } from './middleware/error-handler.js';
import { requestLog } from './middleware/request-log.js';
import { modelRoutes } from './models/index.js';
import { nodeRoutes } from './nodes/index.js';
import { statsRoutes } from './stats/index.js';
import { taskRoutes } from './tasks/index.js';
import { tokenRoutes } from './tokens/index.js';

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
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.config.MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError(
          413,
          'payload_too_large',
          `request body exceeds ${deps.config.MAX_BODY_BYTES} bytes`,
        );
      },
    }),
  );

  app.route('/', metricsRoutes(deps.metrics.registry));
  app.route('/api', healthRoutes(deps.checks));
  app.route('/api/admin', adminRoutes(deps));
  app.route('/api/models', modelRoutes(deps));
  app.route('/api/nodes', nodeRoutes(deps));
  app.route('/api', statsRoutes(deps));
  app.route('/api/tasks', taskRoutes(deps));
  app.route('/api/tokens', tokenRoutes(deps));
  return app;
}

export type App = ReturnType<typeof createApp>;
