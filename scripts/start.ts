import { startApi } from '../api/api.js';
import { loadConfigOrExit } from '../lib/config.js';
import { migrate } from '../lib/db/migrator.js';
import { startEmbeddedStack } from '../lib/embedded.js';
import { createLogger } from '../lib/logger.js';
import { openServices } from '../lib/services.js';
import { onShutdown } from '../lib/shutdown.js';
import { startWorker } from '../worker/worker.js';

// `npm start`: the whole coordinator in one process, with embedded services for whatever is not configured.
const started = performance.now();
const config = loadConfigOrExit();
const log = createLogger('coordinator', config.LOG_LEVEL);

const stack = await startEmbeddedStack(config, log).catch((err: Error) => {
  process.stderr.write(`\nThe coordinator could not start:\n${err.message}\n`);
  process.exit(1);
});
const { applied } = await migrate(stack.endpoints.databaseUrl, { log: (line) => log.info(line) });
log.info({ applied: applied.length }, applied.length ? 'database migrated' : 'database schema up to date');
const services = await openServices(config, stack.endpoints, log);
const worker = await startWorker(services);
const api = await startApi(services);

const seconds = ((performance.now() - started) / 1000).toFixed(1);
process.stdout.write(
  [
    '',
    `NeuroGrid coordinator is up (${seconds} s)`,
    `  API          ${api.url}   (health: ${api.url}/api/health)`,
    stack.temporalUiUrl
      ? `  Temporal UI  ${stack.temporalUiUrl}`
      : `  Temporal     ${stack.endpoints.temporalAddress}`,
    `  Data folder  ${config.dataDir}`,
    '  Stop with Ctrl-C.',
    '',
  ].join('\n'),
);

onShutdown(log, async () => {
  await api.close();
  await worker.close();
  await services.close();
  await stack.stop();
});
