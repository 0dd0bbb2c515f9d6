import type { Client, Connection } from '@temporalio/client';
import type { DependencyCheck } from '../api/health/checks.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Config } from './config.js';
import { createPrisma, pingDatabase } from './db/client.js';
import type { Logger } from './logger.js';
import { createStore, type Store } from './redis/index.js';
import { connectTemporalClient, healthConnection, pingTemporal } from './temporal/connection.js';

/** Where the three backing services are: real ones from the environment, or the embedded stand-ins. */
export interface Endpoints {
  temporalAddress: string;
  databaseUrl: string;
  /** Unset: the in-process store (one process only). */
  redisUrl: string | undefined;
}

/** The connections a process shares between its parts, opened once and closed once. */
export interface Services {
  config: Config;
  log: Logger;
  endpoints: Endpoints;
  prisma: PrismaClient;
  store: Store;
  temporal: { connection: Connection; client: Client };
  checks: DependencyCheck[];
  close(): Promise<void>;
}

export async function openServices(config: Config, endpoints: Endpoints, log: Logger): Promise<Services> {
  const temporal = connectTemporalClient(endpoints.temporalAddress, config.TEMPORAL_NAMESPACE);
  const probe = healthConnection(endpoints.temporalAddress);
  const prisma = createPrisma(endpoints.databaseUrl);
  const store = createStore(endpoints.redisUrl, { log, keyPrefix: config.REDIS_KEY_PREFIX });
  const checks: DependencyCheck[] = [
    { name: 'temporal', check: (signal) => pingTemporal(probe, signal) },
    { name: 'database', check: async () => void (await pingDatabase(prisma)) },
    { name: 'redis', check: async () => void (await store.ping()) },
  ];
  return {
    config,
    log,
    endpoints,
    prisma,
    store,
    temporal,
    checks,
    async close() {
      await Promise.allSettled([
        temporal.connection.close(),
        probe.close(),
        prisma.$disconnect(),
        store.close(),
      ]);
    },
  };
}
