import { loadConfigOrExit } from '../lib/config.js';
import { migrate } from '../lib/db/migrator.js';
import { createLogger } from '../lib/logger.js';
import { openServices } from '../lib/services.js';
import { onShutdown } from '../lib/shutdown.js';
import { startApi } from './api.js';

// The api half on its own, against real Temporal, PostgreSQL and Redis.
const config = loadConfigOrExit(['TEMPORAL_ADDRESS', 'DATABASE_URL', 'REDIS_URL']);
const log = createLogger('api', config.LOG_LEVEL);
const endpoints = {
  temporalAddress: config.TEMPORAL_ADDRESS as string,
  databaseUrl: config.DATABASE_URL as string,
  redisUrl: config.REDIS_URL,
};
await migrate(endpoints.databaseUrl, { log: (line) => log.info(line) });
const services = await openServices(config, endpoints, log);
const api = await startApi(services);
onShutdown(log, async () => {
  await api.close();
  await services.close();
});
