import { describe, expect, it } from 'vitest';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import type { TaskState } from '../workflows/definitions.js';
import { EMBEDDING_MODEL, MODEL, useCoordinator, waitForStatus } from './helpers/coordinator.js';
import { recordHistory } from './helpers/histories.js';

// The task workflow end to end: real Temporal dev server, real database, real Redis when REDIS_URL is
// set, simulated nodes running the real node agent over the documented WebSocket protocol.
describe('task lifecycle', () => {
  const suite = useCoordinator();
  const node = suite.node;

  const submit = async (body: Record<string, unknown> = {}, headers?: Record<string, string>) => {
    const r = await suite.s.clientA.post(
      '/api/tasks',
      { model: MODEL.name, input: { prompt: 'hello world' }, ...body },
      headers,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.task.id as string;
  };

  it('assigns exactly one of two nodes, completes, and shows the result and search attributes', async () => {
    const n1 = await node('happy-1');
    const n2 = await node('happy-2');
    let assigned = 0;
    for (const n of [n1, n2]) n.agent.on('assigned', () => assigned++);

    const taskId = await submit();
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    expect(assigned).toBe(1);
    expect([n1.nodeId, n2.nodeId]).toContain(task.nodeId);
    expect(task.result).toEqual({ text: expect.stringContaining('hello world'), finishReason: 'stop' });
    expect(task.attemptHistory).toEqual([expect.objectContaining({ attemptNo: 1, outcome: 'completed' })]);

    const result = await suite.s.clientA.get(`/api/tasks/${taskId}/result`);
    expect(result.status).toBe(200);
    expect(result.body.result).toEqual(task.result);

    const handle = suite.temporal.workflow.getHandle(taskId);
    // The row is written by the last activity; the workflow closes just after it.
    await handle.result();
    const description = await handle.describe();
    expect(description.status.name).toBe('COMPLETED');
    expect(description.typedSearchAttributes.get({ name: 'TaskStatus', type: 'KEYWORD' } as never)).toBe(
      'completed',
    );
    const attrs = description.searchAttributes as Record<string, unknown[]>;
    expect(attrs.TaskStatus).toEqual(['completed']);
    expect(attrs.TaskNode).toEqual([task.nodeId]);
    expect(attrs.TaskModel).toEqual([`${MODEL.name}:${MODEL.version}`]);
    expect(attrs.TaskClient).toEqual([suite.s.clientAId]);
    const state = await handle.query<TaskState>('state');
    expect(state).toMatchObject({ status: 'completed', ignoredReports: 0 });
    await recordHistory(suite.temporal, taskId, 'completed');
  });

  it('spreads a burst over the nodes within their capacity, with no rejections', async () => {
    const nodes = await Promise.all(
      ['burst-1', 'burst-2', 'burst-3'].map((n) =>
        node(n, { capacity: 2, behaviour: { afterAccept: 'hang' } }),
      ),
    );
    const assigned = new Map(nodes.map((n) => [n.nodeId, 0]));
    for (const n of nodes)
      n.agent.on('assigned', () => assigned.set(n.nodeId, (assigned.get(n.nodeId) ?? 0) + 1));
    await Promise.all([1, 2, 3, 4, 5, 6].map(() => submit()));
    await expect.poll(() => [...assigned.values()].reduce((a, b) => a + b, 0), { timeout: 15_000 }).toBe(6);
    expect([...assigned.values()]).toEqual([2, 2, 2]);
    expect(nodes.map((n) => n.agent.stats.rejected)).toEqual([0, 0, 0]);
  });

  it('runs an embedding task and verifies one vector per input', async () => {
    await node('embed-1');
    const r = await suite.s.clientA.post('/api/tasks', {
      model: EMBEDDING_MODEL.name,
      input: { texts: ['a', 'b', 'c'] },
    });
    expect(r.status).toBe(202);
    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    expect(task.result.embeddings).toHaveLength(3);
    await recordHistory(suite.temporal, r.body.task.id, 'embedding');
  });

  it('re-assigns when the node never accepts', async () => {
    const silent = await node('silent', { behaviour: { onAssign: () => 'ignore' } });
    const taskId = await submit();
    // Only the silent node exists at first: it gets the first attempt.
    await new Promise<void>((resolve) => silent.agent.once('assigned', () => resolve()));
    const good = await node('good-after-silent');
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    expect(task.nodeId).toBe(good.nodeId);
    expect(task.attemptHistory.map((a: { outcome: string }) => a.outcome)).toEqual(['timeout', 'completed']);
    await recordHistory(suite.temporal, taskId, 'reassigned-after-no-accept');
  });

  it('re-assigns when the node accepts and never answers', async () => {
    const hanging = await node('hanging', { behaviour: { afterAccept: 'hang' } });
    const taskId = await submit();
    await new Promise<void>((resolve) => hanging.agent.once('accepted', () => resolve()));
    const good = await node('good-after-hang');
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    expect(task.nodeId).toBe(good.nodeId);
    expect(task.attemptHistory[0]).toMatchObject({
      outcome: 'timeout',
      error: expect.stringContaining('no result'),
    });
    await recordHistory(suite.temporal, taskId, 'reassigned-after-no-result');
  });

  it('fails with a reason after the maximum attempts when every node rejects or fails', async () => {
    await node('rejects', { behaviour: { onAssign: () => 'reject' } });
    await node('fails', { backend: simulatedBackend({ failureRate: 1 }) });
    await node('invalid', { backend: simulatedBackend({ invalidOutput: true }) });
    const taskId = await submit();
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task.status).toBe('failed');
    expect(task.failureReason).toMatch(/^all 3 attempts failed: /);
    expect(task.attemptHistory.map((a: { outcome: string }) => a.outcome).sort()).toEqual([
      'error',
      'invalid',
      'rejected',
    ]);
    // The read model is written just before the workflow closes.
    await expect
      .poll(async () => (await suite.temporal.workflow.getHandle(taskId).describe()).status.name, {
        timeout: 5_000,
      })
      .toBe('FAILED');
    await recordHistory(suite.temporal, taskId, 'failed-all-attempts');
  });

  it('waits with no node online and completes when one connects', async () => {
    const taskId = await submit();
    const handle = suite.temporal.workflow.getHandle(taskId);
    await expect
      .poll(async () => (await handle.query<TaskState>('state')).waitingForNode, { timeout: 10_000 })
      .toBe(true);
    expect((await suite.s.clientA.get(`/api/tasks/${taskId}`)).body.task.status).toBe('queued');
    await node('late-joiner');
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    await recordHistory(suite.temporal, taskId, 'waited-for-node');
  });

  it('fails with a reason when no node comes before the queue deadline', async () => {
    const taskId = await submit({ queueTimeoutMs: 1_500 });
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task.status).toBe('failed');
    expect(task.failureReason).toBe('no node serving the model was available before the queue deadline');
    await recordHistory(suite.temporal, taskId, 'failed-queue-deadline');
  });

  it('joins the same task and workflow for the same Idempotency-Key', async () => {
    await node('idem');
    const headers = { 'Idempotency-Key': `key-${Date.now()}` };
    const [a, b] = await Promise.all([
      suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'once' } }, headers),
      suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'once' } }, headers),
    ]);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(a.body.task.id).toBe(b.body.task.id);
    await waitForStatus(suite.s.clientA, a.body.task.id, ['completed']);
    const again = await suite.s.clientA.post(
      '/api/tasks',
      { model: MODEL.name, input: { prompt: 'once' } },
      headers,
    );
    expect(again.status).toBe(202);
    expect(again.body.task).toMatchObject({ id: a.body.task.id, status: 'completed' });
    const runs = [];
    for await (const wf of suite.temporal.workflow.list({ query: `WorkflowId = '${a.body.task.id}'` }))
      runs.push(wf);
    expect(runs).toHaveLength(1);
    const other = await suite.s.clientA.post(
      '/api/tasks',
      { model: MODEL.name, input: { prompt: 'different' } },
      headers,
    );
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('conflict');
  });

  it('cancels a running task and tells the node', async () => {
    const hanging = await node('cancel-me', { behaviour: { afterAccept: 'hang' } });
    const cancelled = new Promise<void>((resolve) => hanging.agent.once('cancelled', () => resolve()));
    const taskId = await submit();
    await new Promise<void>((resolve) => hanging.agent.once('accepted', () => resolve()));
    await waitForStatus(suite.s.clientA, taskId, ['running']);
    const r = await suite.s.clientA.post(`/api/tasks/${taskId}/cancel`);
    expect(r.status).toBe(202);
    const task = await waitForStatus(suite.s.clientA, taskId, ['cancelled']);
    expect(task.attemptHistory[0].outcome).toBe('cancelled');
    await cancelled;
    expect((await suite.s.clientA.post(`/api/tasks/${taskId}/cancel`)).status).toBe(409);
    await recordHistory(suite.temporal, taskId, 'cancelled');
  });
});
