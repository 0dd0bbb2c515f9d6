import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, TEST_ADMIN_KEY, type TestApi } from './helpers/api.js';

// REST admission of tasks: every bad input answers the right 4xx with a message, and creates nothing.
describe('tasks REST API', () => {
  let api: TestApi;
  let clientKey: string;
  let otherClientKey: string;
  let ownerKey: string;

  const admin = (method: string, path: string, body?: unknown) =>
    api.call(method, path, { key: TEST_ADMIN_KEY, body });
  const asClient = (method: string, path: string, opts: Parameters<TestApi['call']>[2] = {}) =>
    api.call(method, path, { key: clientKey, ...opts });
  const taskCount = () => api.services.prisma.task.count();

  beforeAll(async () => {
    // No worker polls this queue: admitted tasks stay queued, which is all these tests need.
    api = await startTestApi({ TEMPORAL_TASK_QUEUE: `tq-rest-${randomBytes(4).toString('hex')}` });
    clientKey = (await admin('POST', '/api/admin/clients', { name: 'A' })).body.apiKey;
    otherClientKey = (await admin('POST', '/api/admin/clients', { name: 'B' })).body.apiKey;
    ownerKey = (await admin('POST', '/api/admin/node-owners', { name: 'O' })).body.apiKey;
    const model = { taskType: 'text_generation', maxInputBytes: 200, maxOutputTokens: 64 };
    expect((await admin('POST', '/api/models', { name: 'llm', version: '1', ...model })).status).toBe(201);
    const retired = await admin('POST', '/api/models', {
      name: 'retired',
      version: '1',
      ...model,
      active: false,
    });
    expect(retired.status).toBe(201);
  });
  afterAll(() => api?.close());

  it('admits a valid task with 202, a Location header and status queued', async () => {
    const r = await asClient('POST', '/api/tasks', { body: { model: 'llm', input: { prompt: 'hi' } } });
    expect(r.status).toBe(202);
    expect(r.body.task).toMatchObject({
      status: 'queued',
      model: { name: 'llm', version: '1' },
      attempts: 0,
    });
    expect(r.headers.get('location')).toBe(`/api/tasks/${r.body.task.id}`);
  });

  it.each([
    [
      'unknown model',
      { model: 'nope', input: { prompt: 'x' } },
      422,
      'validation_failed',
      'model: no active model nope',
    ],
    [
      'inactive model',
      { model: 'retired', input: { prompt: 'x' } },
      422,
      'validation_failed',
      'model: no active model retired',
    ],
    [
      'unknown version',
      { model: 'llm', version: '9', input: { prompt: 'x' } },
      422,
      'validation_failed',
      'model: no active model llm:9',
    ],
    ['missing model', { input: { prompt: 'x' } }, 400, 'validation_failed', 'model: '],
    ['missing input', { model: 'llm' }, 400, 'validation_failed', 'input: '],
    ['wrong type of model', { model: 42, input: { prompt: 'x' } }, 400, 'validation_failed', 'model: '],
    ['input of the wrong shape', { model: 'llm', input: { text: 'x' } }, 400, 'validation_failed', 'input: '],
    [
      'unknown param',
      { model: 'llm', input: { prompt: 'x' }, params: { temperatur: 1 } },
      400,
      'validation_failed',
      'params: ',
    ],
    [
      'param of the wrong type',
      { model: 'llm', input: { prompt: 'x' }, params: { temperature: 'hot' } },
      400,
      'validation_failed',
      'params: temperature',
    ],
    [
      'maxTokens over the model limit',
      { model: 'llm', input: { prompt: 'x' }, params: { maxTokens: 65 } },
      400,
      'validation_failed',
      'params.maxTokens: at most 64',
    ],
    [
      'unknown field (mass assignment)',
      { model: 'llm', input: { prompt: 'x' }, status: 'completed' },
      400,
      'validation_failed',
      'Unrecognized key',
    ],
    [
      'priority out of range',
      { model: 'llm', input: { prompt: 'x' }, priority: 10 },
      400,
      'validation_failed',
      'priority: ',
    ],
    [
      'oversized input',
      { model: 'llm', input: { prompt: 'x'.repeat(500) } },
      413,
      'payload_too_large',
      'accepts at most 200',
    ],
  ])('refuses %s with %i and creates nothing', async (_name, body, status, code, message) => {
    const before = await taskCount();
    const r = await asClient('POST', '/api/tasks', { body });
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe(code);
    expect(r.body.error.message).toContain(message);
    expect(await taskCount()).toBe(before);
  });

  it('refuses bad JSON, a non-JSON content type and a bad Idempotency-Key, creating nothing', async () => {
    const before = await taskCount();
    const badJson = await asClient('POST', '/api/tasks', {
      raw: '{"model": "llm", ',
      headers: { 'content-type': 'application/json' },
    });
    expect(badJson).toMatchObject({
      status: 400,
      body: { error: { code: 'bad_request', message: 'request body is not valid JSON' } },
    });
    const text = await asClient('POST', '/api/tasks', {
      raw: 'model=llm',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    const key = await asClient('POST', '/api/tasks', {
      body: { model: 'llm', input: { prompt: 'x' } },
      headers: { 'idempotency-key': 'spaces are not allowed' },
    });
    expect(key.status).toBe(400);
    expect(key.body.error.message).toMatch(/^Idempotency-Key: /);
    expect(await taskCount()).toBe(before);
  });

  it('lets only clients submit: a node owner gets 403, no key 401', async () => {
    const body = { model: 'llm', input: { prompt: 'x' } };
    expect((await api.call('POST', '/api/tasks', { key: ownerKey, body })).status).toBe(403);
    expect((await api.call('POST', '/api/tasks', { body })).status).toBe(401);
  });

  it('answers 404 for an unknown task id, a malformed one and another client’s task', async () => {
    const mine = await asClient('POST', '/api/tasks', { body: { model: 'llm', input: { prompt: 'mine' } } });
    const id = mine.body.task.id;
    const notFound = { error: { code: 'not_found', message: 'task not found' } };
    for (const path of [
      `/api/tasks/t_${'a'.repeat(26)}`,
      '/api/tasks/..%2F..%2Fetc',
      `/api/tasks/${id}/result`,
    ]) {
      const key = path.endsWith('/result') ? otherClientKey : clientKey;
      const r = await api.call('GET', path, { key });
      expect(r.status, path).toBe(404);
      expect(r.body).toEqual(notFound);
    }
    expect((await api.call('GET', `/api/tasks/${id}`, { key: otherClientKey })).status).toBe(404);
    expect((await api.call('POST', `/api/tasks/${id}/cancel`, { key: otherClientKey })).status).toBe(404);
    expect((await asClient('GET', `/api/tasks/${id}`)).status).toBe(200);
    expect((await admin('GET', `/api/tasks/${id}`)).status).toBe(200);
  });

  it('answers 202 on the result of a task still running', async () => {
    const r = await asClient('POST', '/api/tasks', { body: { model: 'llm', input: { prompt: 'wait' } } });
    const result = await asClient('GET', `/api/tasks/${r.body.task.id}/result`);
    expect(result).toMatchObject({ status: 202, body: { id: r.body.task.id, status: 'queued' } });
  });

  it('lists only the caller’s tasks, filtered by status, page by page', async () => {
    for (let i = 0; i < 3; i++)
      await api.call('POST', '/api/tasks', {
        key: otherClientKey,
        body: { model: 'llm', input: { prompt: `b${i}` } },
      });
    const first = await api.call('GET', '/api/tasks?limit=2&status=queued', { key: otherClientKey });
    expect(first.status).toBe(200);
    expect(first.body.tasks).toHaveLength(2);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await api.call('GET', `/api/tasks?limit=2&status=queued&cursor=${first.body.nextCursor}`, {
      key: otherClientKey,
    });
    expect(second.body.tasks).toHaveLength(1);
    expect(second.body.nextCursor).toBeNull();
    const ids = [...first.body.tasks, ...second.body.tasks].map((t: { id: string }) => t.id);
    expect(new Set(ids).size).toBe(3);
    expect(
      (await api.call('GET', '/api/tasks?status=completed', { key: otherClientKey })).body.tasks,
    ).toEqual([]);
    expect((await api.call('GET', '/api/tasks?status=bogus', { key: otherClientKey })).status).toBe(400);
    expect((await api.call('GET', '/api/tasks?cursor=garbage', { key: otherClientKey })).status).toBe(400);
  });

  it('answers 404 for an unknown node id', async () => {
    const r = await admin('GET', '/api/nodes/00000000-0000-4000-8000-000000000000');
    expect(r).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });
});
