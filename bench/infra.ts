import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { locateTemporalCli } from '../lib/temporal/cli.js';
import { startDevServer } from '../lib/temporal/dev-server.js';
import { createTestDatabase } from '../tests/helpers/database.js';
import { freePort } from '../tests/helpers/ports.js';
import { progress } from './measure.js';

export interface BenchInfra {
  temporalAddress: string;
  namespace: string;
  databaseUrl: string;
  redisUrl: string | undefined;
  /** A scratch folder for this run (dev server SQLite file, coordinator DATA_DIR). */
  dir: string;
  /** What ran where, for the results file. */
  describe: { temporal: string; database: string; redis: string };
  stop(): Promise<void>;
}

/**
 * The backing services for one benchmark run: `TEMPORAL_ADDRESS` or a Temporal dev server of our own
 * (in memory, or SQLite in WAL mode like `npm start`); a fresh database on `DATABASE_URL`'s server or an
 * in-memory PGlite; `REDIS_URL` or nothing (the coordinator then uses its in-process store).
 */
export async function startInfra({
  sqlite,
  devServerDefaults = false,
}: {
  sqlite: boolean;
  /** Our dev server with Temporal's default dispatch pacing, not DEV_SERVER_DYNAMIC_CONFIG. */
  devServerDefaults?: boolean;
}): Promise<BenchInfra> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ng-bench-'));
  const stops: Array<() => Promise<void>> = [() => rm(dir, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((err) => progress(`cleanup failed: ${String(err)}`));
  };
  try {
    const namespace = process.env.TEMPORAL_NAMESPACE || 'neurogrid';
    let temporalAddress = process.env.TEMPORAL_ADDRESS;
    let temporal = `external ${temporalAddress}`;
    if (!temporalAddress) {
      temporal = `${sqlite ? 'dev server, SQLite (WAL)' : 'dev server, in memory'}${devServerDefaults ? ', Temporal default dispatch' : ''}`;
      progress(`starting the Temporal ${temporal}`);
      const cli = await locateTemporalCli({ log: (line) => progress(`[setup] ${line}`) });
      const server = await startDevServer({
        cliPath: cli.path,
        namespace,
        port: await freePort(),
        uiPort: 0,
        headless: true,
        temporalDefaults: devServerDefaults,
        ...(sqlite ? { dbFile: path.join(dir, 'temporal.sqlite') } : {}),
      });
      stops.push(() => server.stop());
      temporalAddress = server.address;
    }

    progress(process.env.DATABASE_URL ? 'creating a PostgreSQL database' : 'starting PGlite (in memory)');
    const db = await createTestDatabase({ migrated: true });
    stops.push(() => db.drop());

    const redisUrl = process.env.REDIS_URL || undefined;
    return {
      temporalAddress,
      namespace,
      databaseUrl: db.url,
      redisUrl,
      dir,
      describe: {
        temporal,
        database: db.backend === 'postgres' ? 'PostgreSQL (DATABASE_URL)' : 'PGlite in memory',
        redis: redisUrl ? 'Redis (REDIS_URL)' : 'in-process store',
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The coordinator's environment for this run: its own queue, key prefix and data folder; no rate limits. */
export function coordinatorEnv(infra: BenchInfra): Record<string, string> {
  const rand = randomBytes(4).toString('hex');
  return {
    NODE_ENV: 'development',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    PORT: '0',
    DATA_DIR: path.join(infra.dir, 'data'),
    TEMPORAL_ADDRESS: infra.temporalAddress,
    TEMPORAL_NAMESPACE: infra.namespace,
    TEMPORAL_TASK_QUEUE: `bench-${rand}`,
    DATABASE_URL: infra.databaseUrl,
    ...(infra.redisUrl ? { REDIS_URL: infra.redisUrl } : {}),
    REDIS_KEY_PREFIX: `bench${rand}:`,
    ADMIN_API_KEY: `bench-admin-${randomBytes(24).toString('hex')}`,
    // The client here is the load generator: the per-key and per-address limits would only throttle it.
    RATE_LIMIT_PER_MINUTE: '100000000',
    RATE_LIMIT_IP_PER_MINUTE: '100000000',
  };
}
