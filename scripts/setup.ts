/**
 * `npm run setup`: finds the Temporal CLI, downloading or building it into the cache when needed
 * (the first Go build takes ~5 min). Prints where it is and which route found it.
 */
import { locateTemporalCli, TEMPORAL_CLI_VERSION } from '../lib/temporal/cli.js';

try {
  const cli = await locateTemporalCli({ log: (line) => process.stderr.write(`[setup] ${line}\n`) });
  console.log(`Temporal CLI ${TEMPORAL_CLI_VERSION}: ${cli.path} (route: ${cli.route})`);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
}
