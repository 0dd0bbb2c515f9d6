import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../lib/redis/index.js';
import type { NodeAgent } from '../node-agent/agent.js';
import {
  apiClient,
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

// Node presence follows the api process holding the socket: each api holds a lease in Redis, and a
// killed one's nodes stop being online within the lease TTL even though their own presence entries
// (NODE_PRESENCE_TTL_MS, long here) would keep them online for much longer.
describe.skipIf(!process.env.REDIS_URL)('host leases across api processes', () => {
  const LEASE_MS = 2_000;
  /** The documented bound for the node row: the TTL, one renewal interval of the surviving api, slack. */
  const ROW_BOUND_MS = LEASE_MS + LEASE_MS / 3 + 1_000;
  let env: TestEnvironment;
  const procs: Spawned[] = [];
  const agents: NodeAgent[] = [];

  beforeAll(async () => {
    env = await testEnvironment({
      NODE_PRESENCE_TTL_MS: '60000',
      NODE_HEARTBEAT_INTERVAL_MS: '1000',
      HOST_LEASE_TTL_MS: String(LEASE_MS),
    });
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  const api = async (hostId: string, extra: Record<string, string> = {}) => {
    const started = await spawnApi({ ...env.env, ...extra, HOST_ID: hostId, PORT: String(await freePort()) });
    procs.push(started.proc);
    return started;
  };
  const node = async (s: Awaited<ReturnType<typeof seed>>, name: string, url: string) => {
    const { nodeId, key } = await s.registerNode(name);
    const agent = await startNode(url, key);
    agents.push(agent);
    return nodeId;
  };
  const view = async (url: string, nodeId: string) =>
    (await apiClient(url, env.env.ADMIN_API_KEY).get(`/api/nodes/${nodeId}`)).body.node as {
      online: boolean;
      status: string;
    };

  it('a killed api’s node is offline within the lease TTL, and new tasks go to the other api’s node with no lost attempt', async () => {
    const a = await api('lease-a');
    const b = await api('lease-b');
    procs.push(await spawnWorker(env.env));
    const s = await seed(b.url, env.env.ADMIN_API_KEY as string);
    const onA = await node(s, 'held-by-a', a.url);
    const onB = await node(s, 'held-by-b', b.url);
    for (const id of [onA, onB]) {
      await eventually(
        async () => ((await view(b.url, id)).online ? true : undefined),
        10_000,
        `${id} online`,
      );
    }

    await a.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(
      async () => ((await view(b.url, onA)).online ? undefined : true),
      10_000,
      'the killed api’s node to be shown offline',
    );
    const offlineAfter = Date.now() - killedAt;
    expect(offlineAfter).toBeLessThan(LEASE_MS + 1_000);
    await eventually(
      async () => ((await view(b.url, onA)).status === 'offline' ? true : undefined),
      10_000,
      'its row to say offline',
    );
    expect(Date.now() - killedAt).toBeLessThan(ROW_BOUND_MS);
    expect(await view(b.url, onB)).toMatchObject({ online: true, status: 'online' });

    // Two tasks: with the dead node still selectable, the second would go to it (the other is busy).
    const client = s.clientA; // seeded through b
    const submitted = await Promise.all(
      ['one', 'two'].map((prompt) => client.post('/api/tasks', { model: MODEL.name, input: { prompt } })),
    );
    for (const r of submitted) {
      expect(r.status).toBe(202);
      const task = await waitForStatus(client, r.body.task.id, ['completed', 'failed'], 30_000);
      expect(task.status).toBe('completed');
      expect(
        task.attemptHistory.map((x: { nodeId: string; outcome: string }) => [x.nodeId, x.outcome]),
      ).toEqual([[onB, 'completed']]);
    }
  });

  it('a restarted api with the same HOST_ID clears its previous life’s nodes before accepting sockets, and drops its lease on shutdown', async () => {
    // A lease far longer than the restart: only the restarted api itself can clear what was left.
    const longLease = { HOST_LEASE_TTL_MS: '60000' };
    const first = await api('lease-r', longLease);
    const s = await seed(first.url, env.env.ADMIN_API_KEY as string);
    const nodeId = await node(s, 'left-behind', first.url);
    await eventually(
      async () => ((await view(first.url, nodeId)).online ? true : undefined),
      10_000,
      'online',
    );

    await first.proc.kill('SIGKILL');
    // Another port, so the node's agent (still dialling the old address) cannot come back meanwhile.
    const second = await api('lease-r', longLease);
    expect(second.proc.lines.some((l) => l.includes('cleared the nodes a previous process left'))).toBe(true);
    expect(await view(second.url, nodeId)).toMatchObject({ online: false, status: 'offline' });

    const store = createRedisStore(env.env.REDIS_URL as string, { keyPrefix: env.env.REDIS_KEY_PREFIX });
    try {
      expect(await store.presence.get(nodeId)).toBeNull();
      await second.proc.kill('SIGTERM');
      expect(await second.proc.exited).toBe(0);
      // The lease was dropped on the way out: renewing it now is a first take.
      expect(await store.presence.renewHost('lease-r', 1_000)).toBe(false);
    } finally {
      await store.close();
    }
  });
});
