import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/**
 * The coordinator's configuration, parsed once from the environment.
 * Every variable is documented in `.env.example`; unset service URLs select the embedded stand-ins.
 */

const port = z.coerce.number().int().min(0).max(65_535);
const ms = z.coerce
  .number()
  .int()
  .min(1)
  .max(7 * 24 * 3600 * 1000);
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
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{1,32}$/)
    .default('ng:'),

  ADMIN_API_KEY: optional(z.string().min(32, 'must be at least 32 characters')),
  MAX_BODY_BYTES: z.coerce.number().int().min(1_024).default(1_048_576),
  /** Requests per minute per principal (all keys of one client, owner or node count together). */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** Requests per minute per remote address, checked before the key so guessing keys is slow too. */
  RATE_LIMIT_IP_PER_MINUTE: z.coerce.number().int().min(1).default(1_200),

  /** Share of a task's price paid to the node, in basis points (8000 = 80 %). */
  NODE_SHARE_BPS: z.coerce.number().int().min(0).max(10_000).default(8_000),
  /** Price surcharge per priority level, in basis points (1000 = +10 % per level). */
  PRIORITY_SURCHARGE_BPS: z.coerce.number().int().min(0).max(10_000).default(1_000),

  TASK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  TASK_ACCEPT_TIMEOUT_MS: ms.default(10_000),
  TASK_RESULT_TIMEOUT_MS: ms.default(120_000),
  TASK_QUEUE_TIMEOUT_MS: ms.default(300_000),
  TASK_NO_NODE_RETRY_MS: ms.default(2_000),
  /** How long a submission or a cancel waits for Temporal before answering 503 with Retry-After. */
  TASK_START_TIMEOUT_MS: ms.default(5_000),
  /** A queued task whose workflow does not exist this long after admission is abandoned by the reaper. */
  TASK_STRANDED_GRACE_MS: ms.default(60_000),
  /** How often the reaper (a Temporal schedule) looks for stranded tasks. */
  REAPER_INTERVAL_MS: ms.default(30_000),

  NODE_HEARTBEAT_INTERVAL_MS: ms.default(5_000),
  NODE_PRESENCE_TTL_MS: ms.default(15_000),
  /** Each api process's lease in the store, renewed every third of it: a dead api's nodes go offline within it. */
  HOST_LEASE_TTL_MS: ms.min(300).default(6_000),
  NODE_HELLO_TIMEOUT_MS: ms.default(10_000),
  METRICS_SAMPLE_INTERVAL_MS: ms.default(10_000),
  /** How often each api process writes heartbeats' last-seen times and metric samples to PostgreSQL, batched. */
  NODE_FLUSH_INTERVAL_MS: ms.default(10_000),

  /** The smallest withdrawal a node may request, in minor units. */
  WITHDRAWAL_MIN_AMOUNT: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(100),
  /** How withdrawals are paid: `local` only logs them (development); `webhook` calls a payout provider. */
  PAYOUT_ADAPTER: z.enum(['local', 'webhook']).default('local'),
  PAYOUT_WEBHOOK_URL: optional(urlWithScheme(['http', 'https'])),
  PAYOUT_WEBHOOK_SECRET: optional(z.string().min(32, 'must be at least 32 characters')),
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
  if (parsed.success && parsed.data.NODE_ENV === 'production') {
    // Production never runs on generated credentials or embedded stand-ins.
    for (const name of ['ADMIN_API_KEY', 'TEMPORAL_ADDRESS', 'DATABASE_URL', 'REDIS_URL'] as const) {
      if (!env[name] && !required.includes(name as RequiredService)) {
        problems.push(`${name}: required when NODE_ENV=production`);
      }
    }
  }
  if (parsed.success && parsed.data.PAYOUT_ADAPTER === 'webhook') {
    // Checked here, not at the first withdrawal: a payout adapter that cannot sign must not start.
    for (const name of ['PAYOUT_WEBHOOK_URL', 'PAYOUT_WEBHOOK_SECRET'] as const) {
      if (!parsed.data[name]) problems.push(`${name}: required when PAYOUT_ADAPTER=webhook`);
    }
  }
  if (parsed.success && parsed.data.TASK_STRANDED_GRACE_MS <= parsed.data.TASK_START_TIMEOUT_MS) {
    // An api may still be starting a task's workflow until TASK_START_TIMEOUT_MS has passed.
    problems.push('TASK_STRANDED_GRACE_MS: must be longer than TASK_START_TIMEOUT_MS');
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
