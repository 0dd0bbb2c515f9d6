import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/**
 * The coordinator's configuration, parsed once from the environment.
 * Every variable is documented in `.env.example`; unset service URLs select the embedded stand-ins.
 */

const port = z.coerce.number().int().min(0).max(65_535);
const optional = <T extends z.ZodTypeAny>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const urlWithScheme = (schemes: string[]) =>
  z.string().refine((v) => URL.canParse(v) && schemes.includes(new URL(v).protocol.slice(0, -1)), {
    message: `must be a URL starting with ${schemes.map((s) => `${s}://`).join(' or ')}`,
  });

const hostPort = z.string().regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:7233');

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(3000),
  DATA_DIR: z.string().min(1).default('.data'),
  HOST_ID: optional(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only (max 64)')),

  TEMPORAL_ADDRESS: optional(hostPort),
  TEMPORAL_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default('neurogrid'),
  TEMPORAL_TASK_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default('neurogrid-tasks'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_CLI_PATH: optional(z.string().min(1)),

  DATABASE_URL: optional(urlWithScheme(['postgres', 'postgresql'])),
  REDIS_URL: optional(urlWithScheme(['redis', 'rediss'])),
});

export type Env = z.infer<typeof envSchema>;

/** The services an entry point cannot run without (the split processes need real ones). */
export type RequiredService = 'TEMPORAL_ADDRESS' | 'DATABASE_URL' | 'REDIS_URL';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface Config extends Env {
  dataDir: string;
  hostId: string;
  /** True when at least one service runs embedded (development on one machine). */
  embedded: boolean;
}

/**
 * Parse and validate the environment. Throws a {@link ConfigError} naming every bad variable;
 * values are never echoed, since some of them carry credentials.
 * @example const config = loadConfig(process.env, ['DATABASE_URL']);
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  required: readonly RequiredService[] = [],
): Config {
  const parsed = envSchema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issue.path.join('.')}: ${issue.message}`);
    }
  }
  for (const name of required) {
    if (!env[name]) problems.push(`${name}: required by this process (it does not start embedded services)`);
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const e = parsed.data;
  return {
    ...e,
    dataDir: path.resolve(e.DATA_DIR),
    hostId:
      e.HOST_ID ??
      `${os
        .hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 40)}-${process.pid}`,
    embedded: !e.TEMPORAL_ADDRESS || !e.DATABASE_URL || !e.REDIS_URL,
  };
}

/** Load the configuration or exit with a readable list of problems. For entry points only. */
export function loadConfigOrExit(required: readonly RequiredService[] = []): Config {
  try {
    return loadConfig(process.env, required);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nSee .env.example for every variable.\n`);
      process.exit(1);
    }
    throw err;
  }
}
