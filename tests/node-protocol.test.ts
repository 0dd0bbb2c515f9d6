import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NodeAgent } from '../node-agent/agent.js';
import {
  CLOSE_KEY_REVOKED,
  CLOSE_UNAUTHORIZED,
  type CoordinatorFrame,
  NODE_SOCKET_PATH,
} from '../protocol/frames.js';
import { type NodeReport, nodeReportSignal, type TaskState } from '../workflows/definitions.js';
import {
  type CoordinatorSuite,
  EMBEDDING_MODEL,
  MODEL,
  startNode,
  useCoordinator,
  waitForStatus,
} from './helpers/coordinator.js';
import { connectRawNode, type ErrorFrame, type RawNode } from './helpers/raw-node.js';

type AssignFrame = Extract<CoordinatorFrame, { type: 'assign' }>;

// The node WebSocket protocol from the node's side: validation, authorization of reports, and the
// workflow's indifference to late, duplicate and foreign reports.
describe('node protocol', () => {
  const suite = useCoordinator();
  const raws: RawNode[] = [];
  afterEach(async () => {
    await Promise.all(raws.splice(0).map((r) => r.close()));
  });

  /** A freshly registered node on a plain socket (no agent), closed after the test. */
  async function rawNode(name: string) {
    const { nodeId, key } = await suite.s.registerNode(name);
    const raw = await connectRawNode(suite.coordinator.url, key);
    raws.push(raw);
    return { nodeId, key, raw };
  }

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
    const cases: Array<[string, string, string]> = [
      ['not json at all', 'malformed_frame', 'unknown'],
      [JSON.stringify({ v: 2, type: 'heartbeat', load: 0, inflight: 0 }), 'unsupported_version', 'heartbeat'],
      [JSON.stringify({ v: 1, type: 'teleport' }), 'malformed_frame', 'unknown'],
      [JSON.stringify({ v: 1, type: 'heartbeat', load: 7, inflight: 0 }), 'malformed_frame', 'heartbeat'],
      [JSON.stringify({ v: 1, type: 'result', attemptId: 'nonsense' }), 'malformed_frame', 'result'],
      [JSON.stringify([1, 2, 3]), 'unsupported_version', 'unknown'],
    ];
    for (const [text, code, ref] of cases) {
      const error = nextError(n.agent);
      expect(n.agent.sendRaw(text)).toBe(true);
      expect(await error, text).toMatchObject({ code, ref });
      expect((await error).attemptId, text).toBeUndefined();
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

  it('answers a second accept with attempt_closed, and treats a reject after accepting as an error that moves the task on', async () => {
    const fickle = await node('fickle', { behaviour: { afterAccept: 'hang' } });
    const taskId = await submit();
    await new Promise<void>((resolve) => fickle.agent.once('accepted', () => resolve()));
    await waitForStatus(suite.s.clientA, taskId, ['running']);
    const second = nextError(fickle.agent);
    fickle.agent.sendFrame({ v: 1, type: 'accept', attemptId: `${taskId}:1` });
    expect(await second).toMatchObject({ code: 'attempt_closed', ref: 'accept', attemptId: `${taskId}:1` });
    expect(fickle.agent.stats.cancelled).toBe(0); // a refused copy of an accept does not stop the work
    fickle.agent.sendFrame({ v: 1, type: 'reject', attemptId: `${taskId}:1`, reason: 'changed my mind' });
    const rescuer = await node('rescuer-2');
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task).toMatchObject({ status: 'completed', nodeId: rescuer.nodeId });
    expect(task.attemptHistory[0]).toMatchObject({
      outcome: 'error',
      error: 'rejected after accepting: changed my mind',
    });
    expect(fickle.errors).toHaveLength(1);
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

  it('names the frame it answers in every error frame: its type (or unknown), and its attemptId when well-formed', async () => {
    const { raw } = await rawNode('refs');
    const answer = async (frame: unknown, binary = false) => {
      if (binary) raw.ws.send(Buffer.from('{"v":1,"type":"heartbeat"}'), { binary: true });
      else raw.send(frame);
      return raw.error();
    };
    // Before a hello
    expect(await answer({ v: 1, type: 'heartbeat', load: 0, inflight: 0 })).toMatchObject({
      code: 'hello_required',
      ref: 'heartbeat',
    });
    expect(await answer({ v: 1, type: 'accept', attemptId: 't_x:1' })).toMatchObject({
      code: 'hello_required',
      ref: 'accept',
      attemptId: 't_x:1',
    });
    expect(await answer(null, true)).toMatchObject({ code: 'malformed_frame', ref: 'unknown' });
    expect(await answer('{"v":1,')).toMatchObject({ code: 'malformed_frame', ref: 'unknown' });
    expect(await answer({ v: 2, type: 'result', attemptId: 't_x:2' })).toMatchObject({
      code: 'unsupported_version',
      ref: 'result',
      attemptId: 't_x:2',
    });
    const badId = await answer({ v: 1, type: 'result', attemptId: 'nonsense', output: {} });
    expect(badId).toMatchObject({ code: 'malformed_frame', ref: 'result' });
    expect(badId.attemptId).toBeUndefined();
    expect(await answer({ v: 1, type: 'reject', attemptId: 't_x:3', reason: 5 })).toMatchObject({
      code: 'malformed_frame',
      ref: 'reject',
      attemptId: 't_x:3',
      message: expect.stringContaining('reason'),
    });
    // A hello naming one unregistered model: refused for that model, accepted for the rest.
    raw.send({ v: 1, type: 'hello', models: [MODEL, { name: 'ghost', version: '9' }], capacity: 1 });
    expect(await raw.error()).toMatchObject({ code: 'unknown_model', ref: 'hello' });
    await raw.take((f) => f.type === 'ack' && f.of === 'hello');
    for (const type of ['progress', 'accept', 'result', 'error'] as const) {
      const frame = { v: 1, type, attemptId: `t_nope:${type.length}`, output: {}, message: 'x' };
      expect(await answer(frame), type).toMatchObject({
        code: 'not_your_attempt',
        ref: type,
        attemptId: `t_nope:${type.length}`,
      });
    }
    // Every error frame so far (and no other frame) answered one of ours; none was `internal`.
    const errors = raw.received.filter((f): f is ErrorFrame => f.type === 'error');
    expect(errors).toHaveLength(12);
    expect(errors.every((e) => typeof e.ref === 'string')).toBe(true);
  });

  it('refuses a hello with NUL, a lone surrogate, 10,000-deep or oversized hardware: the node stays offline and gets no task', async () => {
    const { nodeId, raw } = await rawNode('bad-hello');
    raw.keepAlive(); // its heartbeats get hello_required (ref heartbeat) until a hello is accepted
    const models = [MODEL, EMBEDDING_MODEL];
    const hello = (extra: Record<string, unknown>) =>
      JSON.stringify({ v: 1, type: 'hello', models, capacity: 1, ...extra });
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const bad: Array<[string, string, RegExp]> = [
      [
        'NUL in hardware',
        hello({ hardware: { gpu: 'RTX\u00004090' } }),
        /^hardware\.gpu: must not contain NUL/,
      ],
      [
        'lone surrogate in hardware',
        hello({ hardware: { gpu: '\ud800' } }),
        /^hardware\.gpu: must not contain/,
      ],
      ['NUL in a hardware key', hello({ hardware: { 'g\u0000pu': 1 } }), /must not contain NUL/],
      [
        '10,000-deep hardware',
        hello({ hardware: {} }).replace('"hardware":{}', `"hardware":{"x":${deep}}`),
        /nested deeper than 64/,
      ],
      ['oversized hardware', hello({ hardware: { blob: 'x'.repeat(20_000) } }), /at most 16384/],
      [
        'NUL in a model name',
        hello({ models: [{ name: 'llama\u0000', version: '1' }] }),
        /^models\.0\.name: must not contain NUL/,
      ],
      ['lone surrogate in agent', hello({ agent: 'neurogrid-node/\udc00' }), /^agent: must not contain/],
    ];
    for (const [what, text, message] of bad) {
      raw.send(text);
      const error = await raw.error('hello');
      expect(error, what).toMatchObject({
        code: 'malformed_frame',
        ref: 'hello',
        message: expect.stringMatching(message),
      });
    }
    expect(raw.received.filter((f) => f.type === 'ack')).toEqual([]);
    const view = (await suite.s.admin.get(`/api/nodes/${nodeId}`)).body.node;
    expect(view).toMatchObject({ status: 'registered', online: false, heartbeat: null, hardware: {} });

    // Not dispatchable: a task for its model waits for a node instead of going to it.
    const taskId = await submit();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(raw.received.filter((f) => f.type === 'assign')).toEqual([]);
    expect((await suite.s.clientA.get(`/api/tasks/${taskId}`)).body.task.status).toBe('queued');

    // A valid hello on the same socket makes it online, and the waiting task comes to it.
    await raw.hello({ hardware: { gpu: 'RTX 4090' } });
    const assign = (await raw.take((f) => f.type === 'assign', 10_000)) as AssignFrame;
    expect(assign.taskId).toBe(taskId);
    expect((await suite.s.admin.get(`/api/nodes/${nodeId}`)).body.node).toMatchObject({
      status: 'online',
      online: true,
      hardware: { gpu: 'RTX 4090' },
    });
  });

  it('refuses a result whose output holds NUL with malformed_frame naming it, then takes a clean one', async () => {
    const { nodeId, raw } = await rawNode('nul-output');
    await raw.hello();
    raw.keepAlive();
    const taskId = await submit();
    const { attemptId } = (await raw.take((f) => f.type === 'assign', 10_000)) as AssignFrame;
    raw.send({ v: 1, type: 'accept', attemptId });
    await raw.take((f) => f.type === 'ack' && f.of === 'accept');
    raw.send({ v: 1, type: 'result', attemptId, output: { text: 'a\u0000b' } });
    expect(await raw.error('result', attemptId)).toMatchObject({
      code: 'malformed_frame',
      message: 'output.text: must not contain NUL characters or unpaired surrogates',
    });
    raw.send({ v: 1, type: 'result', attemptId, output: { text: 'clean', finishReason: 'stop' } });
    await raw.take((f) => f.type === 'ack' && f.of === 'result' && f.attemptId === attemptId);
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed']);
    expect(task).toMatchObject({ status: 'completed', nodeId, result: { text: 'clean' } });
    expect(raw.received.some((f) => f.type === 'error' && f.code === 'internal')).toBe(false);
  });

  it('returns the keyId at registration; revoking it closes the open socket with 4403 at once, and the key no longer connects', async () => {
    const r = await suite.s.ownerApi.post('/api/nodes/register', {
      name: 'revoked',
      models: [MODEL],
      capacity: 1,
    });
    expect(r.status).toBe(201);
    const { nodeKey, keyId } = r.body as { nodeKey: string; keyId: string };
    expect(keyId).toMatch(/^[0-9a-f-]{36}$/);
    const agent = await startNode(suite.coordinator.url, nodeKey);
    try {
      const fatal = once(agent, 'fatal');
      const disconnected = once(agent, 'disconnected');
      const started = Date.now();
      const revoked = await suite.s.admin.post(`/api/admin/keys/${keyId}/revoke`);
      expect(revoked.status).toBe(200);
      expect(await disconnected).toEqual([{ code: CLOSE_KEY_REVOKED, reason: 'key revoked' }]);
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(String((await fatal)[0])).toMatch(/revoked the node key \(4403\)/);
      expect(agent.stats.reconnects).toBe(0);
      const again = await connectRawNode(suite.coordinator.url, nodeKey);
      expect((await again.closed).code).toBe(CLOSE_UNAUTHORIZED);
    } finally {
      await agent.stop();
    }
  });
});
