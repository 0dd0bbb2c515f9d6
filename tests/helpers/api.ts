import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { type App, createApp } from '../../api/app.js';
import { createMetricsRegistry } from '../../api/metrics/registry.js';
import { type Config, loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { openServices, type Services } from '../../lib/services.js';
import { createTestDatabase, type TestDatabase } from './database.js';

/** The bootstrap admin key every test API is configured with (`ADMIN_API_KEY`). */
export const TEST_ADMIN_KEY = `test-admin-${randomBytes(24).toString('hex')}`;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted by the tests, not typed.
export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (with `headers` choosing its content type). */
  raw?: string;
  headers?: Record<string, string>;
}

export type Caller = (method: string, path: string, opts?: CallOptions) => Promise<Reply>;

export interface TestApi {
  app: App;
  services: Services;
  db: TestDatabase;
  /** A temporary DATA_DIR, removed by close(). */
  dataDir: string;
  call: Caller;
  /** Another app over the same services (and store) with some configuration changed. */
  withConfig(overrides: Partial<Config>): { app: App; call: Caller };
  close(): Promise<void>;
}

/**
 * The real app over real services, as tests/health.test.ts builds it: a fresh migrated database, the
 * run's Temporal server, Redis when REDIS_URL is set (under a random key prefix) or the in-process store.
 */
export async function startTestApi(env: Record<string, string> = {}): Promise<TestApi> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ng-api-'));
  const db = await createTestDatabase({ migrated: true });
  const config = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    REDIS_KEY_PREFIX: `t${randomBytes(6).toString('hex')}:`,
    ...env,
  });
  const services = await openServices(
    config,
    { temporalAddress: inject('temporalAddress'), databaseUrl: db.url, redisUrl: process.env.REDIS_URL },
    createLogger('test', 'silent'),
  );
  const build = (cfg: Config) => createApp({ ...services, config: cfg, metrics: createMetricsRegistry() });
  const app = build(config);
  return {
    app,
    services,
    db,
    dataDir,
    call: (method, p, opts) => send(app, method, p, opts),
    withConfig: (overrides) => {
      const other = build({ ...config, ...overrides });
      return { app: other, call: (method, p, opts) => send(other, method, p, opts) };
    },
    async close() {
      await services.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function send(app: App, method: string, p: string, opts: CallOptions = {}): Promise<Reply> {
  const headers = new Headers(opts.headers);
  if (opts.key !== undefined) headers.set('authorization', `Bearer ${opts.key}`);
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  const res = await app.request(p, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}
