import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { NodeAgent, type NodeAgentOptions } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import {
  CLOSE_KEY_REVOKED,
  CLOSE_UNAUTHORIZED,
  MAX_FRAME_BYTES,
  NODE_SOCKET_PATH,
} from '../protocol/frames.js';

// The agent against a minimal stand-in coordinator that speaks the protocol, until the real endpoint
// (api/nodes/socket.ts) exists and gets its own integration tests with this same agent.

const KEY = 'node-key-1';
type Frame = Record<string, unknown> & { type?: string; attemptId?: string };
/** How the fake answers a report: `n` counts the copies of this report type for this attempt (1 = first). */
type Answer = (frame: Frame, n: number) => 'ack' | 'internal' | 'attempt_closed' | 'none';

async function startFakeCoordinator(
  opts: { refuse?: 'close' | 'http'; ackResults?: boolean; answer?: Answer } = {},
) {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const received: { conn: number; frame: Frame; raw: string; at: number }[] = [];
  const sockets: WebSocket[] = [];
  const closeCodes: number[] = [];
  const state = { upgrades: 0, authorization: '', down: false };
  server.on('upgrade', (req, socket, head) => {
    state.upgrades++;
    if (state.down) return void socket.destroy();
    state.authorization = req.headers.authorization ?? '';
    const ok = req.url === NODE_SOCKET_PATH && req.headers.authorization === `Bearer ${KEY}`;
    if (!ok && opts.refuse === 'http')
      return void socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!ok) return ws.close(CLOSE_UNAUTHORIZED, 'unknown node key');
      const conn = sockets.push(ws) - 1;
      ws.on('close', (code) => closeCodes.push(code));
      ws.on('message', (data) => {
        const raw = String(data);
        let frame: Frame = {};
        try {
          frame = JSON.parse(raw) as Frame;
        } catch {}
        received.push({ conn, frame, raw, at: Date.now() });
        if (frame.type === 'hello')
          ws.send(
            JSON.stringify({ v: 1, type: 'ack', of: 'hello', nodeId: 'node-1', heartbeatIntervalMs: 100 }),
          );
        const { type, attemptId } = frame;
        if (!type || !['accept', 'reject', 'result', 'error'].includes(type)) return;
        const n = received.filter((r) => r.frame.type === type && r.frame.attemptId === attemptId).length;
        const fallback =
          (type === 'result' || type === 'error') && opts.ackResults !== false ? 'ack' : 'none';
        const answer = opts.answer?.(frame, n) ?? fallback;
        if (answer === 'ack') ws.send(JSON.stringify({ v: 1, type: 'ack', of: type, attemptId }));
        else if (answer !== 'none') {
          ws.send(
            JSON.stringify({ v: 1, type: 'error', code: answer, message: answer, ref: type, attemptId }),
          );
        }
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    sockets,
    closeCodes,
    state,
    frames: (type: string, conn?: number) =>
      received
        .filter((r) => r.frame.type === type && (conn === undefined || r.conn === conn))
        .map((r) => r.frame),
    /** Send to the newest connection. */
    send: (frame: unknown) => sockets.at(-1)?.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    close: async () => {
      for (const ws of sockets) ws.terminate();
      await new Promise((r) => server.close(r));
    },
  };
}
type FakeCoordinator = Awaited<ReturnType<typeof startFakeCoordinator>>;

const assign = (
  attemptId: string,
  model = { name: 'llama-3.1-8b', version: '1', taskType: 'text_generation' },
) => ({
  v: 1,
  type: 'assign',
  attemptId,
  taskId: attemptId.split(':')[0],
  model,
  input: { prompt: `say ${attemptId}` },
  params: {},
  acceptTimeoutMs: 5_000,
  resultTimeoutMs: 30_000,
});

let coordinator: FakeCoordinator | undefined;
let agent: NodeAgent | undefined;
afterEach(async () => {
  await agent?.stop();
  await coordinator?.close();
  agent = coordinator = undefined;
});

async function setup(
  options: Partial<NodeAgentOptions> = {},
  fake: Parameters<typeof startFakeCoordinator>[0] = {},
) {
  const c = await startFakeCoordinator(fake);
  const a = new NodeAgent({
    coordinatorUrl: c.url,
    apiKey: KEY,
    models: [{ name: 'llama-3.1-8b', version: '1' }],
    capacity: 2,
    backend: simulatedBackend(),
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    ...options,
  });
  coordinator = c;
  agent = a;
  return { c, a };
}

describe('NodeAgent protocol', () => {
  it('authenticates, says hello, and heartbeats its load once acked', async () => {
    const { c, a } = await setup({ hardware: { gpu: 'none' } });
    const connected = once(a, 'connected');
    await a.start();
    expect(await connected).toEqual([{ nodeId: 'node-1', heartbeatIntervalMs: 100 }]);
    expect(c.state.authorization).toBe(`Bearer ${KEY}`);
    expect(c.frames('hello')[0]).toMatchObject({
      v: 1,
      models: [{ name: 'llama-3.1-8b', version: '1' }],
      capacity: 2,
      hardware: { gpu: 'none' },
      agent: expect.stringMatching(/^neurogrid-node\/\d/),
    });
    await expect.poll(() => c.frames('heartbeat').length).toBeGreaterThanOrEqual(3);
    expect(c.frames('heartbeat')[0]).toMatchObject({ load: 0, inflight: 0, metrics: expect.any(Object) });
    expect(a.stats).toMatchObject({ connected: true, nodeId: 'node-1', reconnects: 0 });
  });

  it('accepts an assignment, runs it on the backend and reports the result', async () => {
    const { c, a } = await setup();
    await a.start();
    const completed = once(a, 'completed');
    c.send(assign('task-a:1'));
    await completed;
    await expect.poll(() => c.frames('result')).toHaveLength(1);
    expect(c.frames('accept')).toEqual([{ v: 1, type: 'accept', attemptId: 'task-a:1' }]);
    expect(c.frames('result')[0]).toEqual({
      v: 1,
      type: 'result',
      attemptId: 'task-a:1',
      output: { text: 'echo: say task-a:1', finishReason: 'stop' },
      usage: { inputTokens: 2, outputTokens: 3 },
    });
    expect(a.stats).toMatchObject({ assigned: 1, accepted: 1, completed: 1, inflight: 0 });
  });

  it('rejects beyond capacity and for models it does not serve', async () => {
    const { c, a } = await setup({ capacity: 1, backend: simulatedBackend({ latencyMs: 10_000 }) });
    await a.start();
    c.send(assign('task-a:1'));
    c.send(assign('task-b:1'));
    c.send(assign('task-c:1', { name: 'other', version: '1', taskType: 'text_generation' }));
    await expect.poll(() => c.frames('reject')).toHaveLength(2);
    expect(c.frames('reject')).toEqual([
      { v: 1, type: 'reject', attemptId: 'task-b:1', reason: 'at capacity' },
      { v: 1, type: 'reject', attemptId: 'task-c:1', reason: 'model not served: other:1' },
    ]);
    await expect.poll(() => c.frames('heartbeat').at(-1)).toMatchObject({ load: 1, inflight: 1 });
  });

  it('reports a backend failure as an error frame', async () => {
    const { c, a } = await setup({ backend: simulatedBackend({ failureRate: 1 }) });
    await a.start();
    c.send(assign('task-a:1'));
    await expect
      .poll(() => c.frames('error'))
      .toEqual([{ v: 1, type: 'error', attemptId: 'task-a:1', message: 'simulated failure' }]);
    expect(a.stats.failed).toBe(1);
  });

  it('reports an output over the frame limit as an error instead of sending it', async () => {
    const huge = { run: async () => ({ output: { text: 'x'.repeat(MAX_FRAME_BYTES) } }) };
    const { c, a } = await setup({ backend: huge });
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('error')).toHaveLength(1);
    expect(c.frames('error')[0]?.message).toMatch(/^output too large to send: \d+ bytes, limit 8388608$/);
    expect(c.frames('result')).toEqual([]);
  });

  it('aborts a cancelled task and sends nothing for it', async () => {
    const { c, a } = await setup({ backend: simulatedBackend({ latencyMs: 10_000 }) });
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('accept')).toHaveLength(1);
    const cancelled = once(a, 'cancelled');
    c.send({ v: 1, type: 'cancel', attemptId: 'task-a:1', reason: 'timed out' });
    expect(await cancelled).toEqual([{ attemptId: 'task-a:1', reason: 'timed out' }]);
    await expect.poll(() => a.stats.inflight).toBe(0);
    await new Promise((r) => setTimeout(r, 150));
    expect([...c.frames('result'), ...c.frames('error')]).toEqual([]);
  });

  it('delivers a result computed while disconnected after it reconnects, and not again once acked', async () => {
    const { c, a } = await setup({ backend: simulatedBackend({ latencyMs: 300 }) });
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('accept')).toHaveLength(1);
    c.state.down = true;
    c.sockets[0]?.terminate();
    await once(a, 'completed');
    expect(a.stats.connected).toBe(false);
    c.state.down = false;
    await expect.poll(() => c.frames('result', 1)).toHaveLength(1);
    const second = c.received.filter((r) => r.conn === 1).map((r) => r.frame.type);
    expect(second.indexOf('hello')).toBeLessThan(second.indexOf('result'));
    expect(a.stats.reconnects).toBeGreaterThanOrEqual(1);

    c.sockets[1]?.terminate();
    await expect.poll(() => c.frames('hello', 2)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(c.frames('result', 2)).toEqual([]);
  });

  it('answers a duplicate assignment the same way and runs it once', async () => {
    const { c, a } = await setup({ backend: simulatedBackend({ latencyMs: 200 }) });
    await a.start();
    c.send(assign('task-a:1'));
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('result')).toHaveLength(1);
    expect(c.frames('accept')).toHaveLength(2);
    expect(a.stats).toMatchObject({ assigned: 1, completed: 1 });
  });

  it.each(['close', 'http'] as const)('stops for good when the key is refused (%s)', async (refuse) => {
    const { c, a } = await setup({ apiKey: 'wrong' }, { refuse });
    const fatal = once(a, 'fatal');
    await expect(a.start()).rejects.toThrow(/refused the node key \((4401|401)\)/);
    await fatal;
    await new Promise((r) => setTimeout(r, 200));
    expect(c.state.upgrades).toBe(1);
  });

  it('logs coordinator error frames and invalid frames without crashing', async () => {
    const { c, a } = await setup();
    await a.start();
    const coordinatorError = once(a, 'coordinator-error');
    const invalid = once(a, 'invalid-frame');
    c.send({ v: 1, type: 'error', code: 'malformed_frame', message: 'bad', ref: 'heartbeat' });
    c.send('{not json');
    expect((await coordinatorError)[0]).toMatchObject({ code: 'malformed_frame' });
    expect(await invalid).toEqual([{ problem: 'not JSON' }]);
    c.send({ v: 1, type: 'assign', attemptId: 'no-colon' });
    await once(a, 'invalid-frame');
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('result')).toHaveLength(1);
  });

  it('on stop(), reports aborted tasks and closes normally; with a drain timeout, lets them finish', async () => {
    const { c, a } = await setup({ backend: simulatedBackend({ latencyMs: 10_000 }) });
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => a.stats.inflight).toBe(1);
    await a.stop();
    expect(c.frames('error')).toEqual([
      { v: 1, type: 'error', attemptId: 'task-a:1', message: 'node shutting down' },
    ]);
    await expect.poll(() => c.closeCodes).toEqual([1000]);

    const d = await setup({ backend: simulatedBackend({ latencyMs: 200 }) });
    await d.a.start();
    d.c.send(assign('task-b:1'));
    await expect.poll(() => d.a.stats.inflight).toBe(1);
    await d.a.stop({ drainTimeoutMs: 5_000 });
    expect(d.c.frames('result')).toHaveLength(1);
    await c.close();
  });

  it('test behaviours: ignore, hang, and raw frames', async () => {
    const { c, a } = await setup({
      behaviour: {
        onAssign: (f) => (f.attemptId.startsWith('ignored') ? 'ignore' : 'accept'),
        afterAccept: 'hang',
      },
    });
    await a.start();
    c.send(assign('ignored-a:1'));
    c.send(assign('hung-a:1'));
    await expect.poll(() => c.frames('accept')).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(c.frames('accept')[0]?.attemptId).toBe('hung-a:1');
    expect([...c.frames('reject'), ...c.frames('result'), ...c.frames('error')]).toEqual([]);
    expect(a.sendRaw('{oops')).toBe(true);
    expect(a.sendFrame({ v: 1, type: 'result', attemptId: 'foreign:1', output: {} })).toBe(true);
    await expect.poll(() => c.received.map((r) => r.raw)).toContain('{oops');
    expect(c.frames('result')).toEqual([{ v: 1, type: 'result', attemptId: 'foreign:1', output: {} }]);
  });
});

describe('NodeAgent reports: kept until acked, sent again on internal or silence', () => {
  const fast = { initialDelayMs: 40, maxDelayMs: 200 };
  const sendTimes = (c: FakeCoordinator, type: string) =>
    c.received.filter((r) => r.frame.type === type).map((r) => r.at);

  it('sends a result answered internal again, with growing jittered delays, on the same connection until acked', async () => {
    const { c, a } = await setup(
      { reports: fast },
      { answer: (f, n) => (f.type === 'result' && n <= 3 ? 'internal' : 'ack') },
    );
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('result')).toHaveLength(4);
    expect(new Set(c.frames('result').map((f) => JSON.stringify(f))).size).toBe(1); // the same frame
    const gaps = sendTimes(c, 'result')
      .slice(1)
      .map((t, i) => t - (sendTimes(c, 'result')[i] as number));
    // Equal jitter: delay n is drawn from [ceiling/2, ceiling], ceiling = 40·2^n ms (capped at 200).
    expect(gaps[0]).toBeGreaterThanOrEqual(20 - 5);
    expect(gaps[2]).toBeGreaterThanOrEqual(80 - 5);
    await new Promise((r) => setTimeout(r, 400));
    expect(c.frames('result')).toHaveLength(4); // acked: never again
    expect(a.stats.reconnects).toBe(0);
  });

  it('sends a report again when it gets no answer within the ack timeout', async () => {
    const { c, a } = await setup(
      { reports: { ...fast, ackTimeoutMs: 150 }, backend: simulatedBackend({ latencyMs: 500 }) },
      { answer: (_f, n) => (n === 1 ? 'none' : 'ack') },
    );
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('accept')).toHaveLength(2); // the accept too, while the task runs
    await expect.poll(() => c.frames('result')).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 400));
    expect(c.frames('result')).toHaveLength(2);
  });

  it.each(['attempt_closed', 'not_your_attempt'] as const)(
    'stops sending a result refused with %s',
    async (code) => {
      const { c, a } = await setup(
        { reports: { ...fast, ackTimeoutMs: 100 } },
        { answer: (f) => (f.type === 'result' ? (code as 'attempt_closed') : 'ack') },
      );
      await a.start();
      c.send(assign('task-a:1'));
      await expect.poll(() => c.frames('result')).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 500));
      expect(c.frames('result')).toHaveLength(1);
    },
  );

  it('keeps running after an accept refused as attempt_closed (a copy may have been taken), and reports the result', async () => {
    const { c, a } = await setup(
      { backend: simulatedBackend({ latencyMs: 150 }) },
      { answer: (f) => (f.type === 'accept' ? 'attempt_closed' : 'ack') },
    );
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('result')).toHaveLength(1);
    expect(a.stats).toMatchObject({ completed: 1, cancelled: 0 });
  });

  it('reports an output the protocol refuses (NUL) as an error, which the coordinator can store', async () => {
    const nul = { run: async () => ({ output: { text: 'a\u0000b' } }) };
    const { c, a } = await setup({ backend: nul });
    await a.start();
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('error')).toHaveLength(1);
    expect(c.frames('error')[0]?.message).toMatch(/^output refused by the protocol: .*must not contain NUL/s);
    expect(c.frames('result')).toEqual([]);
  });

  it('stops for good when the coordinator closes with 4403 (key revoked)', async () => {
    const { c, a } = await setup();
    await a.start();
    const fatal = once(a, 'fatal');
    c.sockets[0]?.close(CLOSE_KEY_REVOKED, 'key revoked');
    expect(String((await fatal)[0])).toMatch(/revoked the node key \(4403\)/);
    await new Promise((r) => setTimeout(r, 200));
    expect(c.state.upgrades).toBe(1);
  });

  it('fails over between coordinator addresses: past one that is down, and to another when its socket drops', async () => {
    const first = await startFakeCoordinator();
    const second = await startFakeCoordinator();
    coordinator = second;
    const a = new NodeAgent({
      coordinatorUrl: [first.url, second.url],
      apiKey: KEY,
      models: [{ name: 'llama-3.1-8b', version: '1' }],
      capacity: 1,
      backend: simulatedBackend({ latencyMs: 10 }),
      reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    agent = a;
    try {
      first.state.down = true;
      await a.start();
      expect(second.frames('hello')).toHaveLength(1);
      expect(a.stats.coordinatorUrl).toBe(`${second.url.replace('http', 'ws')}${NODE_SOCKET_PATH}`);

      first.state.down = false;
      second.state.down = true;
      second.sockets[0]?.terminate();
      await expect.poll(() => first.frames('hello')).toHaveLength(1);
      await expect.poll(() => a.stats.connected).toBe(true);
      expect(a.stats.coordinatorUrl).toBe(`${first.url.replace('http', 'ws')}${NODE_SOCKET_PATH}`);
      first.send(assign('task-a:1'));
      await expect.poll(() => first.frames('result')).toHaveLength(1);
    } finally {
      await a.stop();
      await first.close();
    }
  });
});

describe('neurogrid-node CLI', () => {
  it('serves tasks with the simulated backend and exits 0 on SIGTERM, closing normally', async () => {
    const c = await startFakeCoordinator();
    coordinator = c;
    const bin = path.resolve(import.meta.dirname, '../node-agent/bin/neurogrid-node.js');
    const args = [
      '--coordinator',
      c.url,
      '--backend',
      'simulated',
      '--models',
      'llama-3.1-8b:1',
      '--sim-latency-ms',
      '10',
    ];
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH, NEUROGRID_NODE_KEY: KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = once(child, 'exit');
    await expect.poll(() => c.frames('hello'), { timeout: 15_000 }).toHaveLength(1);
    c.send(assign('task-a:1'));
    await expect.poll(() => c.frames('result')).toHaveLength(1);
    child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
    expect(c.closeCodes).toEqual([1000]);
    expect(output).toContain('"msg":"task completed"');
    expect(output).not.toContain(KEY);
  });
});
