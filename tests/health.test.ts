import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { startApi } from '../api/api.js';
import { createApp } from '../api/app.js';
import { createMetricsRegistry } from '../api/metrics/registry.js';
import { loadConfig } from '../lib/config.js';
import { startEmbeddedPostgres } from '../lib/db/embedded.js';
import { createLogger } from '../lib/logger.js';
import { openServices, type Services } from '../lib/services.js';
import { type DevServer, startDevServer } from '../lib/temporal/dev-server.js';
import { startWorker } from '../worker/worker.js';
import { freePort } from './helpers/ports.js';

// Each dependency is this file's own, so stopping one never disturbs other test files.
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

async function startRedis(port: number) {
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const { Redis } = await import('ioredis');
  for (let i = 0; i < 50; i++) {
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    const ok = await probe.ping().then(
      () => true,
      () => false,
    );
    probe.disconnect();
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('redis-server did not start');
}

describe('GET /api/health', () => {
  let dir: string;
  let temporal: DevServer;
  let temporalPort: number;
  let pg: { url: string; stop(): Promise<void> };
  let pgPort: number;
  let redis: ReturnType<typeof spawn> | undefined;
  let redisPort: number;
  let services: Services;
  let app: ReturnType<typeof createApp>;

  const startTemporal = () =>
    startDevServer({
      cliPath: inject('temporalCliPath'),
      namespace: 'neurogrid',
      port: temporalPort,
      uiPort: 0,
      headless: true,
    });
  const startPg = () => startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: pgPort });
  const health = async () => {
    const res = await app.request('/api/health');
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ng-health-'));
    [temporalPort, pgPort, redisPort] = [await freePort(), await freePort(), await freePort()];
    [temporal, pg, redis] = await Promise.all([
      startTemporal(),
      startPg(),
      hasRedisServer ? startRedis(redisPort) : undefined,
    ]);
    const log = createLogger('test', 'silent');
    services = await openServices(
      loadConfig({}),
      {
        temporalAddress: temporal.address,
        databaseUrl: pg.url,
        // Without a redis-server binary the in-process store stands in (it cannot go down).
        redisUrl: hasRedisServer ? `redis://127.0.0.1:${redisPort}` : undefined,
      },
      log,
    );
    app = createApp({ ...services, metrics: createMetricsRegistry() });
  });

  afterAll(async () => {
    await services?.close();
    await Promise.allSettled([temporal?.stop(), pg?.stop()]);
    redis?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 200 with each dependency and its latency when all are up', async () => {
    const { status, body } = await health();
    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    for (const name of ['temporal', 'database', 'redis']) {
      expect(body.checks).toHaveProperty([name, 'ok'], true);
      expect(body.checks).toHaveProperty([name, 'latencyMs'], expect.any(Number));
    }
  });

  it('answers 503 naming Temporal while it is stopped, and 200 once it is back', async () => {
    await temporal.stop();
    const down = await health();
    expect(down.status).toBe(503);
    expect(down.body.down).toEqual(['temporal']);
    expect(down.body.error).toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('temporal'),
    });
    temporal = await startTemporal();
    await expect.poll(async () => (await health()).status, { timeout: 20_000, interval: 250 }).toBe(200);
  });

  it('answers 503 naming the database while it is stopped, and 200 once it is back', async () => {
    await pg.stop();
    const down = await health();
    expect(down.status).toBe(503);
    expect(down.body.down).toEqual(['database']);
    pg = await startPg();
    await expect.poll(async () => (await health()).status, { timeout: 20_000, interval: 250 }).toBe(200);
  });

  it.skipIf(!hasRedisServer)(
    'answers 503 naming Redis while it is stopped, and 200 once it is back',
    async () => {
      const running = redis as ReturnType<typeof spawn>;
      running.kill('SIGKILL');
      await new Promise((r) => running.once('exit', r));
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.body.down).toEqual(['redis']);
      redis = await startRedis(redisPort);
      await expect.poll(async () => (await health()).status, { timeout: 20_000, interval: 250 }).toBe(200);
    },
  );

  it('an api started while Temporal is down says what it lacks, and is ready once Temporal is back and a worker polls', async () => {
    await temporal.stop();
    const config = {
      ...services.config,
      PORT: 0,
      ADMIN_API_KEY: 'a'.repeat(40),
      TEMPORAL_TASK_QUEUE: 'order',
    };
    const api = await startApi({ ...services, config }); // does not wait for Temporal, nor fail
    const probe = async () => {
      const res = await fetch(`${api.url}/api/health`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      const down = await probe();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({
        status: 'unavailable',
        down: ['temporal'],
        notReady: ['namespace', 'host_worker', 'task_worker'],
      });
      expect(down.body.checks).toHaveProperty(
        ['namespace', 'error'],
        expect.stringMatching(/^cannot register namespace neurogrid yet: /),
      );

      temporal = await startTemporal();
      const notReady = await vi.waitFor(
        async () => {
          const r = await probe();
          expect(r.body.notReady).toEqual(['task_worker']);
          return r;
        },
        { timeout: 30_000, interval: 250 },
      );
      expect(notReady.status).toBe(503);
      expect(notReady.body.error).toEqual({
        code: 'unavailable',
        message: 'not ready: no worker polls task queue order: submitted tasks wait until one does',
      });

      const worker = await startWorker({ ...services, config });
      try {
        await expect.poll(async () => (await probe()).status, { timeout: 20_000, interval: 250 }).toBe(200);
      } finally {
        await worker.close();
      }
    } finally {
      await api.close();
    }
  }, 120_000);
});
