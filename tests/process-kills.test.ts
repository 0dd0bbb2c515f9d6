import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma } from '../lib/db/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import type { NodeAgent } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import {
  MODEL,
  seed,
  spawnApi,
  spawnWorker,
  startNode,
  type TestEnvironment,
  testEnvironment,
  waitForStatus,
} from './helpers/coordinator.js';
import { freePort } from './helpers/ports.js';
import type { Spawned } from './helpers/processes.js';

// The api and the worker as separate processes, killed with SIGKILL mid-task. They share presence
// through Redis, so this needs REDIS_URL (CI sets it; the in-process store cannot span processes).
describe.skipIf(!process.env.REDIS_URL)('processes killed mid-task', () => {
  let env: TestEnvironment;
  const procs: Spawned[] = [];
  const agents: NodeAgent[] = [];

  beforeAll(async () => {
    env = await testEnvironment({ TASK_RESULT_TIMEOUT_MS: '30000', TASK_ACCEPT_TIMEOUT_MS: '10000' });
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  const track = <T extends Spawned>(p: T) => {
    procs.push(p);
    return p;
  };

  it('completes a task whose worker was killed while it waited for its node, once a worker is back', async () => {
    const environment: Record<string, string> = { ...env.env, PORT: String(await freePort()) };
    const api = await spawnApi(environment);
    track(api.proc);
    const worker = track(await spawnWorker(environment));
    const s = await seed(api.url, environment.ADMIN_API_KEY as string);
    const { key } = await s.registerNode('slow-node');
    const agent = await startNode(api.url, key, { backend: simulatedBackend({ latencyMs: 2_500 }) });
    agents.push(agent);

    const r = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'survive' } });
    expect(r.status).toBe(202);
    await new Promise<void>((resolve) => agent.once('accepted', () => resolve()));
    await worker.kill('SIGKILL');
    // The node finishes while no worker runs: its result signal waits in Temporal.
    await new Promise<void>((resolve) => agent.once('completed', () => resolve()));
    // No worker, so nothing has processed the accept or the result yet.
    expect(['assigned', 'running']).toContain(
      (await s.clientA.get(`/api/tasks/${r.body.task.id}`)).body.task.status,
    );

    track(await spawnWorker(environment));
    const task = await waitForStatus(s.clientA, r.body.task.id, ['completed', 'failed'], 60_000);
    expect(task.status).toBe('completed');
    expect(task.attemptHistory).toHaveLength(1);
  });

  it('completes a task whose node’s api process was killed: the agent reconnects to the restarted api', async () => {
    const environment: Record<string, string> = { ...env.env, PORT: String(await freePort()) };
    const first = await spawnApi(environment);
    track(first.proc);
    track(await spawnWorker(environment));
    const s = await seed(first.url, environment.ADMIN_API_KEY as string);
    const { key } = await s.registerNode('reconnecting-node');
    const agent = await startNode(first.url, key, { backend: simulatedBackend({ latencyMs: 3_000 }) });
    agents.push(agent);

    const r = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'reconnect' } });
    expect(r.status).toBe(202);
    await new Promise<void>((resolve) => agent.once('accepted', () => resolve()));
    await first.proc.kill('SIGKILL');

    const reconnected = new Promise<void>((resolve) => agent.once('connected', () => resolve()));
    const second = await spawnApi(environment);
    track(second.proc);
    await reconnected;
    const task = await waitForStatus(s.clientA, r.body.task.id, ['completed', 'failed'], 60_000);
    expect(task.status, JSON.stringify(task)).toBe('completed');
    expect(agent.stats.reconnects).toBeGreaterThan(0);
  });

  it('pays once when the worker dies between the settlement posting and the activity’s completion', async () => {
    const environment: Record<string, string> = { ...env.env, PORT: String(await freePort()) };
    const api = await spawnApi(environment);
    track(api.proc);
    const doomed = track(await spawnWorker({ ...environment, NEUROGRID_FAULTS: 'after-settlement-posting' }));
    const s = await seed(api.url, environment.ADMIN_API_KEY as string);
    const { nodeId, key } = await s.registerNode('paid-across-a-crash');
    agents.push(await startNode(api.url, key));

    const r = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'settle me' } });
    expect(r.status).toBe(202);
    // The worker posts the capture, then dies before reporting the activity done.
    expect(await doomed.exited).toBeNull();
    const prisma = createPrisma(environment.DATABASE_URL as string);
    try {
      const ledger = createLedger(prisma);
      const posted = await ledger.findTransaction(`task:${r.body.task.id}:settle`);
      expect(posted?.type).toBe('capture');
      const paid = (await ledger.balance({ kind: 'node', ownerId: nodeId })).available;
      expect(paid).toBeGreaterThan(0n);

      track(await spawnWorker(environment)); // the activity runs again on the new worker
      const task = await waitForStatus(s.clientA, r.body.task.id, ['completed', 'failed'], 60_000);
      expect(task.status).toBe('completed');
      expect(task.tokens.reward).toBe(paid.toString());
      expect((await ledger.balance({ kind: 'node', ownerId: nodeId })).available).toBe(paid);
      expect(await ledger.verify()).toEqual({ ok: true, problems: [] });
    } finally {
      await prisma.$disconnect();
    }
  });
});
