import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { startEmbeddedPostgres } from './db/embedded.js';
import type { Logger } from './logger.js';
import type { Endpoints } from './services.js';
import { locateTemporalCli } from './temporal/cli.js';
import { startDevServer } from './temporal/dev-server.js';

export interface EmbeddedStack {
  endpoints: Endpoints;
  /** Set when the Temporal dev server runs here (its Web UI). */
  temporalUiUrl: string | undefined;
  stop(): Promise<void>;
}

/**
 * Start whatever the environment does not point at: the Temporal dev server (SQLite in WAL mode) and
 * PGlite, both persisted under the data folder. Redis without `REDIS_URL` is the in-process store.
 */
export async function startEmbeddedStack(config: Config, log: Logger): Promise<EmbeddedStack> {
  await mkdir(config.dataDir, { recursive: true });
  await lockDataDir(config.dataDir);
  const stops: Array<() => Promise<void>> = [() => unlockDataDir(config.dataDir)];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((err) => log.error({ err }, 'stop failed'));
  };

  try {
    let temporalAddress = config.TEMPORAL_ADDRESS;
    let temporalUiUrl: string | undefined;
    if (!temporalAddress) {
      const cli = await locateTemporalCli({ log: (line) => log.info(`[setup] ${line}`) });
      log.info({ cli: cli.path, route: cli.route }, 'starting the Temporal dev server');
      const server = await startDevServer({
        cliPath: cli.path,
        namespace: config.TEMPORAL_NAMESPACE,
        dbFile: path.join(config.dataDir, 'temporal.sqlite'),
        pidFile: path.join(config.dataDir, 'temporal.pid'),
        port: config.TEMPORAL_PORT,
        uiPort: config.TEMPORAL_UI_PORT,
        log: (line) => log.warn({ part: 'temporal' }, line),
      });
      stops.push(() => server.stop());
      temporalAddress = server.address;
      temporalUiUrl = server.uiUrl;
    }

    let databaseUrl = config.DATABASE_URL;
    if (!databaseUrl) {
      log.info({ dir: path.join(config.dataDir, 'pglite') }, 'starting embedded PostgreSQL (PGlite)');
      const pg = await startEmbeddedPostgres({ dataDir: path.join(config.dataDir, 'pglite') });
      stops.push(() => pg.stop());
      databaseUrl = pg.url;
      log.info({ url: pg.url }, 'embedded PostgreSQL ready');
    }

    return { endpoints: { temporalAddress, databaseUrl, redisUrl: config.REDIS_URL }, temporalUiUrl, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

const lockFile = (dataDir: string) => path.join(dataDir, 'coordinator.pid');

/** Two coordinators on one data folder would corrupt each other's embedded databases. */
async function lockDataDir(dataDir: string): Promise<void> {
  const pid = Number.parseInt(await readFile(lockFile(dataDir), 'utf8').catch(() => ''), 10);
  if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
    throw new Error(
      `another coordinator (pid ${pid}) is using the data folder ${dataDir}; stop it or set DATA_DIR`,
    );
  }
  await writeFile(lockFile(dataDir), `${process.pid}\n`);
}

async function unlockDataDir(dataDir: string): Promise<void> {
  await rm(lockFile(dataDir), { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
