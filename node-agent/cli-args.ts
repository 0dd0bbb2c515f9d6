import { parseArgs } from 'node:util';
import { z } from 'zod';

/** What `neurogrid-node` runs with, after flags and environment are validated. */
export interface CliConfig {
  /** One or more addresses of the coordinator's api processes, tried in turn. */
  coordinatorUrls: string[];
  apiKey: string;
  backend:
    | {
        kind: 'openai';
        baseUrl: string;
        apiKey?: string;
        modelMap: Record<string, string>;
        timeoutMs: number;
      }
    | { kind: 'simulated'; latencyMs: number | [number, number]; failureRate: number };
  models: { name: string; version: string }[];
  concurrency: number;
  hardware: Record<string, unknown>;
  drainTimeoutMs: number;
  logLevel: string;
}

export type CliParse =
  | { kind: 'run'; config: CliConfig }
  | { kind: 'help' | 'version' }
  | { kind: 'error'; message: string };

export const USAGE = `Usage: neurogrid-node [options]

Connects this machine to a NeuroGrid coordinator and serves its tasks with an OpenAI-compatible
inference server (vLLM, llama.cpp server, Ollama, …).

Options:
  --coordinator <url,…>      coordinator API, e.g. http://127.0.0.1:3000   [env NEUROGRID_COORDINATOR_URL]
                             several (comma-separated or repeated): fail over between them
  --backend <openai|simulated>  where tasks run (default openai; simulated needs no GPU)
  --backend-url <url>        inference server, e.g. http://127.0.0.1:8000  [env NEUROGRID_BACKEND_URL]
  --models <list>            models served, name:version,… e.g. llama-3.1-8b:1,bge-small:1
  --model-map <list>         NeuroGrid model → server model, e.g. llama-3.1-8b=meta-llama/Llama-3.1-8B-Instruct
                             (keys are name or name:version)
  --concurrency <n>          tasks run at once (default 1)
  --hardware <json>          extra hardware facts to advertise, e.g. '{"gpu":"RTX 4090","vramMb":24564}'
  --backend-timeout-ms <n>   limit per inference request (default 600000)
  --drain-timeout-ms <n>     on SIGINT/SIGTERM, let running tasks finish this long (default 8000)
  --sim-latency-ms <n|a-b>   simulated backend latency (default 200-800)
  --sim-failure-rate <0..1>  simulated backend failure probability (default 0)
  --log-level <level>        fatal|error|warn|info|debug|trace|silent (default info) [env LOG_LEVEL]
  -h, --help / -v, --version

Environment:
  NEUROGRID_NODE_KEY         the node's API key (required; never a flag, flags show in ps)
  NEUROGRID_BACKEND_API_KEY  API key of the inference server, if it wants one

Exit codes: 0 stopped, 1 error, 2 usage error, 3 key refused by the coordinator.`;

const FLAGS = {
  coordinator: { type: 'string', multiple: true },
  backend: { type: 'string' },
  'backend-url': { type: 'string' },
  models: { type: 'string' },
  'model-map': { type: 'string' },
  concurrency: { type: 'string' },
  hardware: { type: 'string' },
  'backend-timeout-ms': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  'sim-latency-ms': { type: 'string' },
  'sim-failure-rate': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** How each checked value is named in messages: the flag, and the variable it falls back to. */
const LABELS: Record<string, string> = {
  key: 'NEUROGRID_NODE_KEY',
  coordinator: '--coordinator (or NEUROGRID_COORDINATOR_URL)',
  'backend-url': '--backend-url (or NEUROGRID_BACKEND_URL)',
  'log-level': '--log-level (or LOG_LEVEL)',
};

const httpUrl = z
  .string({ error: 'is required' })
  .refine(
    (s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol),
    'must be an http:// or https:// URL',
  );
/** `a,b` (or the flag repeated) → the distinct URLs, in order. */
const urlList = z
  .string({ error: 'is required' })
  .transform((s) => [...new Set(s.split(',').map((u) => u.trim()))].filter((u) => u !== ''))
  .pipe(z.array(httpUrl).min(1, 'is required').max(16, 'names at most 16 addresses'));
const int = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int(`must be an integer from ${min} to ${max}`)
    .min(min, `must be an integer from ${min} to ${max}`)
    .max(max, `must be an integer from ${min} to ${max}`);

const modelList = z.string({ error: 'is required (name:version,…)' }).transform((s, ctx) => {
  const models = s.split(',').map((item) => {
    const at = item.trim().lastIndexOf(':');
    return at < 1
      ? { name: '', version: '' }
      : { name: item.trim().slice(0, at), version: item.trim().slice(at + 1) };
  });
  const bad = models.find((m) => !/^[\w.\-/]{1,128}$/.test(m.name) || !/^[\w.-]{1,64}$/.test(m.version));
  if (bad || models.length > 64) {
    ctx.addIssue({ code: 'custom', message: `must be a list of name:version (got "${truncateArg(s)}")` });
    return z.NEVER;
  }
  return models;
});
const modelMap = z.string().transform((s, ctx) => {
  const entries = s.split(',').map((item) => item.split('=').map((p) => p.trim()));
  if (entries.some((e) => e.length !== 2 || !e[0] || !e[1])) {
    ctx.addIssue({ code: 'custom', message: 'must be a list of model=server-model' });
    return z.NEVER;
  }
  return Object.fromEntries(entries) as Record<string, string>;
});
const json = z.string().transform((s, ctx) => {
  try {
    const value: unknown = JSON.parse(s);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
  return z.NEVER;
});
const latency = z.string().transform((s, ctx) => {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s.trim());
  const [min, max] = [Number(m?.[1]), Number(m?.[2] ?? m?.[1])];
  if (!m || min > max) {
    ctx.addIssue({ code: 'custom', message: 'must be milliseconds, or a range like 200-800' });
    return z.NEVER;
  }
  return min === max ? min : ([min, max] as [number, number]);
});

const schema = z
  .object({
    key: z.string({ error: 'is required: export the node API key in this variable' }).min(1, 'is empty'),
    coordinator: urlList,
    backend: z.enum(['openai', 'simulated'], { error: 'must be openai or simulated' }).default('openai'),
    'backend-url': httpUrl.optional(),
    'backend-api-key': z.string().optional(),
    models: modelList,
    'model-map': modelMap.default({}),
    concurrency: int(1, 1_024).default(1),
    hardware: json.default({}),
    'backend-timeout-ms': int(1, 86_400_000).default(600_000),
    'drain-timeout-ms': int(0, 3_600_000).default(8_000),
    'sim-latency-ms': latency.default([200, 800]),
    'sim-failure-rate': z.coerce
      .number({ error: 'must be a number' })
      .min(0, 'must be from 0 to 1')
      .max(1, 'must be from 0 to 1')
      .default(0),
    'log-level': z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'must be a pino level' })
      .default('info'),
  })
  .refine((o) => o.backend !== 'openai' || o['backend-url'] !== undefined, {
    path: ['backend-url'],
    message: 'is required with --backend openai',
  });

/**
 * Validate `neurogrid-node` flags and environment. Never exits or prints: the caller decides.
 * @example parseCliArgs(['--coordinator', 'http://127.0.0.1:3000', '--backend', 'simulated', '--models', 'm:1'], process.env)
 */
export function parseCliArgs(argv: string[], env: Record<string, string | undefined>): CliParse {
  // A key on the command line leaks through `ps` and shell history: refuse it with a pointed message.
  const keyFlag = argv.find((a) => /^--(api-|node-)?key(=|$)/.test(a));
  if (keyFlag) {
    return {
      kind: 'error',
      message: `${keyFlag.split('=')[0]} is not accepted: set NEUROGRID_NODE_KEY instead`,
    };
  }
  let values: Partial<Record<keyof typeof FLAGS, string | string[] | boolean>>;
  try {
    ({ values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }));
  } catch (err) {
    return { kind: 'error', message: (err as Error).message.split('\n')[0] ?? 'invalid arguments' };
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  const blank = (s: string | undefined) => (s === '' ? undefined : s);
  const parsed = schema.safeParse({
    ...values,
    key: env.NEUROGRID_NODE_KEY,
    coordinator:
      (values.coordinator as string[] | undefined)?.join(',') ?? blank(env.NEUROGRID_COORDINATOR_URL),
    'backend-url': values['backend-url'] ?? blank(env.NEUROGRID_BACKEND_URL),
    'backend-api-key': blank(env.NEUROGRID_BACKEND_API_KEY),
    'log-level': values['log-level'] ?? blank(env.LOG_LEVEL),
  });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const field = String(issue.path[0] ?? '');
      return `${LABELS[field] ?? `--${field}`} ${issue.message}`;
    });
    return { kind: 'error', message: lines.join('\n') };
  }
  const o = parsed.data;
  const backend: CliConfig['backend'] =
    o.backend === 'openai'
      ? {
          kind: 'openai',
          baseUrl: o['backend-url'] as string,
          apiKey: o['backend-api-key'],
          modelMap: o['model-map'],
          timeoutMs: o['backend-timeout-ms'],
        }
      : { kind: 'simulated', latencyMs: o['sim-latency-ms'], failureRate: o['sim-failure-rate'] };
  return {
    kind: 'run',
    config: {
      coordinatorUrls: o.coordinator,
      apiKey: o.key,
      backend,
      models: o.models,
      concurrency: o.concurrency,
      hardware: o.hardware,
      drainTimeoutMs: o['drain-timeout-ms'],
      logLevel: o['log-level'],
    },
  };
}

function truncateArg(s: string): string {
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}
