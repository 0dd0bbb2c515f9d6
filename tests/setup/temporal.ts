import type { TestProject } from 'vitest/node';
import { locateTemporalCli } from '../../lib/temporal/cli.js';
import { startDevServer } from '../../lib/temporal/dev-server.js';
import { freePort } from '../helpers/ports.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCliPath: string;
    temporalNamespace: string;
  }
}

const NAMESPACE = 'neurogrid';

/** One Temporal dev server (in memory, headless) for the whole run, from the same CLI `npm start` uses. */
export default async function setup(project: TestProject) {
  const cli = await locateTemporalCli({ log: (line) => process.stderr.write(`[setup] ${line}\n`) });
  const server = await startDevServer({
    cliPath: cli.path,
    namespace: NAMESPACE,
    port: await freePort(),
    uiPort: 0,
    headless: true,
  });
  project.provide('temporalAddress', server.address);
  project.provide('temporalCliPath', cli.path);
  project.provide('temporalNamespace', NAMESPACE);
  return () => server.stop();
}
