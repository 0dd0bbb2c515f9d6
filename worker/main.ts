import { loadConfigOrExit } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { openServices } from '../lib/services.js';
import { onShutdown } from '../lib/shutdown.js';
import { startWorker } from './worker.js';

// The worker half on its own, against real Temporal, PostgreSQL and Redis.
const config = loadConfigOrExit(['TEMPORAL_ADDRESS', 'DATABASE_URL', 'REDIS_URL']);
const log = createLogger('worker', config.LOG_LEVEL);
const services = await openServices(
  config,
  {
    temporalAddress: config.TEMPORAL_ADDRESS as string,
    databaseUrl: config.DATABASE_URL as string,
    redisUrl: config.REDIS_URL,
  },
  log,
);
const worker = await startWorker(services);
onShutdown(log, async () => {
  await worker.close();
  await services.close();
});
