/** The demo's accounts, models, nodes and tasks, set up and watched through the REST API. */
import { readDevAdminKey } from '../api/auth/bootstrap.js';
import { NodeAgent } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import { isTerminal, TASK_STATUSES, type TaskStatus } from '../workflows/task-status.js';
import type { Call } from './demo-rest.js';
import { cleanups, DemoError, POLL_MS, sleep, statusLine } from './demo-support.js';

export const TEXT_MODEL = { name: 'demo-llm', version: '2', taskType: 'text_generation' } as const;
/** Prices of the demo models (minor units) and the client's starting balance. */
const DEMO_PRICES = { pricePerRequest: 5, pricePerInputToken: 1, pricePerOutputToken: 2 };
const DEMO_FUNDS = '1000000';
export const EMBED_MODEL = { name: 'demo-embed', version: '2', taskType: 'embedding' } as const;
export const NODES: Array<{ label: string; latencyMs: [number, number] }> = [
  { label: 'fast-1', latencyMs: [50, 150] },
  { label: 'fast-2', latencyMs: [50, 150] },
  { label: 'slow', latencyMs: [200, 300] },
];
/** Room for all 20 default tasks at once, so the demo shows throughput rather than queueing. */
const NODE_CAPACITY = 8;

export interface TaskView {
  id: string;
  status: TaskStatus;
  attempts: number;
  nodeId: string | null;
  failureReason: string | null;
  createdAt: string;
  completedAt: string | null;
  tokens: { held: string; price: string | null; reward: string | null; fee: string | null };
}

/** As the admin: this run's client and node owner, and the demo models unless they exist. */
export async function setUpAccounts(call: Call, dataDir: string, runId: string) {
  const adminKey = process.env.ADMIN_API_KEY || (await readDevAdminKey(dataDir));
  if (!adminKey) {
    throw new DemoError(`no admin key: set ADMIN_API_KEY, or DATA_DIR to the coordinator's data folder`);
  }
  const client = await call<{ apiKey: string; client: { id: string } }>(
    'create the client',
    adminKey,
    'POST /api/admin/clients',
    { body: { name: `demo-client-${runId}` } },
  );
  await call('top up the client', adminKey, 'POST /api/tokens/topup', {
    body: { clientId: client.client.id, amount: DEMO_FUNDS, note: 'demo funds' },
    headers: { 'Idempotency-Key': `demo-topup-${runId}` },
  });
  const owner = await call<{ apiKey: string }>(
    'create the node owner',
    adminKey,
    'POST /api/admin/node-owners',
    {
      body: { name: `demo-owner-${runId}` },
    },
  );
  console.log(`  accounts     client demo-client-${runId}, node owner demo-owner-${runId}`);
  for (const model of [TEXT_MODEL, EMBED_MODEL]) {
    await call(`create the model ${model.name}:${model.version}`, adminKey, 'POST /api/models', {
      body: { ...model, maxInputBytes: 10_000, maxOutputTokens: 256, ...DEMO_PRICES },
      ok: [201, 409], // 409: it exists already (an earlier run)
    });
  }
  console.log(
    `  models       ${TEXT_MODEL.name}:${TEXT_MODEL.version} (text_generation), ${EMBED_MODEL.name}:${EMBED_MODEL.version} (embedding)`,
  );
  return { clientKey: client.apiKey, ownerKey: owner.apiKey };
}

/** Register and connect the demo's nodes; resolves with node id → label once every hello is acked. */
export async function connectNodes(
  call: Call,
  apiUrl: string,
  ownerKey: string,
  runId: string,
): Promise<Map<string, string>> {
  const ids = await Promise.all(
    NODES.map(async ({ label, latencyMs }) => {
      const models = [TEXT_MODEL, EMBED_MODEL].map(({ name, version }) => ({ name, version }));
      const { node, nodeKey } = await call<{ node: { id: string }; nodeKey: string }>(
        `register node ${label}`,
        ownerKey,
        'POST /api/nodes/register',
        { body: { name: `demo-${label}-${runId}`, models, capacity: NODE_CAPACITY } },
      );
      const agent = new NodeAgent({
        coordinatorUrl: apiUrl,
        apiKey: nodeKey,
        models,
        capacity: NODE_CAPACITY,
        backend: simulatedBackend({ latencyMs }),
      });
      cleanups.push(() => agent.stop());
      await agent.start().catch((err: Error) => {
        throw new DemoError(`node ${label} could not connect: ${err.message}`);
      });
      return node.id;
    }),
  );
  return new Map(ids.map((id, i) => [id, NODES[i]?.label ?? id]));
}

/** Even tasks generate text, odd ones embed; the Idempotency-Key makes a retried submit the same task. */
export async function submitTask(call: Call, clientKey: string, runId: string, i: number): Promise<string> {
  const body =
    i % 2 === 0
      ? {
          model: TEXT_MODEL.name,
          input: { prompt: `Demo task ${i}: one line on durable workflows` },
          params: { maxTokens: 64 },
        }
      : { model: EMBED_MODEL.name, input: { texts: [`demo task ${i}`, 'distributed inference'] } };
  const { task } = await call<{ task: { id: string } }>(`submit task ${i}`, clientKey, 'POST /api/tasks', {
    body,
    headers: { 'Idempotency-Key': `demo-${runId}-${i}` },
    ok: [202],
    idempotent: true,
  });
  return task.id;
}

/** Poll the client's task list until every task is finished or `timeoutMs` passed, showing progress. */
export async function watch(
  call: Call,
  clientKey: string,
  ids: string[],
  timeoutMs: number,
): Promise<Map<string, TaskView>> {
  const wanted = new Set(ids);
  const seen = new Map<string, TaskView>();
  const line = statusLine();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      let cursor: string | null = null;
      do {
        const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const page: { tasks: TaskView[]; nextCursor: string | null } = await call(
          'list the tasks',
          clientKey,
          `GET /api/tasks?limit=100${query}`,
        );
        for (const t of page.tasks) if (wanted.has(t.id)) seen.set(t.id, t);
        cursor = page.nextCursor;
      } while (cursor);
      const text = progress(ids.map((id) => seen.get(id)?.status ?? 'queued'));
      line.update(text);
      if (ids.every((id) => isTerminal(seen.get(id)?.status ?? 'queued')) || Date.now() > deadline)
        return seen;
      await sleep(POLL_MS);
    }
  } finally {
    line.done();
  }
}

/** `  [######--------] 12/20  queued 2 · assigned 1 · running 5 · verifying 0 · completed 12 · …` */
function progress(statuses: TaskStatus[]): string {
  const count = (s: TaskStatus) => statuses.filter((x) => x === s).length;
  const done = statuses.filter(isTerminal).length;
  const width = 20;
  const filled = Math.round((done / statuses.length) * width);
  const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
  return `  [${bar}] ${done}/${statuses.length}  ${TASK_STATUSES.map((s) => `${s} ${count(s)}`).join(' · ')}`;
}
