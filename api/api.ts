import { createHostActivities } from '../activities/host.js';
import type { Services } from '../lib/services.js';
import { startTemporalWorker } from '../worker/worker.js';
import { hostTaskQueue } from '../workflows/definitions.js';
import { createApp } from './app.js';
import { ensureAdminKey } from './auth/bootstrap.js';
import { createMetricsRegistry } from './metrics/registry.js';
import { attachNodeSockets } from './nodes/socket.js';
import { startHttpServer } from './server.js';

export interface RunningApi {
  url: string;
  hostId: string;
  close(): Promise<void>;
}

/**
 * Serve the HTTP API and the node WebSocket endpoint, and run this process's host-queue worker, which
 * delivers assignments to the sockets held here.
 */
export async function startApi(services: Services): Promise<RunningApi> {
  const { config, log } = services;
  const hostId = config.hostId;
  await ensureAdminKey(services);
  const metrics = createMetricsRegistry();
  const app = createApp({ ...services, log: log.child({ part: 'api' }), metrics });
  const http = await startHttpServer(app, config.HOST, config.PORT);
  const sockets = attachNodeSockets(http.server as import('node:http').Server, {
    ...services,
    log: log.child({ part: 'nodes' }),
    hostId,
    metrics: metrics.nodes,
  });
  const hostWorker = await startTemporalWorker(services, {
    taskQueue: hostTaskQueue(config.TEMPORAL_TASK_QUEUE, hostId),
    activities: createHostActivities({ ...services, sessions: sockets.sessions, hostId }),
  });
  log.info({ url: http.url, hostId }, 'api listening');
  return {
    url: http.url,
    hostId,
    async close() {
      await sockets.close();
      await hostWorker.close();
      await http.close();
    },
  };
}
