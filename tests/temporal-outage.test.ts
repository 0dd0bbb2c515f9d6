import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLedger } from '../lib/ledger/ledger.js';
import { settlementKey } from '../lib/ledger/task-postings.js';
import { type DevServer, startDevServer } from '../lib/temporal/dev-server.js';
import type { NodeAgent } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import {
  MODEL,
  seed,
  startInProcess,
  startNode,
  type TestEnvironment,
  testEnvironment,
  waitForStatus,
} from './helpers/coordinator.js';
import { auditFinishedTask } from './helpers/invariants.js';
import { freePort } from './helpers/ports.js';

// Temporal stopped (SIGKILL) while a node delivers its result, then restarted with its state: the
// report is kept (stored at once, signalled again), the node is paid once, and the task completes
// without being sent to another node.
describe('Temporal killed while a node sends its result', () => {
  let env: TestEnvironment;
  let dir: string;
  let server: DevServer;
  let port: number;
  let coordinator: Awaited<ReturnType<typeof startInProcess>>;
  const agents: NodeAgent[] = [];

  const startServer = async () =>
    startDevServer({
      cliPath: inject('temporalCliPath'),
      namespace: inject('temporalNamespace'),
      port,
      uiPort: 0,
      headless: true,
      dbFile: path.join(dir, 'temporal.sqlite'),
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ng-outage-'));
    port = await freePort();
    server = await startServer();
    env = await testEnvironment({
      TEMPORAL_ADDRESS: server.address,
      TASK_ACCEPT_TIMEOUT_MS: '5000',
      TASK_RESULT_TIMEOUT_MS: '6000',
    });
    coordinator = await startInProcess(env.env);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await coordinator?.close();
    await server?.stop();
    await env?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('pays the node once and completes the task on the same node', async () => {
    const s = await seed(coordinator.url, env.env.ADMIN_API_KEY as string);
    const slow = await s.registerNode('slow', 1);
    const spare = await s.registerNode('spare', 1);
    const node = await startNode(coordinator.url, slow.key, {
      capacity: 1,
      backend: simulatedBackend({ latencyMs: 1_500 }),
    });
    agents.push(node);

    const r = await s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'outage' } });
    expect(r.status).toBe(202);
    const taskId = r.body.task.id as string;
    await new Promise<void>((resolve) => node.once('accepted', () => resolve()));
    // The other node joins only now, so it could only be chosen by a reassignment.
    const other = await startNode(coordinator.url, spare.key, { capacity: 1 });
    agents.push(other);
    let spareAssigned = 0;
    other.on('assigned', () => spareAssigned++);

    process.kill(server.pid as number, 'SIGKILL');
    // The node finishes while Temporal is down: the api cannot signal the workflow.
    await new Promise<void>((resolve) => node.once('completed', () => resolve()));
    await new Promise((r) => setTimeout(r, 1_500));
    server = await startServer();

    const task = await waitForStatus(s.clientA, taskId, ['completed', 'failed', 'cancelled'], 60_000);
    expect(task.status).toBe('completed');
    expect(task.nodeId).toBe(slow.nodeId);
    expect(task.attemptHistory).toEqual([expect.objectContaining({ attemptNo: 1, outcome: 'completed' })]);
    expect(spareAssigned).toBe(0);

    const connection = await Connection.connect({ address: server.address });
    try {
      const temporal = new Client({ connection, namespace: inject('temporalNamespace') });
      const prisma = coordinator.services.prisma;
      expect(await auditFinishedTask(prisma, temporal, taskId)).toEqual({
        status: 'completed',
        settlement: 'captured',
      });
      const capture = await createLedger(prisma).findTransaction(settlementKey(taskId));
      const paid = capture?.postings.filter((p) => p.account.kind === 'node' && p.amount > 0n) ?? [];
      expect(paid).toHaveLength(1);
      expect(paid[0]?.account).toMatchObject({ ownerId: slow.nodeId });
      const balance = await createLedger(prisma).balance({ kind: 'node', ownerId: slow.nodeId });
      expect(balance.available).toBe(paid[0]?.amount);
    } finally {
      await connection.close();
    }
  });
});
