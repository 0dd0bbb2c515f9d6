import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, inject } from 'vitest';
import { type RunningApi, startApi } from '../../api/api.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { openServices, type Services } from '../../lib/services.js';
import { NodeAgent, type NodeAgentOptions } from '../../node-agent/agent.js';
import { simulatedBackend } from '../../node-agent/backends/simulated.js';
import { type RunningWorker, startWorker } from '../../worker/worker.js';
import { createTestDatabase } from './database.js';
import { type Spawned, spawnEntry } from './processes.js';

export const MODEL = { name: 'llama-test', version: '1' } as const;
export const EMBEDDING_MODEL = { name: 'embed-test', version: '1' } as const;

const rand = () => randomBytes(5).toString('hex');

/**
 * The environment of one isolated coordinator: its own database, Redis key prefix and task queue on the
 * run's shared Temporal dev server. Short deadlines so failure paths finish in seconds.
 */
export async function testEnvironment(overrides: Record<string, string> = {}) {
  const db = await createTestDatabase({ migrated: true });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ng-coord-'));
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PORT: '0',
    DATA_DIR: dataDir,
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_NAMESPACE: inject('temporalNamespace'),
    TEMPORAL_TASK_QUEUE: `tq-${rand()}`,
    DATABASE_URL: db.url,
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    REDIS_KEY_PREFIX: `t${rand()}:`,
    ADMIN_API_KEY: `admin-${randomBytes(24).toString('hex')}`,
    TASK_ACCEPT_TIMEOUT_MS: '3000',
    TASK_RESULT_TIMEOUT_MS: '5000',
    TASK_QUEUE_TIMEOUT_MS: '20000',
    TASK_NO_NODE_RETRY_MS: '300',
    TASK_MAX_ATTEMPTS: '3',
    TASK_START_TIMEOUT_MS: '2000',
    TASK_STRANDED_GRACE_MS: '4000',
    REAPER_INTERVAL_MS: '1000',
    NODE_HEARTBEAT_INTERVAL_MS: '500',
    NODE_PRESENCE_TTL_MS: '3000',
    ...overrides,
  };
  return {
    env,
    db,
    async cleanup() {
      await db.drop().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export type TestEnvironment = Awaited<ReturnType<typeof testEnvironment>>;

/** An API client speaking the documented REST API, as any outside client would. */
export function apiClient(baseUrl: string, key?: string) {
  async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${baseUrl}${url}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: test responses are asserted field by field
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    return { status: res.status, body: json, headers: res.headers };
  }
  return {
    get: (url: string) => call('GET', url),
    post: (url: string, body?: unknown, headers?: Record<string, string>) => call('POST', url, body, headers),
    patch: (url: string, body?: unknown) => call('PATCH', url, body),
  };
}
export type ApiClient = ReturnType<typeof apiClient>;

/** Accounts and a model catalog set up through the admin API. */
export async function seed(baseUrl: string, adminKey: string) {
  const admin = apiClient(baseUrl, adminKey);
  const created = await Promise.all([
    admin.post('/api/admin/clients', { name: 'Tenant A' }),
    admin.post('/api/admin/clients', { name: 'Tenant B' }),
    admin.post('/api/admin/node-owners', { name: 'GPU owner' }),
    admin.post('/api/models', {
      ...MODEL,
      taskType: 'text_generation',
      maxInputBytes: 10_000,
      maxOutputTokens: 512,
      pricePerRequest: 10,
    }),
    admin.post('/api/models', {
      ...EMBEDDING_MODEL,
      taskType: 'embedding',
      maxInputBytes: 10_000,
      maxOutputTokens: 1,
    }),
  ]);
  // Models are shared by every seed on one database; a second seed finds them (409).
  for (const [i, r] of created.entries()) {
    if (r.status !== 201 && !(i >= 3 && r.status === 409)) {
      throw new Error(`seed failed: ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
  const [a, b, owner] = created;
  // Every client starts with tokens to spend (tasks hold their price cap at admission).
  for (const c of [a, b]) {
    const topup = await admin.post(
      '/api/tokens/topup',
      { clientId: c?.body.client.id, amount: '1000000', note: 'test funds' },
      { 'Idempotency-Key': `seed-${c?.body.client.id}` },
    );
    if (topup.status !== 201) throw new Error(`top-up failed: ${topup.status} ${JSON.stringify(topup.body)}`);
  }
  const clientA = apiClient(baseUrl, a?.body.apiKey);
  const clientB = apiClient(baseUrl, b?.body.apiKey);
  const ownerApi = apiClient(baseUrl, owner?.body.apiKey);

  /** Register a node for the test models and return its id and key. */
  async function registerNode(name: string, capacity = 2) {
    const r = await ownerApi.post('/api/nodes/register', {
      name,
      models: [MODEL, EMBEDDING_MODEL],
      capacity,
    });
    if (r.status !== 201) throw new Error(`register failed: ${r.status} ${JSON.stringify(r.body)}`);
    return { nodeId: r.body.node.id as string, key: r.body.nodeKey as string };
  }
  return {
    admin,
    clientA,
    clientB,
    ownerApi,
    clientAId: a?.body.client.id as string,
    clientAKey: a?.body.apiKey as string,
    clientBId: b?.body.client.id as string,
    registerNode,
  };
}

/** A simulated node running the real node agent against the coordinator. */
export async function startNode(
  baseUrl: string,
  key: string,
  options: Partial<NodeAgentOptions> = {},
): Promise<NodeAgent> {
  const agent = new NodeAgent({
    coordinatorUrl: baseUrl,
    apiKey: key,
    models: [MODEL, EMBEDDING_MODEL],
    capacity: 2,
    backend: simulatedBackend({ latencyMs: 20 }),
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
    ...options,
  });
  await agent.start();
  return agent;
}

/** api + worker in this process (fast; the kill tests use {@link spawnCoordinator} instead). */
export async function startInProcess(env: Record<string, string>) {
  const config = loadConfig(env);
  const log = createLogger('test', config.LOG_LEVEL);
  const services: Services = await openServices(
    config,
    {
      temporalAddress: config.TEMPORAL_ADDRESS as string,
      databaseUrl: config.DATABASE_URL as string,
      redisUrl: config.REDIS_URL,
    },
    log,
  );
  const worker: RunningWorker = await startWorker(services);
  const api: RunningApi = await startApi(services);
  return {
    url: api.url,
    services,
    async close() {
      await api.close();
      await worker.close();
      await services.close();
    },
  };
}

/** The api and the worker as separate child processes, as operators run them; tests kill them. */
export async function spawnApi(env: Record<string, string>): Promise<{ proc: Spawned; url: string }> {
  const proc = spawnEntry('api/main.ts', { ...env, LOG_LEVEL: 'info' });
  const line = await proc.waitFor((l) => l.includes('"api listening"'), 90_000);
  return { proc, url: JSON.parse(line).url as string };
}

export async function spawnWorker(env: Record<string, string>): Promise<Spawned> {
  const proc = spawnEntry('worker/main.ts', { ...env, LOG_LEVEL: 'info' });
  await proc.waitFor((l) => l.includes('"worker running"'), 90_000);
  return proc;
}

/** Wait until `check` returns a value that is not undefined (polling; no fixed sleeps). */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  what = 'condition',
) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** Poll `GET /api/tasks/:id` until the task reaches one of `statuses`. */
export function waitForStatus(client: ApiClient, taskId: string, statuses: string[], timeoutMs = 30_000) {
  return eventually(
    async () => {
      const r = await client.get(`/api/tasks/${taskId}`);
      return statuses.includes(r.body?.task?.status) ? r.body.task : undefined;
    },
    timeoutMs,
    `task ${taskId} to be ${statuses.join('|')}`,
  );
}

export interface CoordinatorSuite {
  env: TestEnvironment;
  coordinator: Awaited<ReturnType<typeof startInProcess>>;
  s: Awaited<ReturnType<typeof seed>>;
  /** A Temporal client on the run's dev server, to inspect workflows as an operator would. */
  temporal: Client;
  /** Register a node and connect a simulated agent for it; stopped after each test. */
  node(
    name: string,
    options?: Partial<NodeAgentOptions>,
  ): Promise<{ nodeId: string; key: string; agent: NodeAgent }>;
}

/**
 * Hooks for a file of end-to-end tests: an in-process coordinator on its own database, seeded
 * accounts and models, and simulated nodes that are stopped after every test.
 */
export function useCoordinator(overrides: Record<string, string> = {}): CoordinatorSuite {
  const agents: NodeAgent[] = [];
  let connection: Connection | undefined;
  const suite = {
    async node(name: string, options: Partial<NodeAgentOptions> = {}) {
      const { nodeId, key } = await suite.s.registerNode(name);
      const agent = await startNode(suite.coordinator.url, key, options);
      agents.push(agent);
      return { nodeId, key, agent };
    },
  } as CoordinatorSuite;

  beforeAll(async () => {
    suite.env = await testEnvironment(overrides);
    suite.coordinator = await startInProcess(suite.env.env);
    suite.s = await seed(suite.coordinator.url, suite.env.env.ADMIN_API_KEY as string);
    connection = await Connection.connect({ address: inject('temporalAddress') });
    suite.temporal = new Client({ connection, namespace: inject('temporalNamespace') });
  });
  afterEach(async () => {
    // Tasks a test leaves running would be assigned to the next test's nodes: cancel them first.
    const open = await suite.coordinator.services.prisma.task.findMany({
      where: { status: { notIn: ['completed', 'failed', 'cancelled'] } },
      select: { id: true },
    });
    await Promise.all(
      open.map(async ({ id }) => {
        const handle = suite.temporal.workflow.getHandle(id);
        await handle.cancel().catch(() => undefined);
        await handle.result().catch(() => undefined);
      }),
    );
    await Promise.all(agents.splice(0).map((a) => a.stop()));
  });
  afterAll(async () => {
    await suite.coordinator?.close();
    await connection?.close();
    await suite.env?.cleanup();
  });
  return suite;
}
