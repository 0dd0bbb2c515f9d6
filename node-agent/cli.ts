import os from 'node:os';
import { createLogger } from '../lib/logger.js';
import { onShutdown } from '../lib/shutdown.js';
import { NodeAgent } from './agent.js';
import { openAiBackend } from './backends/openai.js';
import { simulatedBackend } from './backends/simulated.js';
import type { Backend } from './backends/types.js';
import { type CliConfig, parseCliArgs, USAGE } from './cli-args.js';
import { AGENT_VERSION } from './internal.js';

/** Exit code when the coordinator refuses the key: a supervisor should not restart in a loop. */
const EXIT_KEY_REFUSED = 3;

// `neurogrid-node`: what node operators run. Flags and env → NodeAgent + backend; JSON logs on stdout.
const parsed = parseCliArgs(process.argv.slice(2), process.env);
switch (parsed.kind) {
  case 'help':
    process.stdout.write(`${USAGE}\n`);
    break;
  case 'version':
    process.stdout.write(`neurogrid-node ${AGENT_VERSION}\n`);
    break;
  case 'error':
    process.stderr.write(`neurogrid-node: ${parsed.message}\nRun neurogrid-node --help for usage.\n`);
    process.exitCode = 2;
    break;
  case 'run':
    await run(parsed.config);
}

async function run(config: CliConfig): Promise<void> {
  const log = createLogger('neurogrid-node', config.logLevel);
  const backend = createBackend(config);
  const hardware = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memMb: Math.round(os.totalmem() / 1_048_576),
    platform: `${os.platform()}-${os.arch()}`,
    ...config.hardware,
  };
  const agent = new NodeAgent({
    coordinatorUrl: config.coordinatorUrls,
    apiKey: config.apiKey,
    models: config.models,
    capacity: config.concurrency,
    hardware,
    backend,
    log,
  });
  agent.on('fatal', () => process.exit(EXIT_KEY_REFUSED));
  agent.on('connected', ({ nodeId }) => log.info({ nodeId }, 'connected to the coordinator'));
  agent.on('disconnected', ({ code, reason }) => log.warn({ code, reason }, 'disconnected; reconnecting'));
  agent.on('completed', ({ attemptId, durationMs }) => log.info({ attemptId, durationMs }, 'task completed'));
  agent.on('accepted', ({ attemptId }) => log.info({ attemptId }, 'task accepted'));
  agent.on('rejected', ({ attemptId, reason }) => log.info({ attemptId, reason }, 'task rejected'));
  agent.on('cancelled', ({ attemptId, reason }) => log.info({ attemptId, reason }, 'task cancelled'));
  onShutdown(log, () => agent.stop({ drainTimeoutMs: config.drainTimeoutMs }));

  log.info(
    {
      coordinators: config.coordinatorUrls,
      backend: config.backend.kind === 'openai' ? config.backend.baseUrl : 'simulated',
      models: config.models.map((m) => `${m.name}:${m.version}`),
      concurrency: config.concurrency,
      version: AGENT_VERSION,
    },
    'starting',
  );
  // Until the first hello ack the agent keeps retrying with backoff (logged); start() settles later.
  await agent.start().catch(() => {
    // refused key → 'fatal' exits above; stopped by a signal → onShutdown exits
  });
}

function createBackend(config: CliConfig): Backend {
  const b = config.backend;
  if (b.kind === 'simulated') return simulatedBackend({ latencyMs: b.latencyMs, failureRate: b.failureRate });
  return openAiBackend({
    baseUrl: b.baseUrl,
    apiKey: b.apiKey,
    modelMap: b.modelMap,
    timeoutMs: b.timeoutMs,
  });
}
