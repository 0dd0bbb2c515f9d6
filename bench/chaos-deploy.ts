/**
 * The deployment the chaos run kills parts of: the Temporal dev server, a fresh PostgreSQL database,
 * 2 api processes and 2 workers, then accounts, a model and 4 node agents set up as an operator would.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Connection } from '@temporalio/client';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createPrisma } from '../lib/db/client.js';
import { locateTemporalCli } from '../lib/temporal/cli.js';
import { seed } from '../tests/helpers/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../tests/helpers/database.js';
import { freePort } from '../tests/helpers/ports.js';
import {
  apiComponent,
  type Cluster,
  type Component,
  nodeComponent,
  startWithRetries,
  temporalComponent,
  workerComponent,
} from './chaos-cluster.js';
import type { Clients } from './chaos-load.js';
import { MODEL, NAMESPACE, type Options, SETTINGS, type Setting } from './chaos-options.js';
import { progress } from './measure.js';

/** What the run must release at the end, filled in as it is acquired (so a failed start releases it too). */
export interface Held {
  db?: TestDatabase;
  prisma?: PrismaClient;
  connection?: Connection;
}

/** Starts Temporal, creates the database, and starts the workers and api processes. */
export async function startServices(
  opts: Options,
  cluster: Cluster,
  dir: string,
  redisUrl: string,
  held: Held,
) {
  const cli = await locateTemporalCli({ log: (line) => progress(`[setup] ${line}`) });
  const temporal = cluster.add(
    temporalComponent({
      cliPath: cli.path,
      namespace: NAMESPACE,
      port: await freePort(),
      dbFile: path.join(dir, 'temporal.sqlite'),
    }),
  ) as ReturnType<typeof temporalComponent>;
  progress(`starting the Temporal dev server (SQLite) on ${temporal.address}`);
  await temporal.start();
  progress('creating a fresh PostgreSQL database');
  const db = await createTestDatabase({ migrated: true, backend: 'postgres' });
  held.db = db;
  const prisma = createPrisma(db.url, { max: 4 });
  held.prisma = prisma;

  const run = randomBytes(4).toString('hex');
  const adminKey = `chaos-admin-${randomBytes(24).toString('hex')}`;
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    DATA_DIR: path.join(dir, 'data'),
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: NAMESPACE,
    TEMPORAL_TASK_QUEUE: `chaos-${run}`,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: `chaos${run}:`,
    ADMIN_API_KEY: adminKey,
    // The load generator is one client: the per-key and per-address limits would only throttle it.
    RATE_LIMIT_PER_MINUTE: '100000000',
    RATE_LIMIT_IP_PER_MINUTE: '100000000',
    ...Object.fromEntries(
      Object.entries(SETTINGS).map(([flag, s]) => [s.env, String(opts[flag as Setting])]),
    ),
  };

  const apiUrls: string[] = [];
  const apis: Component[] = [];
  for (let i = 1; i <= 2; i++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    apiUrls.push(url);
    const apiEnv = { ...env, PORT: String(port), HOST_ID: `chaos-api-${i}` };
    apis.push(cluster.add(apiComponent(cluster, `api-${i}`, apiEnv, url)));
  }
  const workers = [1, 2].map((i) => cluster.add(workerComponent(cluster, `worker-${i}`, env)));
  progress('starting 2 workers and 2 api processes');
  await Promise.all([...workers, ...apis].map((c) => startWithRetries(c, progress, () => cluster.stopping)));
  return { temporal, prisma, run, adminKey, apiUrls };
}

/** Accounts, model, nodes (through the admin API, as an operator would), then the node agents. */
export async function seedAndStartNodes(
  opts: Options,
  cluster: Cluster,
  apiUrls: string[],
  adminKey: string,
): Promise<{ clients: Clients; nodeIds: string[] }> {
  const s = await seed(apiUrls[0] as string, adminKey);
  const model = await s.admin.post('/api/models', {
    ...MODEL,
    taskType: 'text_generation',
    maxInputBytes: 10_000,
    maxOutputTokens: 256,
    pricePerRequest: 5,
    pricePerInputToken: 1,
    pricePerOutputToken: 2,
  });
  if (model.status !== 201) throw new Error(`model: ${model.status} ${JSON.stringify(model.body)}`);
  // Two paying clients: seed()'s first tenant, and one of our own (seed() keeps its second key to itself).
  const second = await s.admin.post('/api/admin/clients', { name: 'Chaos tenant' });
  if (second.status !== 201) throw new Error(`client: ${second.status} ${JSON.stringify(second.body)}`);
  const clients = {
    A: { id: s.clientAId, key: s.clientAKey },
    B: { id: second.body.client.id as string, key: second.body.apiKey as string },
  };
  const topup = await s.admin.post(
    '/api/tokens/topup',
    { clientId: clients.B.id, amount: '1000000', note: 'chaos funds' },
    { 'Idempotency-Key': `chaos-${clients.B.id}` },
  );
  if (topup.status !== 201) throw new Error(`top-up: ${topup.status} ${JSON.stringify(topup.body)}`);

  const nodeIds: string[] = [];
  const nodes: Component[] = [];
  for (let i = 1; i <= 4; i++) {
    const r = await s.ownerApi.post('/api/nodes/register', {
      name: `chaos-node-${i}`,
      models: [MODEL],
      capacity: opts['node-capacity'],
    });
    if (r.status !== 201) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
    nodeIds.push(r.body.node.id);
    const apiUrl = apiUrls[(i - 1) % 2] as string;
    const args = [
      '--coordinator',
      apiUrl,
      '--backend',
      'simulated',
      '--models',
      `${MODEL.name}:${MODEL.version}`,
      '--concurrency',
      String(opts['node-capacity']),
      '--sim-latency-ms',
      opts.simLatency,
      '--log-level',
      'info',
    ];
    nodes.push(
      cluster.add(nodeComponent(cluster, `node-${i}`, args, { NEUROGRID_NODE_KEY: r.body.nodeKey })),
    );
  }
  progress(`starting 4 node agents (capacity ${opts['node-capacity']}, latency ${opts.simLatency} ms)`);
  await Promise.all(nodes.map((c) => startWithRetries(c, progress, () => cluster.stopping)));
  return { clients, nodeIds };
}
