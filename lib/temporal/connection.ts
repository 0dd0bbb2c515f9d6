import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Logger } from '../logger.js';

export const TEMPORAL_CONNECT_TIMEOUT_MS = 60_000;

/**
 * A Temporal client whose connection is made at its first call, so a process starts whatever the
 * order services come up in (compose, a Temporal restart); until Temporal answers, calls fail after
 * their deadline and `/api/health` says what is missing.
 * @example const { client } = connectTemporalClient('127.0.0.1:7233', 'neurogrid');
 */
export function connectTemporalClient(
  address: string,
  namespace: string,
): { connection: Connection; client: Client } {
  const connection = Connection.lazy({ address, connectTimeout: 2_000 });
  return { connection, client: new Client({ connection, namespace }) };
}

/** The worker side of the same: a native connection for Temporal workers. */
export function connectTemporalWorker(
  address: string,
  log: Logger,
  timeoutMs = TEMPORAL_CONNECT_TIMEOUT_MS,
): Promise<NativeConnection> {
  return retryUntil(() => NativeConnection.connect({ address }), address, log, timeoutMs);
}

/**
 * A connection for health probes only: no retry interceptor, so a probe of a server that is down fails
 * once and leaves no retry timer behind to fire on a closed channel.
 */
export function healthConnection(address: string): Connection {
  return Connection.lazy({ address, interceptors: [], connectTimeout: 2_000 });
}

/** `grpc.health.v1` against the frontend: what `/api/health` asks. Aborting cancels the call. */
export async function pingTemporal(connection: Connection, signal: AbortSignal): Promise<void> {
  await connection.withAbortSignal(signal, () => connection.healthService.check({}));
}

async function retryUntil<T>(connect: () => Promise<T>, address: string, log: Logger, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect();
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(
          `Temporal at ${address} did not answer within ${timeoutMs} ms: ${(err as Error).message}`,
        );
      }
      if (attempt === 1 || attempt % 10 === 0) log.warn({ address, attempt }, 'waiting for Temporal');
      await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * attempt)));
    }
  }
}
