import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import type { App } from './app.js';

export interface HttpServer {
  server: ServerType;
  url: string;
  close(): Promise<void>;
}

/** Listen on host:port (0 = any free port) and resolve once the socket is bound. */
export function startHttpServer(app: App, host: string, port: number): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info: AddressInfo) => {
      const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      resolve({
        server,
        url: `http://${shownHost}:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            // Stop accepting, let in-flight requests finish, drop idle keep-alive sockets.
            server.close(() => done());
            if ('closeIdleConnections' in server) server.closeIdleConnections();
          }),
      });
    });
    server.once('error', reject);
  });
}
