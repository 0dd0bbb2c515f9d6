import { once } from 'node:events';
import net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../api/api.js';
import { SIGNAL_DEADLINE_MS } from '../api/nodes/reports.js';
import { loadConfig } from '../lib/config.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { createLogger } from '../lib/logger.js';
import { openServices, type Services } from '../lib/services.js';
import type { NodeAgent } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import { CLOSE_KEY_REVOKED, CLOSE_UNAUTHORIZED, type CoordinatorFrame } from '../protocol/frames.js';
import { type RunningWorker, startWorker } from '../worker/worker.js';
import {
  MODEL,
  seed,
  spawnApi,
  startNode,
  type TestEnvironment,
  testEnvironment,
  waitForStatus,
} from './helpers/coordinator.js';
import { freePort } from './helpers/ports.js';
import type { Spawned } from './helpers/processes.js';
import { connectRawNode, type ErrorFrame, type RawNode } from './helpers/raw-node.js';

type AssignFrame = Extract<CoordinatorFrame, { type: 'assign' }>;

/**
 * A TCP proxy in front of Temporal that a test can cut: `down()` drops every connection and refuses new
 * ones (what a Temporal outage or a network partition looks like to the api), `up()` heals it.
 */
async function startTcpProxy(target: string) {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const open = new Set<net.Socket>();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) return void client.destroy();
    const upstream = net.connect(port, host);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', end).on('close', end);
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    down() {
      up = false;
      for (const s of open) s.destroy();
    },
    up() {
      up = true;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// At-least-once delivery of node reports, end to end: an api whose Temporal is unreachable answers
// `internal` within a bound and the node re-sends; heartbeats are not held up by a stuck report; the
// agent fails over between coordinator addresses; a revoked key loses its sockets on every api.
describe('node reliability', () => {
  let env: TestEnvironment;
  let services: Services;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let proxied: Connection;
  let worker: RunningWorker;
  /** Reaches Temporal through the proxy: its nodes' reports are what an outage hits. */
  let apiA: RunningApi;
  /** A second api process (own sessions, host queue, subscriptions) reaching Temporal directly. */
  let apiB: RunningApi;
  let s: Awaited<ReturnType<typeof seed>>;
  const agents: NodeAgent[] = [];
  const raws: RawNode[] = [];

  beforeAll(async () => {
    // Deadlines long enough that an outage of a few seconds is not also a timeout.
    env = await testEnvironment({ TASK_ACCEPT_TIMEOUT_MS: '30000', TASK_RESULT_TIMEOUT_MS: '30000' });
    const config = loadConfig(env.env);
    const log = createLogger('test', config.LOG_LEVEL);
    services = await openServices(
      config,
      {
        temporalAddress: config.TEMPORAL_ADDRESS as string,
        databaseUrl: config.DATABASE_URL as string,
        redisUrl: config.REDIS_URL,
      },
      log,
    );
    proxy = await startTcpProxy(config.TEMPORAL_ADDRESS as string);
    proxied = await Connection.connect({ address: proxy.address });
    worker = await startWorker(services);
    const client = new Client({ connection: proxied, namespace: config.TEMPORAL_NAMESPACE });
    apiA = await startApi({ ...services, temporal: { connection: proxied, client } });
    apiB = await startApi({ ...services, config: { ...config, hostId: `${config.hostId}-b` } });
    // Clients use the api whose Temporal is not cut: submissions are not what is under test.
    s = await seed(apiB.url, env.env.ADMIN_API_KEY as string);
  });
  afterEach(async () => {
    proxy.up();
    const open = await services.prisma.task.findMany({
      where: { status: { notIn: ['completed', 'failed', 'cancelled'] } },
      select: { id: true },
    });
    await Promise.all(
      open.map(async ({ id }) => {
        const handle = services.temporal.client.workflow.getHandle(id);
        await handle.cancel().catch(() => undefined);
        await handle.result().catch(() => undefined);
      }),
    );
    await Promise.all([...agents.splice(0).map((a) => a.stop()), ...raws.splice(0).map((r) => r.close())]);
  });
  afterAll(async () => {
    await apiA?.close();
    await apiB?.close();
    await worker?.close();
    await proxied?.close();
    await proxy?.close();
    await services?.close();
    await env?.cleanup();
  });

  const submit = async () => {
    const r = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'reliable' } });
    expect(r.status).toBe(202);
    return r.body.task.id as string;
  };

  it('the agent sends a result answered internal (Temporal unreachable) again until acked; the task completes and pays the node once', async () => {
    const { nodeId, key } = await s.registerNode('retrier');
    const agent = await startNode(apiA.url, key, {
      backend: simulatedBackend({ latencyMs: 1_000 }),
      reports: { initialDelayMs: 200, maxDelayMs: 1_000 },
    });
    agents.push(agent);
    const internal: Array<ErrorFrame & { at: number }> = [];
    agent.on(
      'coordinator-error',
      (f) => void (f.code === 'internal' && internal.push({ ...f, at: Date.now() })),
    );
    let completedAt = 0;
    agent.on('completed', () => {
      completedAt = Date.now();
    });

    const taskId = await submit();
    await waitForStatus(s.clientA, taskId, ['running']); // the accept reached the workflow
    proxy.down();
    await expect.poll(() => internal.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
    expect(internal[0]).toMatchObject({ ref: 'result', attemptId: `${taskId}:1` });
    // Bounded: the api gave up on Temporal after its deadline, not after the client's ~20 s of retries.
    expect((internal[0]?.at ?? 0) - completedAt).toBeLessThan(SIGNAL_DEADLINE_MS + 3_000);
    proxy.up();

    const task = await waitForStatus(s.clientA, taskId, ['completed', 'failed'], 40_000);
    expect(task).toMatchObject({ status: 'completed', nodeId, result: { text: 'echo: reliable' } });
    const paid = await createLedger(services.prisma).balance({ kind: 'node', ownerId: nodeId });
    expect(paid.available).toBe(BigInt(task.tokens.reward)); // once, although the result came several times
    expect(agent.stats).toMatchObject({ reconnects: 0, completed: 1 });
  });

  it("acks heartbeats at once while the node's reports wait on Temporal, keeps one attempt's reports in order, and answers internal within the deadline", async () => {
    const { nodeId, key } = await s.registerNode('stuck');
    const raw = await connectRawNode(apiA.url, key);
    raws.push(raw);
    await raw.hello();
    const taskId = await submit();
    const { attemptId } = (await raw.take((f) => f.type === 'assign', 10_000)) as AssignFrame;

    proxy.down();
    const sentAt = Date.now();
    raw.send({ v: 1, type: 'accept', attemptId });
    raw.send({
      v: 1,
      type: 'result',
      attemptId,
      output: { text: 'through an outage', finishReason: 'stop' },
    });
    const acceptAnswer = raw.error('accept', attemptId, 15_000);
    const resultAnswer = raw.error('result', attemptId, 20_000);
    let acceptAt = 0;
    let answered = false;
    void acceptAnswer.then(() => {
      acceptAt = Date.now();
    });
    void resultAnswer.then(() => {
      answered = true;
    });
    // Heartbeats meanwhile (they also keep the socket alive): each acked promptly, none waits behind
    // the stuck reports.
    const latencies: number[] = [];
    while (!answered) {
      const t = Date.now();
      raw.send({ v: 1, type: 'heartbeat', load: 0.5, inflight: 1 });
      await raw.take((f) => f.type === 'ack' && f.of === 'heartbeat', 2_000);
      latencies.push(Date.now() - t);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(latencies.length).toBeGreaterThanOrEqual(20);
    // A heartbeat behind the stuck accept would wait out the signal deadline (3 s) at least.
    expect(Math.max(...latencies)).toBeLessThan(1_000);

    expect(await acceptAnswer).toMatchObject({ code: 'internal' });
    expect(acceptAt - sentAt).toBeLessThan(SIGNAL_DEADLINE_MS + 3_000);
    expect(await resultAnswer).toMatchObject({ code: 'internal' });
    // In order: the result was handled only after its accept.
    const answerIndex = (ref: string) =>
      raw.received.findIndex((f) => f.type === 'error' && f.ref === ref && f.attemptId === attemptId);
    expect(answerIndex('accept')).toBeLessThan(answerIndex('result'));

    // Temporal back: the node re-sends (as the agent would), and each report takes effect once.
    proxy.up();
    raw.keepAlive();
    for (const frame of [
      { v: 1, type: 'accept', attemptId },
      { v: 1, type: 'result', attemptId, output: { text: 'through an outage', finishReason: 'stop' } },
    ]) {
      for (let tries = 0; ; tries++) {
        raw.send(frame);
        const answer = await raw.take(
          (f) => (f.type === 'ack' && f.of === frame.type) || (f.type === 'error' && f.ref === frame.type),
          15_000,
        );
        if (answer.type === 'ack') break;
        expect(answer).toMatchObject({ code: 'internal' });
        expect(tries).toBeLessThan(30);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    const task = await waitForStatus(s.clientA, taskId, ['completed', 'failed'], 30_000);
    expect(task).toMatchObject({ status: 'completed', nodeId, result: { text: 'through an outage' } });
  });

  it('the agent fails over to the second coordinator address when the first is down', async () => {
    const { nodeId, key } = await s.registerNode('failover');
    const dead = `http://127.0.0.1:${await freePort()}`;
    const agent = await startNode(dead, key, { coordinatorUrl: [dead, apiB.url] });
    agents.push(agent);
    expect(agent.stats.coordinatorUrl).toContain(new URL(apiB.url).host);
    expect(agent.stats.reconnects).toBeGreaterThanOrEqual(1);
    const taskId = await submit();
    const task = await waitForStatus(s.clientA, taskId, ['completed', 'failed']);
    expect(task).toMatchObject({ status: 'completed', nodeId });
  });

  it('revoking a node key closes its sockets on every api process at once (4403), and the key no longer connects', async () => {
    const r = await s.ownerApi.post('/api/nodes/register', { name: 'revoked', models: [MODEL], capacity: 1 });
    expect(r.status).toBe(201);
    const { nodeKey, keyId } = r.body as { nodeKey: string; keyId: string };
    // With Redis, a real second process too: the broadcast must cross processes, not just objects.
    let spawned: { proc: Spawned; url: string } | undefined;
    if (process.env.REDIS_URL) spawned = await spawnApi(env.env);
    try {
      const urls = [apiA.url, apiB.url, ...(spawned ? [spawned.url] : [])];
      const sockets = await Promise.all(urls.map((url) => connectRawNode(url, nodeKey)));
      raws.push(...sockets);
      await Promise.all(sockets.map((socket) => socket.hello({ models: [MODEL] })));

      const started = Date.now();
      expect((await s.admin.post(`/api/admin/keys/${keyId}/revoke`)).status).toBe(200);
      const closes = await Promise.all(sockets.map((socket) => socket.closed));
      for (const close of closes) {
        expect(close).toMatchObject({ code: CLOSE_KEY_REVOKED, reason: 'key revoked' });
        expect(close.at - started).toBeLessThan(1_000);
      }
      for (const url of urls) {
        const again = await connectRawNode(url, nodeKey);
        expect((await again.closed).code).toBe(CLOSE_UNAUTHORIZED);
      }
    } finally {
      await spawned?.proc.kill();
    }
  });
});
