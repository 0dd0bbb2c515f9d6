import { createHostActivities } from '../activities/host.js';
import { startNodeFlusher } from '../lib/nodes/flush.js';
import type { Services } from '../lib/services.js';
import { createApp } from './app.js';
import { ensureAdminKey } from './auth/bootstrap.js';
import { apiReadiness } from './health/readiness.js';
import { holdHostLease } from './host-lease.js';
import { createMetricsRegistry } from './metrics/registry.js';
import type { NodeSessions } from './nodes/sessions.js';
import { attachNodeSockets } from './nodes/socket.js';
import { startHttpServer } from './server.js';

export interface RunningApi {
  url: string;
  hostId: string;
  close(): Promise<void>;
}

/**
 * Serve the HTTP API and the node WebSocket endpoint, and run this process's host-queue worker, which
 * delivers assignments to the sockets held here. Holds the host lease that keeps this process's nodes
 * online; Temporal's side (namespace, host worker) is retried in the background, and `/api/health`
 * says what is still missing.
 */
export async function startApi(services: Services): Promise<RunningApi> {
  const { config, log } = services;
  const hostId = config.hostId;
  await ensureAdminKey(services);
  let sessions: NodeSessions | undefined;
  const connectedNodes = () => [...(sessions?.all() ?? [])].filter((s) => s.hello).map((s) => s.nodeId);
  const lease = await holdHostLease(services, connectedNodes);
  const readiness = apiReadiness(services, lease);
  const metrics = createMetricsRegistry();
  const app = createApp({
    ...services,
    checks: [...services.checks, ...readiness.checks],
    log: log.child({ part: 'api' }),
    metrics,
  });
  // Heartbeats only touch the store; this writes their last-seen times and samples to PostgreSQL.
  const flusher = startNodeFlusher({ ...services, log: log.child({ part: 'node-flush' }) });
  const http = await startHttpServer(app, config.HOST, config.PORT);
  const sockets = attachNodeSockets(http.server as import('node:http').Server, {
    ...services,
    log: log.child({ part: 'nodes' }),
    hostId,
    metrics: metrics.nodes,
  });
  sessions = sockets.sessions;
  await readiness.start(createHostActivities({ ...services, sessions, hostId }));
  log.info({ url: http.url, hostId }, 'api listening');
  return {
    url: http.url,
    hostId,
    async close() {
      // Off the store first, so no new task is sent here while the sockets close.
      await lease.close();
      await sockets.close();
      await readiness.close();
      await http.close();
      await flusher.close(); // after the last heartbeat could arrive
    },
  };
}
