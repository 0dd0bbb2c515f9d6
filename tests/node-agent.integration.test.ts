import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMBEDDING_MODEL, eventually, MODEL, useCoordinator, waitForStatus } from './helpers/coordinator.js';
import { type FakeOpenAi, startFakeOpenAi } from './helpers/fake-openai.js';

// What a node operator runs: the `neurogrid-node` CLI in front of an OpenAI-compatible server (the fake
// stands for that server, which is outside the product), against the real coordinator.
describe('neurogrid-node CLI against the coordinator', () => {
  const suite = useCoordinator();
  let openai: FakeOpenAi;
  let cli: ChildProcess;
  let output = '';
  let key: string;

  beforeAll(async () => {
    openai = await startFakeOpenAi();
    ({ key } = await suite.s.registerNode('operator-node'));
    const bin = path.resolve(import.meta.dirname, '../node-agent/bin/neurogrid-node.js');
    cli = spawn(
      process.execPath,
      [
        bin,
        '--coordinator',
        suite.coordinator.url,
        '--backend-url',
        openai.url,
        '--models',
        `${MODEL.name}:${MODEL.version},${EMBEDDING_MODEL.name}:${EMBEDDING_MODEL.version}`,
        '--concurrency',
        '2',
      ],
      { env: { PATH: process.env.PATH, NEUROGRID_NODE_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cli.stdout?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    cli.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    await eventually(async () =>
      output.includes('"msg":"connected to the coordinator"') ? true : undefined,
    );
  });

  afterAll(async () => {
    if (cli && cli.exitCode === null) {
      cli.kill('SIGTERM');
      await once(cli, 'exit');
    }
    await openai?.close();
  });

  it('serves a text-generation task through the inference server', async () => {
    const r = await suite.s.clientA.post('/api/tasks', {
      model: MODEL.name,
      input: { messages: [{ role: 'user', content: 'ping' }] },
      params: { maxTokens: 16, temperature: 0.2 },
    });
    expect(r.status).toBe(202);
    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed', 'failed']);
    expect(task.status, task.failureReason).toBe('completed');
    expect(task.result.text).toBe('reply: ping');
    const call = openai.requests.find((q) => q.path === '/v1/chat/completions');
    expect(call?.body).toMatchObject({
      model: MODEL.name,
      messages: [{ role: 'user', content: 'ping' }],
      max_tokens: 16,
      temperature: 0.2,
    });
  });

  it('serves an embedding task with one vector per input, in input order', async () => {
    const r = await suite.s.clientA.post('/api/tasks', {
      model: EMBEDDING_MODEL.name,
      input: { texts: ['a', 'bbb'] },
    });
    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed', 'failed']);
    expect(task.status, task.failureReason).toBe('completed');
    expect(task.result.embeddings).toHaveLength(2);
    expect(task.result.embeddings.map((v: number[]) => v[1])).toEqual([1, 3]); // the fake encodes text length
  });

  it('moves the task on when the inference server fails, and the task fails after every node tried', async () => {
    openai.set({ failStatus: 500 });
    const r = await suite.s.clientA.post('/api/tasks', {
      model: MODEL.name,
      input: { prompt: 'boom' },
      queueTimeoutMs: 2_000,
    });
    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed', 'failed']);
    openai.set({ failStatus: undefined });
    expect(task.status).toBe('failed');
    expect(task.attemptHistory[0]).toMatchObject({ outcome: 'error', error: expect.stringContaining('500') });
    expect(output).not.toContain(key);
  });
});
