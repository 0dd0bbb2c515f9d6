import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeWrites } from '../lib/nodes/flush.js';
import { type HeartbeatRecord, recordHeartbeat } from '../lib/nodes/heartbeat.js';
import { startTestApi, TEST_ADMIN_KEY, type TestApi } from './helpers/api.js';

const UNKNOWN_ID = '7b0f3c52-4a55-4e4c-9d7e-3f2a5d1c0b9e';
const NODE_NOT_FOUND = { error: { code: 'not_found', message: 'node not found' } };

describe('nodes API', () => {
  let api: TestApi;
  let ownerA: { id: string; key: string };
  let ownerB: { id: string; key: string };
  let clientKey: string;
  /** Owner A's first node and its key, registered in the first test that needs it. */
  let nodeA: { id: string; key: string };
  let nodeB: { id: string; key: string };

  const admin = (method: string, path: string, body?: unknown) =>
    api.call(method, path, { key: TEST_ADMIN_KEY, ...(body === undefined ? {} : { body }) });
  const newOwner = async (name: string) => {
    const res = await admin('POST', '/api/admin/node-owners', { name });
    return { id: res.body.nodeOwner.id as string, key: res.body.apiKey as string };
  };
  const register = (key: string, body: unknown) => api.call('POST', '/api/nodes/register', { key, body });
  const rowCounts = async () => ({
    nodes: await api.services.prisma.node.count(),
    nodeModels: await api.services.prisma.nodeModel.count(),
    keys: await api.services.prisma.apiKey.count(),
  });
  /** The node's stored samples, after writing what heartbeats queued (this app runs no flusher). */
  const samples = async (nodeId: string) => {
    await nodeWrites(api.services).flush();
    return api.services.prisma.nodeMetricSample.count({ where: { nodeId } });
  };

  beforeAll(async () => {
    api = await startTestApi();
    for (const [name, version] of [
      ['llama', '3.1-8b'],
      ['bge', 'small'],
    ]) {
      const res = await admin('POST', '/api/models', {
        name,
        version,
        taskType: 'text_generation',
        maxInputBytes: 1_000,
        maxOutputTokens: 100,
      });
      expect(res.status).toBe(201);
    }
    ownerA = await newOwner('A');
    ownerB = await newOwner('B');
    clientKey = (await admin('POST', '/api/admin/clients', { name: 'C' })).body.apiKey;
  });
  afterAll(async () => {
    await api?.close();
  });

  it('answers 422 naming models missing from the catalog, creating nothing', async () => {
    const before = await rowCounts();
    const res = await register(ownerA.key, {
      name: 'gpu-1',
      capacity: 2,
      models: [
        { name: 'llama', version: '3.1-8b' },
        { name: 'nope', version: '1' },
        { name: 'llama', version: '9' },
      ],
    });
    expect(res.status).toBe(422);
    expect(res.body).toEqual({
      error: {
        code: 'validation_failed',
        message: 'unknown model(s), not in the catalog: nope 1, llama 9',
        details: {
          unknownModels: [
            { name: 'nope', version: '1' },
            { name: 'llama', version: '9' },
          ],
        },
      },
    });
    expect(await rowCounts()).toEqual(before);
  });

  it('refuses malformed registrations with 400 and non-owners with 403', async () => {
    const before = await rowCounts();
    const base = { name: 'gpu', capacity: 1, models: [{ name: 'llama', version: '3.1-8b' }] };
    const cases: [unknown, string][] = [
      [{ ...base, models: [] }, 'models: Too small: expected array to have >=1 items'],
      [{ ...base, capacity: 0 }, 'capacity: Too small: expected number to be >=1'],
      [{ ...base, capacity: 1_025 }, 'capacity: Too big: expected number to be <=1024'],
      [{ ...base, ownerId: ownerB.id }, 'Unrecognized key: "ownerId"'],
    ];
    for (const [body, message] of cases) {
      const res = await register(ownerA.key, body);
      expect([res.status, res.body.error.code, res.body.error.message]).toEqual([
        400,
        'validation_failed',
        message,
      ]);
    }
    for (const key of [clientKey, TEST_ADMIN_KEY]) {
      const res = await register(key, base);
      expect(res.status).toBe(403);
      expect(res.body).toEqual({
        error: { code: 'forbidden', message: 'this endpoint requires the node_owner role' },
      });
    }
    expect(await rowCounts()).toEqual(before);
  });

  it('registers a node with its models and a node key, in one go', async () => {
    const res = await register(ownerA.key, {
      name: 'gpu-1',
      capacity: 4,
      hardware: { gpus: [{ model: 'A100', memoryMb: 81_920 }] },
      models: [
        { name: 'llama', version: '3.1-8b' },
        { name: 'bge', version: 'small' },
        { name: 'llama', version: '3.1-8b' },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      node: {
        id: expect.any(String),
        ownerId: ownerA.id,
        name: 'gpu-1',
        capacity: 4,
        hardware: { gpus: [{ model: 'A100', memoryMb: 81_920 }] },
        status: 'registered',
        models: expect.arrayContaining([
          { name: 'llama', version: '3.1-8b' },
          { name: 'bge', version: 'small' },
        ]),
        online: false,
        heartbeat: null,
        lastSeenAt: null,
        createdAt: expect.any(String),
      },
      nodeKey: expect.stringMatching(/^ngk_/),
      keyId: expect.any(String),
    });
    expect(res.body.node.models).toHaveLength(2);
    nodeA = { id: res.body.node.id, key: res.body.nodeKey };
    const key = await api.services.prisma.apiKey.findFirstOrThrow({ where: { nodeId: nodeA.id } });
    expect(key).toMatchObject({ id: res.body.keyId, role: 'node', nodeOwnerId: ownerA.id, revokedAt: null });

    const other = await register(ownerB.key, {
      name: 'b-1',
      capacity: 1,
      models: [{ name: 'bge', version: 'small' }],
    });
    expect(other.status).toBe(201);
    nodeB = { id: other.body.node.id, key: other.body.nodeKey };
  });

  it('shows each owner only its own nodes, a node only itself, an admin all', async () => {
    const ids = async (key: string) =>
      (await api.call('GET', '/api/nodes', { key })).body.nodes.map((n: { id: string }) => n.id);
    expect(await ids(ownerA.key)).toEqual([nodeA.id]);
    expect(await ids(ownerB.key)).toEqual([nodeB.id]);
    expect(await ids(nodeA.key)).toEqual([nodeA.id]);
    expect(await ids(TEST_ADMIN_KEY)).toEqual([nodeA.id, nodeB.id]);
  });

  it("answers 404 for another owner's node, an unknown id and a malformed id", async () => {
    for (const [key, id] of [
      [ownerA.key, nodeB.id],
      [nodeA.key, nodeB.id],
      [ownerA.key, UNKNOWN_ID],
      [ownerA.key, 'not-a-uuid'],
    ] as const) {
      for (const path of [`/api/nodes/${id}`, `/api/nodes/${id}/metrics`]) {
        const res = await api.call('GET', path, { key });
        expect([path, res.status, res.body]).toEqual([path, 404, NODE_NOT_FOUND]);
      }
    }
    const own = await api.call('GET', `/api/nodes/${nodeA.id}`, { key: ownerA.key });
    expect([own.status, own.body.node.id]).toEqual([200, nodeA.id]);
    const byAdmin = await api.call('GET', `/api/nodes/${nodeB.id}`, { key: TEST_ADMIN_KEY });
    expect(byAdmin.status).toBe(200);
  });

  it('paginates the node list', async () => {
    const extra = await register(ownerA.key, {
      name: 'gpu-2',
      capacity: 1,
      models: [{ name: 'bge', version: 'small' }],
    });
    const first = await api.call('GET', '/api/nodes?limit=1', { key: ownerA.key });
    expect(first.body.nodes.map((n: { id: string }) => n.id)).toEqual([nodeA.id]);
    expect(first.body.nextCursor).toBe(nodeA.id);
    const second = await api.call('GET', `/api/nodes?limit=1&cursor=${first.body.nextCursor}`, {
      key: ownerA.key,
    });
    expect(second.body).toMatchObject({ nodes: [{ id: extra.body.node.id }], nextCursor: null });
    const bad = await api.call('GET', '/api/nodes?limit=500', { key: ownerA.key });
    expect([bad.status, bad.body.error.message]).toEqual([
      400,
      'limit: Too big: expected number to be <=100',
    ]);
  });

  it('records a REST heartbeat: shown in GET, last seen updated, not online, one metric sample per interval', async () => {
    const beat = (body: unknown) =>
      api.call('POST', `/api/nodes/${nodeA.id}/heartbeat`, { key: nodeA.key, body });
    const res = await beat({ load: 0.5, inflight: 1, metrics: { gpuUtil: 0.75, memUsedMb: 2_048 } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, nextHeartbeatMs: api.services.config.NODE_HEARTBEAT_INTERVAL_MS });

    const { node } = (await api.call('GET', `/api/nodes/${nodeA.id}`, { key: ownerA.key })).body;
    expect(node.online).toBe(false);
    expect(node.heartbeat).toEqual({
      load: 0.5,
      inflight: 1,
      metrics: { gpuUtil: 0.75, memUsedMb: 2_048 },
      at: expect.any(String),
    });
    expect(node.lastSeenAt).toEqual(expect.any(String));
    expect(await samples(nodeA.id)).toBe(1);

    // Within METRICS_SAMPLE_INTERVAL_MS (10 s): the heartbeat is kept, no second sample.
    expect((await beat({ load: 0.25, inflight: 0 })).status).toBe(200);
    expect(await samples(nodeA.id)).toBe(1);
    const latest = await api.services.store.heartbeats.get<HeartbeatRecord>(nodeA.id);
    expect(latest).toMatchObject({ load: 0.25, inflight: 0, metrics: { gpuUtil: 0.75 } });

    // Once the interval has passed since the last sample, the next heartbeat writes one.
    const interval = api.services.config.METRICS_SAMPLE_INTERVAL_MS;
    const aged = new Date(Date.now() - interval - 1).toISOString();
    await api.services.store.heartbeats.put(nodeA.id, { ...latest, sampledAt: aged }, 60_000);
    expect((await beat({ load: 0.9, inflight: 3 })).status).toBe(200);
    expect(await samples(nodeA.id)).toBe(2);

    const metrics = await api.call('GET', `/api/nodes/${nodeA.id}/metrics`, { key: ownerA.key });
    expect(metrics.status).toBe(200);
    expect(metrics.body.samples).toEqual([
      { at: expect.any(String), load: 0.9, inflight: 3, gpuUtil: null, memUsedMb: null, metrics: null },
      {
        at: expect.any(String),
        load: 0.5,
        inflight: 1,
        gpuUtil: 0.75,
        memUsedMb: 2_048,
        metrics: { gpuUtil: 0.75, memUsedMb: 2_048 },
      },
    ]);
    const limited = await api.call('GET', `/api/nodes/${nodeA.id}/metrics?limit=1`, { key: nodeA.key });
    expect(limited.body.samples.map((s: { load: number }) => s.load)).toEqual([0.9]);
    const future = new Date(Date.now() + 60_000).toISOString();
    const since = await api.call('GET', `/api/nodes/${nodeA.id}/metrics?since=${future}`, {
      key: TEST_ADMIN_KEY,
    });
    expect(since.body.samples).toEqual([]);
    const bad = await api.call('GET', `/api/nodes/${nodeA.id}/metrics?since=yesterday`, {
      key: TEST_ADMIN_KEY,
    });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'validation_failed']);
  });

  it('lets a node key heartbeat only for its own node', async () => {
    const before = await samples(nodeB.id);
    const other = await api.call('POST', `/api/nodes/${nodeB.id}/heartbeat`, {
      key: nodeA.key,
      body: { load: 0, inflight: 0 },
    });
    expect([other.status, other.body]).toEqual([404, NODE_NOT_FOUND]);
    const byOwner = await api.call('POST', `/api/nodes/${nodeB.id}/heartbeat`, {
      key: ownerB.key,
      body: { load: 0, inflight: 0 },
    });
    expect(byOwner.status).toBe(403);
    expect(byOwner.body).toEqual({
      error: { code: 'forbidden', message: 'this endpoint requires the node role' },
    });
    expect(await samples(nodeB.id)).toBe(before);
    expect(await api.services.store.heartbeats.get(nodeB.id)).toBeNull();
  });

  it('refuses malformed heartbeats with 400', async () => {
    const cases: [unknown, string][] = [
      [{ load: 2, inflight: 0 }, 'load: Too big: expected number to be <=1'],
      [{ load: 0.1, inflight: -1 }, 'inflight: Too small: expected number to be >=0'],
      [{ load: 0.1, inflight: 0, metrics: { gpu: 1 } }, 'metrics: Unrecognized key: "gpu"'],
      [{ v: 1, type: 'heartbeat', load: 0.1, inflight: 0 }, 'Unrecognized keys: "v", "type"'],
    ];
    for (const [body, message] of cases) {
      const res = await api.call('POST', `/api/nodes/${nodeB.id}/heartbeat`, { key: nodeB.key, body });
      expect([res.status, res.body.error.message]).toEqual([400, message]);
    }
  });

  it('keeps fields merged in by the socket (extra) across later heartbeats', async () => {
    const models = [{ name: 'bge', version: 'small' }];
    await recordHeartbeat(api.services, nodeB.id, { load: 0.1, inflight: 0 }, { models, capacity: 1 });
    await api.call('POST', `/api/nodes/${nodeB.id}/heartbeat`, {
      key: nodeB.key,
      body: { load: 0.3, inflight: 1 },
    });
    const { node } = (await api.call('GET', `/api/nodes/${nodeB.id}`, { key: nodeB.key })).body;
    expect(node.heartbeat).toEqual({ load: 0.3, inflight: 1, models, capacity: 1, at: expect.any(String) });
  });

  it('shows a node online while a socket holds its presence', async () => {
    await api.services.store.presence.renewHost('host-test', 60_000); // the holding api's lease
    await api.services.store.presence.set(nodeB.id, 'host-test', 60_000);
    const { node } = (await api.call('GET', `/api/nodes/${nodeB.id}`, { key: ownerB.key })).body;
    expect(node.online).toBe(true);
  });

  it('counts tasks, attempts, nodes and models for admins', async () => {
    const { prisma } = api.services;
    const client = await prisma.client.create({ data: { name: 'stats' } });
    const model = await prisma.model.findFirstOrThrow({ where: { name: 'llama' } });
    const deadlineAt = new Date(Date.now() + 60_000);
    for (const [i, status] of (['queued', 'queued', 'running', 'completed'] as const).entries()) {
      await prisma.task.create({
        data: {
          id: `stats-${i}`,
          clientId: client.id,
          modelId: model.id,
          input: { prompt: 'x' },
          status,
          deadlineAt,
        },
      });
    }
    await prisma.taskAttempt.createMany({
      data: [
        { taskId: 'stats-2', attemptNo: 1, nodeId: nodeA.id, outcome: 'timeout' },
        { taskId: 'stats-2', attemptNo: 2, nodeId: nodeA.id, outcome: 'accepted' },
        { taskId: 'stats-3', attemptNo: 1, nodeId: nodeB.id, outcome: 'completed' },
      ],
    });
    await admin('PATCH', `/api/models/${model.id}`, { active: false });

    const res = await admin('GET', '/api/stats');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      tasks: {
        total: 4,
        byStatus: { queued: 2, assigned: 0, running: 1, verifying: 0, completed: 1, failed: 0, cancelled: 0 },
      },
      attempts: {
        total: 3,
        byOutcome: {
          pending: 0,
          accepted: 1,
          completed: 1,
          rejected: 0,
          timeout: 1,
          error: 0,
          lost: 0,
          cancelled: 0,
          invalid: 0,
        },
      },
      nodes: { total: 3, online: 1 },
      models: { total: 2, active: 1 },
      // No task here was settled and no tokens moved.
      tokens: { volume: '0', nodeRewards: '0', fees: '0', feeBalance: '0', payouts: '0', topups: '0' },
    });
    const byOwner = await api.call('GET', '/api/stats', { key: ownerA.key });
    expect([byOwner.status, byOwner.body.error.code]).toEqual([403, 'forbidden']);
  });
});
