import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NodeAgent } from '../node-agent/agent.js';
import { CLOSE_UNAUTHORIZED, type CoordinatorFrame, NODE_SOCKET_PATH } from '../protocol/frames.js';
import { type NodeReport, nodeReportSignal, type TaskState } from '../workflows/definitions.js';
import { type CoordinatorSuite, MODEL, useCoordinator, waitForStatus } from './helpers/coordinator.js';

type ErrorFrame = Extract<CoordinatorFrame, { type: 'error' }>;

// The node WebSocket protocol from the node's side: validation, authorization of reports, and the
// workflow's indifference to late, duplicate and foreign reports.
describe('node protocol', () => {
  const suite = useCoordinator();

  async function node(name: string, options: Parameters<CoordinatorSuite['node']>[1] = {}) {
    const n = await suite.node(name, options);
    const errors: ErrorFrame[] = [];
    n.agent.on('coordinator-error', (f) => errors.push(f));
    return { ...n, errors };
  }

  const nextError = (agent: NodeAgent) =>
    new Promise<ErrorFrame>((resolve) => agent.once('coordinator-error', (f) => resolve(f)));

  const submit = async () => {
    const r = await suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'protocol' } });
    expect(r.status).toBe(202);
    return r.body.task.id as string;
  };

  it('answers malformed frames with an error frame and keeps the connection', async () => {
    const n = await node('malformed');
    const cases: Array<[string, string]> = [
      ['not json at all', 'malformed_frame'],
      [JSON.stringify({ v: 2, type: 'heartbeat', load: 0, inflight: 0 }), 'unsupported_version'],
      [JSON.stringify({ v: 1, type: 'teleport' }), 'malformed_frame'],
      [JSON.stringify({ v: 1, type: 'heartbeat', load: 7, inflight: 0 }), 'malformed_frame'],
      [JSON.stringify({ v: 1, type: 'result', attemptId: 'nonsense' }), 'malformed_frame'],
      [JSON.stringify([1, 2, 3]), 'unsupported_version'],
    ];
    for (const [text, code] of cases) {
      const error = nextError(n.agent);
      expect(n.agent.sendRaw(text)).toBe(true);
      expect((await error).code, text).toBe(code);
    }
    expect(n.agent.stats.connected).toBe(true);
    // Still a working node: it takes and completes a task over the same connection.
    const taskId = await submit();
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task).toMatchObject({ status: 'completed', nodeId: n.nodeId });
    expect(n.agent.stats.reconnects).toBe(0);
  });

  it('refuses a report on another node’s attempt with an error frame, and the task is unaffected', async () => {
    const owner = await node('owner', { behaviour: { afterAccept: 'hang' } });
    const taskId = await submit();
    await new Promise<void>((resolve) => owner.agent.once('accepted', () => resolve()));
    await waitForStatus(suite.s.clientA, taskId, ['running']);
    const intruder = await node('intruder');
    const error = nextError(intruder.agent);
    intruder.agent.sendFrame({ v: 1, type: 'result', attemptId: `${taskId}:1`, output: { text: 'forged' } });
    expect(await error).toMatchObject({ code: 'not_your_attempt', attemptId: `${taskId}:1`, ref: 'result' });

    const task = (await suite.s.clientA.get(`/api/tasks/${taskId}`)).body.task;
    expect(task.status).toBe('running');
    expect(task.result).toBeNull();
  });

  it('ignores and counts late, duplicate and foreign signals in the workflow', async () => {
    const n = await node('signals', { behaviour: { afterAccept: 'hang' } });
    const taskId = await submit();
    await new Promise<void>((resolve) => n.agent.once('accepted', () => resolve()));
    await waitForStatus(suite.s.clientA, taskId, ['running']);
    const handle = suite.temporal.workflow.getHandle(taskId);
    const reports: NodeReport[] = [
      { attemptNo: 1, nodeId: '00000000-0000-4000-8000-000000000000', kind: 'result', outputHash: 'x' }, // foreign
      { attemptNo: 7, nodeId: n.nodeId, kind: 'result', outputHash: 'x' }, // not the current attempt
      { attemptNo: 1, nodeId: n.nodeId, kind: 'accepted' }, // duplicate accept
      { attemptNo: 1, nodeId: n.nodeId, kind: 'rejected', reason: 'too late to reject' }, // after accepting
    ];
    for (const r of reports) await handle.signal(nodeReportSignal, r);
    await expect
      .poll(async () => (await handle.query<TaskState>('state')).ignoredReports)
      .toBe(reports.length);
    const state = await handle.query<TaskState>('state');
    expect(state.status).toBe('running');
    expect(state.attempts).toEqual([{ no: 1, nodeId: n.nodeId, outcome: 'pending' }]);
    expect((await suite.s.clientA.get(`/api/tasks/${taskId}`)).body.task.status).toBe('running');
  });

  it('refuses a result that arrives after its attempt timed out, and a duplicate after completion', async () => {
    const slow = await node('too-slow', { behaviour: { onAssign: () => 'ignore' } });
    const taskId = await submit();
    const assigned = await new Promise<string>((resolve) =>
      slow.agent.once('assigned', (a) => resolve(a.attemptId)),
    );
    const good = await node('rescuer');
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task).toMatchObject({ status: 'completed', nodeId: good.nodeId });

    const late = nextError(slow.agent);
    slow.agent.sendFrame({ v: 1, type: 'result', attemptId: assigned, output: { text: 'late' } });
    expect(await late).toMatchObject({ code: 'attempt_closed', attemptId: assigned });

    const duplicate = nextError(good.agent);
    good.agent.sendFrame({
      v: 1,
      type: 'result',
      attemptId: `${taskId}:2`,
      output: { text: 'changed my mind' },
    });
    expect(await duplicate).toMatchObject({ code: 'attempt_closed' });

    const after = (await suite.s.clientA.get(`/api/tasks/${taskId}`)).body.task;
    expect(after.result).toEqual(task.result);
    expect(after.attemptHistory.map((a: { outcome: string }) => a.outcome)).toEqual(['timeout', 'completed']);
  });

  it('acks a repeated accept, and treats a reject after accepting as an error that moves the task on', async () => {
    const fickle = await node('fickle', { behaviour: { afterAccept: 'hang' } });
    const taskId = await submit();
    await new Promise<void>((resolve) => fickle.agent.once('accepted', () => resolve()));
    await waitForStatus(suite.s.clientA, taskId, ['running']);
    fickle.agent.sendFrame({ v: 1, type: 'accept', attemptId: `${taskId}:1` });
    fickle.agent.sendFrame({ v: 1, type: 'reject', attemptId: `${taskId}:1`, reason: 'changed my mind' });
    const rescuer = await node('rescuer-2');
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task).toMatchObject({ status: 'completed', nodeId: rescuer.nodeId });
    expect(task.attemptHistory[0]).toMatchObject({
      outcome: 'error',
      error: 'rejected after accepting: changed my mind',
    });
    expect(fickle.errors).toEqual([]);
  });

  it('closes a connection without a valid node key with 4401', async () => {
    const url = `${suite.coordinator.url.replace('http', 'ws')}${NODE_SOCKET_PATH}`;
    const closeOf = (ws: WebSocket) =>
      new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    expect(await closeOf(new WebSocket(url, { headers: { authorization: 'Bearer ngk_nope_nope' } }))).toBe(
      CLOSE_UNAUTHORIZED,
    );
    expect(await closeOf(new WebSocket(url))).toBe(CLOSE_UNAUTHORIZED);
    const clientKey = (await suite.s.admin.post('/api/admin/clients', { name: 'not a node' })).body.apiKey;
    expect(await closeOf(new WebSocket(url, { headers: { authorization: `Bearer ${clientKey}` } }))).toBe(
      CLOSE_UNAUTHORIZED,
    );
  });
});
