import type { Services } from '../lib/services.js';
import { createApp } from './app.js';
import { createMetricsRegistry } from './metrics/registry.js';
import { startHttpServer } from './server.js';

export interface RunningApi {
  url: string;
  close(): Promise<void>;
}

/** Serve the HTTP API on the configured host and port. */
export async function startApi(services: Services): Promise<RunningApi> {
  const { config, log } = services;
  const app = createApp({ ...services, log: log.child({ part: 'api' }), metrics: createMetricsRegistry() });
  const http = await startHttpServer(app, config.HOST, config.PORT);
  log.info({ url: http.url }, 'api listening');
  return { url: http.url, close: () => http.close() };
}
