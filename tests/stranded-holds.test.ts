import { Client, Connection } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createPrisma } from '../lib/db/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { holdKey } from '../lib/ledger/task-postings.js';
import {
  apiClient,
  eventually,
  MODEL,
  seed,
  spawnApi,
  spawnWorker,
  type TestEnvironment,
  testEnvironment,
} from './helpers/coordinator.js';
import { auditFinishedTask } from './helpers/invariants.js';
import { freePort } from './helpers/ports.js';
import type { Spawned } from './helpers/processes.js';
import { type TcpProxy, tcpProxy } from './helpers/tcp-proxy.js';

// No hold without an owner: the hold is taken before the workflow starts, so an api that dies in
// between, or a keyed 503 that is never retried, leaves a hold that only the reaper (a Temporal
// schedule run by the worker) can release. Separate api and worker processes share Redis.
describe.skipIf(!process.env.REDIS_URL)('stranded holds', () => {
  let env: TestEnvironment;
  let prisma: PrismaClient;
  let connection: Connection;
  let temporal: Client;
  const procs: Spawned[] = [];
  const proxies: TcpProxy[] = [];
  const graceMs = 4_000;
  const reaperEveryMs = 1_000;

  beforeAll(async () => {
    env = await testEnvironment({
      TASK_STRANDED_GRACE_MS: String(graceMs),
      REAPER_INTERVAL_MS: String(reaperEveryMs),
      TASK_START_TIMEOUT_MS: '2000',
    });
    prisma = createPrisma(env.db.url);
    connection = await Connection.connect({ address: inject('temporalAddress') });
    temporal = new Client({ connection, namespace: inject('temporalNamespace') });
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await connection?.close();
    await env?.cleanup();
  });

  const available = async (clientId: string) =>
    (await createLedger(prisma).balance({ kind: 'client', ownerId: clientId })).available;

  /** Wait until the reaper has finished the task; answer how long that took. */
  const reaped = async (taskId: string) => {
    const t0 = Date.now();
    await eventually(
      async () => {
        const row = await prisma.task.findUnique({ where: { id: taskId }, select: { status: true } });
        return row?.status === 'failed' ? true : undefined;
      },
      graceMs + 10 * reaperEveryMs + 15_000,
      `task ${taskId} to be reaped`,
    );
    return Date.now() - t0;
  };

  it('kill -9 of the api between hold and workflow start: the hold is released within the grace period', async () => {
    const environment: Record<string, string> = { ...env.env, PORT: String(await freePort()) };
    procs.push(await spawnWorker(environment));
    const api = await spawnApi({ ...environment, NEUROGRID_FAULTS: 'before-workflow-start' });
    procs.push(api.proc);
    const s = await seed(api.url, environment.ADMIN_API_KEY as string);
    const before = await available(s.clientAId);

    const submitted = Date.now();
    const answer = await s.clientA
      .post('/api/tasks', { model: MODEL.name, input: { prompt: 'stranded' } })
      .catch((err: Error) => err);
    expect(answer).toBeInstanceOf(Error); // the api died mid-request: the client never got a 202
    const task = await prisma.task.findFirstOrThrow({ where: { clientId: s.clientAId } });
    expect(task.status).toBe('queued');
    expect(await createLedger(prisma).findTransaction(holdKey(task.id))).toBeTruthy();
    expect(await available(s.clientAId)).toBeLessThan(before);

    await reaped(task.id);
    const elapsed = Date.now() - submitted;
    expect(elapsed).toBeLessThan(graceMs + 3 * reaperEveryMs + 10_000);
    expect(await auditFinishedTask(prisma, temporal, task.id)).toEqual({
      status: 'failed',
      settlement: 'released',
    });
    const row = await prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(row.failureReason).toMatch(/not started within/);
    expect(await available(s.clientAId)).toBe(before);
  });

  it('Temporal unreachable: submission and cancel answer 503 fast with Retry-After; a keyed task never retried is released', async () => {
    const proxy = await tcpProxy(inject('temporalAddress'));
    proxies.push(proxy);
    const environment: Record<string, string> = { ...env.env, PORT: String(await freePort()) };
    procs.push(await spawnWorker(environment));
    const api = await spawnApi({ ...environment, TEMPORAL_ADDRESS: proxy.address });
    procs.push(api.proc);
    const s = await seed(api.url, environment.ADMIN_API_KEY as string);
    const before = await available(s.clientAId);

    // A task that is waiting for a node (none is online), to cancel during the outage.
    const waiting = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'waits' } });
    expect(waiting.status).toBe(202);

    proxy.cut();
    const t0 = Date.now();
    const r = await s.clientA.post(
      '/api/tasks',
      { model: MODEL.name, input: { prompt: 'outage' } },
      { 'Idempotency-Key': 'never-retried' },
    );
    const submitMs = Date.now() - t0;
    expect(r.status, JSON.stringify(r.body)).toBe(503);
    expect(r.body.error.code).toBe('unavailable');
    expect(r.body.error.message).toMatch(/Idempotency-Key/);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(submitMs).toBeLessThan(5_000);

    const t1 = Date.now();
    const c = await s.clientA.post(`/api/tasks/${waiting.body.task.id}/cancel`);
    expect(c.status, JSON.stringify(c.body)).toBe(503);
    expect(Number(c.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Date.now() - t1).toBeLessThan(5_000);
    proxy.restore();

    // The keyed request is never retried: the reaper releases its hold.
    const stranded = await prisma.task.findFirstOrThrow({ where: { idempotencyKey: 'never-retried' } });
    await reaped(stranded.id);
    expect(await auditFinishedTask(prisma, temporal, stranded.id)).toEqual({
      status: 'failed',
      settlement: 'released',
    });
    // A late retry with the same key joins the finished task instead of holding again.
    const late = await s.clientA.post(
      '/api/tasks',
      { model: MODEL.name, input: { prompt: 'outage' } },
      { 'Idempotency-Key': 'never-retried' },
    );
    expect(late.status).toBe(202);
    expect(late.body.task).toMatchObject({ id: stranded.id, status: 'failed' });

    // The cancel works once Temporal is back; every hold is then released.
    const again = await s.clientA.post(`/api/tasks/${waiting.body.task.id}/cancel`);
    expect(again.status).toBe(202);
    await eventually(async () => {
      const row = await prisma.task.findUnique({ where: { id: waiting.body.task.id } });
      return row?.status === 'cancelled' ? true : undefined;
    });
    expect(await available(s.clientAId)).toBe(before);
  });

  it('a task whose workflow never started can still be cancelled by its client', async () => {
    const environment: Record<string, string> = {
      ...env.env,
      PORT: String(await freePort()),
      TASK_STRANDED_GRACE_MS: '600000',
    };
    procs.push(await spawnWorker(environment));
    const api = await spawnApi({ ...environment, NEUROGRID_FAULTS: 'before-workflow-start' });
    procs.push(api.proc);
    const s = await seed(api.url, environment.ADMIN_API_KEY as string);
    const before = await available(s.clientAId);
    await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'x' } }).catch(() => undefined);
    const task = await prisma.task.findFirstOrThrow({
      where: { clientId: s.clientAId, status: 'queued' },
      orderBy: { createdAt: 'desc' },
    });

    const healthy = await spawnApi({ ...environment, PORT: String(await freePort()) });
    procs.push(healthy.proc);
    const c = await apiClient(healthy.url, s.clientAKey).post(`/api/tasks/${task.id}/cancel`);
    expect(c.status, JSON.stringify(c.body)).toBe(202);
    await eventually(async () => {
      const row = await prisma.task.findUnique({ where: { id: task.id } });
      return row?.status === 'cancelled' ? true : undefined;
    });
    expect(await auditFinishedTask(prisma, temporal, task.id)).toEqual({
      status: 'cancelled',
      settlement: 'released',
    });
    expect(await available(s.clientAId)).toBe(before);
  });
});
