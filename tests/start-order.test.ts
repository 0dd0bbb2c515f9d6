import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NodeAgent } from '../node-agent/agent.js';
import {
  eventually,
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

// The api and the worker may start in either order. Here the api comes first, on a namespace nobody
// has registered yet (as on a real cluster started without our flags): it registers the namespace
// and the search attributes itself, says it is not ready while no worker polls, accepts a task that
// then waits, and is ready, with the task completed, once a worker starts.
describe.skipIf(!process.env.REDIS_URL)('api started before any worker', () => {
  let env: TestEnvironment;
  const procs: Spawned[] = [];
  const agents: NodeAgent[] = [];

  beforeAll(async () => {
    env = await testEnvironment({ TEMPORAL_NAMESPACE: `order-${randomBytes(4).toString('hex')}` });
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it('is not ready until a worker polls, accepts a task meanwhile, and completes it once one does', async () => {
    const environment: Record<string, string> = { ...env.env, PORT: String(await freePort()) };
    const api = await spawnApi(environment);
    procs.push(api.proc);
    const health = async () => {
      const res = await fetch(`${api.url}/api/health`);
      return { status: res.status, body: (await res.json()) as { checks: Record<string, unknown> } };
    };

    const waiting = await health();
    expect(waiting.status).toBe(503);
    expect(waiting.body).toMatchObject({
      status: 'not_ready',
      notReady: ['task_worker'],
      error: {
        code: 'unavailable',
        message: `not ready: no worker polls task queue ${env.env.TEMPORAL_TASK_QUEUE}: submitted tasks wait until one does`,
      },
    });
    for (const name of ['temporal', 'database', 'redis', 'host_lease', 'namespace', 'host_worker']) {
      expect(waiting.body.checks[name], name).toMatchObject({ ok: true });
    }

    const s = await seed(api.url, environment.ADMIN_API_KEY as string);
    const { key } = await s.registerNode('early-node');
    agents.push(await startNode(api.url, key));
    // The api registered the search attributes, so the workflow starts; no worker runs it yet.
    const r = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'early' } });
    expect(r.status).toBe(202);
    expect((await s.clientA.get(`/api/tasks/${r.body.task.id}`)).body.task.status).toBe('queued');

    procs.push(await spawnWorker(environment));
    await eventually(async () => ((await health()).status === 200 ? true : undefined), 20_000, 'health 200');
    const task = await waitForStatus(s.clientA, r.body.task.id, ['completed', 'failed'], 30_000);
    expect(task.status).toBe('completed');
  });
});
