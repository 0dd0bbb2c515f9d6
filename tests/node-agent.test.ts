import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BackendHttpError, openAiBackend } from '../node-agent/backends/openai.js';
import { SIMULATED_DIMENSIONS, simulatedBackend } from '../node-agent/backends/simulated.js';
import type { BackendTask } from '../node-agent/backends/types.js';
import { backoffDelay } from '../node-agent/backoff.js';
import { parseCliArgs } from '../node-agent/cli-args.js';
import { embeddingOutput, textGenerationOutput } from '../protocol/task-types.js';
import { type FakeOpenAi, startFakeOpenAi } from './helpers/fake-openai.js';

const ROOT = path.resolve(import.meta.dirname, '..');

const textTask = (input: unknown, params: Record<string, unknown> = {}): BackendTask => ({
  taskId: 't1',
  attemptId: 't1:1',
  model: { name: 'llama-3.1-8b', version: '1', taskType: 'text_generation' },
  input,
  params,
});
const embeddingTask = (input: unknown, params: Record<string, unknown> = {}): BackendTask => ({
  taskId: 't2',
  attemptId: 't2:1',
  model: { name: 'bge-small', version: '1', taskType: 'embedding' },
  input,
  params,
});
const never = new AbortController().signal;

describe('openAiBackend against an OpenAI-compatible server', () => {
  let fake: FakeOpenAi;
  beforeAll(async () => {
    fake = await startFakeOpenAi();
  });
  afterAll(() => fake.close());
  beforeEach(() => {
    fake.requests.length = 0;
    fake.set({ latencyMs: 0, failStatus: undefined, errorMessage: 'fake failure' });
  });

  it('maps a prompt and params to a chat completion, through the model map', async () => {
    const backend = openAiBackend({
      baseUrl: `${fake.url}/v1/`,
      apiKey: 'sk-backend',
      modelMap: { 'llama-3.1-8b:1': 'meta-llama/Llama-3.1-8B-Instruct', 'llama-3.1-8b': 'wrong' },
    });
    const params = { maxTokens: 64, temperature: 0.5, topP: 0.9, stop: ['\n'], seed: 7 };
    const result = await backend.run(textTask({ prompt: 'hello there' }, params), never);

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0];
    expect(req?.path).toBe('/v1/chat/completions');
    expect(req?.headers.authorization).toBe('Bearer sk-backend');
    expect(req?.body).toMatchObject({
      model: 'meta-llama/Llama-3.1-8B-Instruct',
      messages: [{ role: 'user', content: 'hello there' }],
      max_tokens: 64,
      temperature: 0.5,
      top_p: 0.9,
      stop: ['\n'],
      seed: 7,
    });
    expect(result).toEqual({
      output: { text: 'reply: hello there', finishReason: 'stop' },
      usage: { inputTokens: 2, outputTokens: 3 },
    });
    expect(textGenerationOutput.safeParse(result.output).success).toBe(true);
  });

  it('passes messages through, and falls back to the bare name, then the model name itself', async () => {
    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
    ];
    await openAiBackend({ baseUrl: fake.url, modelMap: { 'llama-3.1-8b': 'by-name' } }).run(
      textTask({ messages }),
      never,
    );
    await openAiBackend({ baseUrl: fake.url }).run(textTask({ prompt: 'x' }), never);
    expect(fake.requests.map((r) => (r.body as { model: string }).model)).toEqual([
      'by-name',
      'llama-3.1-8b',
    ]);
    expect(fake.requests[0]?.body).toMatchObject({ messages });
    expect(fake.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('returns embeddings ordered by index, one per input', async () => {
    const backend = openAiBackend({ baseUrl: fake.url });
    const result = await backend.run(embeddingTask({ texts: ['a', 'bb', 'ccc'] }, { dimensions: 3 }), never);
    expect(fake.requests[0]?.path).toBe('/v1/embeddings');
    expect(fake.requests[0]?.body).toMatchObject({
      model: 'bge-small',
      input: ['a', 'bb', 'ccc'],
      dimensions: 3,
    });
    expect(result.output).toEqual({
      embeddings: [
        [0, 1, 0],
        [1, 2, 0],
        [2, 3, 0],
      ],
    });
    expect(result.usage).toEqual({ inputTokens: 3, outputTokens: 0 });
    expect(embeddingOutput.safeParse(result.output).success).toBe(true);

    await backend.run(embeddingTask({ text: 'one' }), never);
    expect(fake.requests[1]?.body).toMatchObject({ input: 'one' });
  });

  it('turns HTTP 500 and 429 into errors carrying the status and a short message', async () => {
    const backend = openAiBackend({ baseUrl: fake.url });
    fake.set({ failStatus: 500, errorMessage: 'x'.repeat(5_000) });
    const err = await backend.run(textTask({ prompt: 'hi' }), never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendHttpError);
    expect((err as BackendHttpError).status).toBe(500);
    expect((err as Error).message).toMatch(/^backend HTTP 500: x+…$/);
    expect((err as Error).message.length).toBeLessThan(250);

    fake.set({ failStatus: 429, errorMessage: 'rate limited' });
    await expect(backend.run(textTask({ prompt: 'hi' }), never)).rejects.toThrow(
      'backend HTTP 429: rate limited',
    );
  });

  it('rejects invalid input and params before calling the server', async () => {
    const backend = openAiBackend({ baseUrl: fake.url });
    await expect(backend.run(textTask({ prompt: '' }), never)).rejects.toThrow(
      /invalid text_generation input/,
    );
    await expect(backend.run(textTask({ prompt: 'x' }, { max_tokens: 5 }), never)).rejects.toThrow(
      /invalid text_generation params/,
    );
    expect(fake.requests).toHaveLength(0);
  });

  it('cancels the HTTP request when the signal aborts', async () => {
    fake.set({ latencyMs: 5_000 });
    const controller = new AbortController();
    const started = Date.now();
    const run = openAiBackend({ baseUrl: fake.url }).run(textTask({ prompt: 'slow' }), controller.signal);
    await expect.poll(() => fake.requests.length).toBe(1);
    controller.abort(new Error('cancelled'));
    await expect(run).rejects.toThrow('cancelled');
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect.poll(() => fake.aborted).toBe(1);
  });

  it('times out a request that takes longer than timeoutMs', async () => {
    fake.set({ latencyMs: 2_000 });
    const backend = openAiBackend({ baseUrl: fake.url, timeoutMs: 100 });
    await expect(backend.run(textTask({ prompt: 'slow' }), never)).rejects.toThrow(
      'backend timed out after 100 ms',
    );
  });
});

describe('simulatedBackend', () => {
  it('produces text outputs that pass the output schema, with usage from word counts', async () => {
    const result = await simulatedBackend().run(textTask({ prompt: 'the quick brown fox' }), never);
    expect(result).toEqual({
      output: { text: 'echo: the quick brown fox', finishReason: 'stop' },
      usage: { inputTokens: 4, outputTokens: 5 },
    });
    expect(textGenerationOutput.safeParse(result.output).success).toBe(true);
  });

  it('produces one deterministic vector per input, the same on every simulated node', async () => {
    const task = embeddingTask({ texts: ['a', 'b'] });
    const a = await simulatedBackend({ seed: 1 }).run(task, never);
    const b = await simulatedBackend({ seed: 2 }).run(task, never);
    expect(embeddingOutput.safeParse(a.output).success).toBe(true);
    expect(a.output).toEqual(b.output);
    const { embeddings } = a.output as { embeddings: number[][] };
    expect(embeddings).toHaveLength(2);
    expect(embeddings[0]).toHaveLength(SIMULATED_DIMENSIONS);
    expect(embeddings[0]).not.toEqual(embeddings[1]);
    const dims = await simulatedBackend().run(embeddingTask({ text: 'a' }, { dimensions: 20 }), never);
    expect((dims.output as { embeddings: number[][] }).embeddings[0]).toHaveLength(20);
  });

  it('with invalidOutput, returns outputs that fail the output schemas', async () => {
    const backend = simulatedBackend({ invalidOutput: true });
    const text = await backend.run(textTask({ prompt: 'x' }), never);
    const vectors = await backend.run(embeddingTask({ text: 'x' }), never);
    expect(textGenerationOutput.safeParse(text.output).success).toBe(false);
    expect(embeddingOutput.safeParse(vectors.output).success).toBe(false);
  });

  it('fails with "simulated failure" at failureRate 1, and rejects at once when aborted', async () => {
    await expect(simulatedBackend({ failureRate: 1 }).run(textTask({ prompt: 'x' }), never)).rejects.toThrow(
      'simulated failure',
    );
    const controller = new AbortController();
    const run = simulatedBackend({ latencyMs: 10_000 }).run(textTask({ prompt: 'x' }), controller.signal);
    controller.abort(new Error('stop'));
    await expect(run).rejects.toThrow('stop');
  });
});

describe('reconnect backoff', () => {
  const options = { initialDelayMs: 250, maxDelayMs: 15_000 };

  it('doubles the ceiling each attempt, never waits under half of it, and is capped', () => {
    const low = [0, 1, 2, 3, 4, 5, 6, 7, 10, 50].map((n) => backoffDelay(n, options, () => 0));
    const high = [0, 1, 2, 3, 4, 5, 6, 7, 10, 50].map((n) => backoffDelay(n, options, () => 1));
    expect(high).toEqual([250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000, 15_000]);
    expect(low).toEqual(high.map((d) => d / 2));
    for (let n = 0; n < 100; n++) expect(backoffDelay(n, options)).toBeLessThanOrEqual(15_000);
  });
});

describe('neurogrid-node arguments', () => {
  const env = { NEUROGRID_NODE_KEY: 'node-key' };
  const base = ['--coordinator', 'http://127.0.0.1:3000', '--models', 'llama-3.1-8b:1,bge-small:1'];

  it('builds the agent configuration from flags and environment fallbacks', () => {
    const parsed = parseCliArgs([...base, '--concurrency', '2', '--model-map', 'llama-3.1-8b=meta/llama'], {
      ...env,
      NEUROGRID_BACKEND_URL: 'http://127.0.0.1:8000',
      NEUROGRID_BACKEND_API_KEY: 'sk-x',
    });
    expect(parsed).toMatchObject({
      kind: 'run',
      config: {
        apiKey: 'node-key',
        concurrency: 2,
        models: [
          { name: 'llama-3.1-8b', version: '1' },
          { name: 'bge-small', version: '1' },
        ],
        backend: {
          kind: 'openai',
          baseUrl: 'http://127.0.0.1:8000',
          apiKey: 'sk-x',
          modelMap: { 'llama-3.1-8b': 'meta/llama' },
        },
      },
    });
  });

  it('takes several coordinator addresses: comma-separated, repeated, or from the environment', () => {
    const urls = (argv: string[], extraEnv: Record<string, string> = {}) => {
      const parsed = parseCliArgs([...argv, '--backend', 'simulated', '--models', 'm:1'], {
        ...env,
        ...extraEnv,
      });
      return parsed.kind === 'run' ? parsed.config.coordinatorUrls : parsed;
    };
    const two = ['http://a.example:3000', 'https://b.example'];
    expect(urls(['--coordinator', 'http://a.example:3000, https://b.example'])).toEqual(two);
    expect(urls(['--coordinator', two[0] as string, '--coordinator', two[1] as string])).toEqual(two);
    expect(urls([], { NEUROGRID_COORDINATOR_URL: `${two.join(',')},${two[0]}` })).toEqual(two);
    expect(urls(['--coordinator', 'http://a.example:3000,ftp://b'])).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('--coordinator (or NEUROGRID_COORDINATOR_URL) must be an http://'),
    });
    expect(urls(['--coordinator', ' , '])).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('is required'),
    });
  });

  it.each([
    [['--concurrency', '0'], '--concurrency must be an integer from 1 to 1024'],
    [['--models', 'llama'], '--models must be a list of name:version'],
    [['--backend', 'gpu'], '--backend must be openai or simulated'],
    [[], '--backend-url (or NEUROGRID_BACKEND_URL) is required with --backend openai'],
    [['--key', 'secret'], '--key is not accepted: set NEUROGRID_NODE_KEY instead'],
  ])('%j → %s', (extra, message) => {
    const parsed = parseCliArgs([...base, ...extra], env);
    expect(parsed.kind).toBe('error');
    expect((parsed as { message: string }).message).toContain(message);
  });

  const cli = (args: string[], childEnv: Record<string, string>) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'node-agent/cli.ts', ...args], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, ...childEnv },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on('exit', (code) => resolve({ code, stderr }));
    });

  it('exits 2 naming an unknown flag', async () => {
    const { code, stderr } = await cli([...base, '--concurency', '2'], env);
    expect(code).toBe(2);
    expect(stderr).toContain("Unknown option '--concurency'");
  });

  it('exits 2 naming NEUROGRID_NODE_KEY when it is missing', async () => {
    const { code, stderr } = await cli([...base, '--backend', 'simulated'], {});
    expect(code).toBe(2);
    expect(stderr).toContain('NEUROGRID_NODE_KEY is required');
  });
});
