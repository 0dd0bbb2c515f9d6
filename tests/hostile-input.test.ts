import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_AMOUNT } from '../lib/ledger/money.js';
import { MAX_JSON_DEPTH, MAX_JSON_NODES } from '../protocol/text.js';
import { type ApiClient, apiClient, EMBEDDING_MODEL, MODEL, useCoordinator } from './helpers/coordinator.js';

// Values PostgreSQL cannot store, JSON too deep for a recursive walker, amounts past BIGINT: every one
// is a 4xx naming what is wrong, and nothing of the request is stored. Bodies are sent as raw text with
// JSON escapes, as an outside client would send them.
describe('hostile input over REST', () => {
  const suite = useCoordinator();
  const prisma = () => suite.coordinator.services.prisma;
  const as = (key: string) => apiClient(suite.coordinator.url, key);
  const UNSAFE = 'must not contain NUL characters or unpaired surrogates';

  /** The JSON escape of each kind of unsafe text, and the character it decodes to. */
  const ESCAPES = [
    ['NUL', '\\u0000', '\u0000'],
    ['a lone surrogate', '\\ud800', '\ud800'],
  ] as const;
  /** `value` as JSON text, every `§` (in a key or a value) replaced by `x<escape>y`. */
  const raw = (value: unknown, escaped: string) => JSON.stringify(value).replaceAll('§', `x${escaped}y`);

  let node: { id: string; api: ApiClient };
  let nodeOwnerId: string;

  /** Every table a refused request could have written to, and client A's balance. */
  async function snapshot() {
    const db = prisma();
    const [tasks, clients, nodeOwners, nodes, apiKeys, models, ledger, withdrawals, samples, balance] =
      await Promise.all([
        db.task.count(),
        db.client.count(),
        db.nodeOwner.count(),
        db.node.count(),
        db.apiKey.count(),
        db.model.count(),
        db.ledgerTransaction.count(),
        db.withdrawal.count(),
        db.nodeMetricSample.count(),
        suite.s.clientA.get(`/api/tokens/balance/client:${suite.s.clientAId}`),
      ]);
    const counts = { tasks, clients, nodeOwners, nodes, apiKeys, models, ledger, withdrawals, samples };
    return { ...counts, balance: balance.body };
  }

  beforeAll(async () => {
    const { nodeId, key } = await suite.s.registerNode('hostile-node');
    node = { id: nodeId, api: as(key) };
    nodeOwnerId = (await prisma().node.findUniqueOrThrow({ where: { id: nodeId } })).ownerId;
  });

  type Sender = () => ApiClient;
  const admin: Sender = () => suite.s.admin;
  const client: Sender = () => suite.s.clientA;
  const owner: Sender = () => suite.s.ownerApi;
  const theNode: Sender = () => node.api;
  const prompt = { prompt: 'hello' };

  /**
   * [what, who, path, body (or a function making it) with `§` where the unsafe text goes, the field path
   * the answer names, headers]
   */
  const fields: Array<[string, Sender, () => string, unknown, string, Record<string, string>?]> = [
    [
      'task input.prompt',
      client,
      () => '/api/tasks',
      { model: MODEL.name, input: { prompt: '§' } },
      'input.prompt',
    ],
    [
      'task input.messages',
      client,
      () => '/api/tasks',
      { model: MODEL.name, input: { messages: [{ role: 'user', content: '§' }] } },
      'input.messages.0.content',
    ],
    [
      'embedding input.texts',
      client,
      () => '/api/tasks',
      { model: EMBEDDING_MODEL.name, input: { texts: ['ok', '§'] } },
      'input.texts.1',
    ],
    [
      'task params value',
      client,
      () => '/api/tasks',
      { model: MODEL.name, input: prompt, params: { stop: ['§'] } },
      'params.stop.0',
    ],
    [
      'task params key',
      client,
      () => '/api/tasks',
      { model: MODEL.name, input: prompt, params: { '§': 1 } },
      'params.§',
    ],
    ['task input key', client, () => '/api/tasks', { model: MODEL.name, input: { '§': 'x' } }, 'input.§'],
    ['task model name', client, () => '/api/tasks', { model: '§', input: prompt }, 'model'],
    [
      'task model version',
      client,
      () => '/api/tasks',
      { model: MODEL.name, version: '§', input: prompt },
      'version',
    ],
    ['node name', owner, () => '/api/nodes/register', { name: '§', models: [MODEL], capacity: 1 }, 'name'],
    [
      'node model name',
      owner,
      () => '/api/nodes/register',
      { name: 'n', models: [{ name: '§', version: '1' }], capacity: 1 },
      'models.0.name',
    ],
    [
      'node hardware key',
      owner,
      () => '/api/nodes/register',
      { name: 'n', models: [MODEL], capacity: 1, hardware: { '§': 'A100' } },
      'hardware.§',
    ],
    [
      'node hardware value',
      owner,
      () => '/api/nodes/register',
      { name: 'n', models: [MODEL], capacity: 1, hardware: { gpus: [{ model: '§' }] } },
      'hardware.gpus.0.model',
    ],
    ['client name', admin, () => '/api/admin/clients', { name: '§' }, 'name'],
    ['node owner name', admin, () => '/api/admin/node-owners', { name: '§' }, 'name'],
    [
      'client key label',
      admin,
      () => `/api/admin/clients/${suite.s.clientAId}/keys`,
      { label: '§' },
      'label',
    ],
    [
      'node owner key label',
      admin,
      () => `/api/admin/node-owners/${nodeOwnerId}/keys`,
      { label: '§' },
      'label',
    ],
    [
      'top-up note',
      admin,
      () => '/api/tokens/topup',
      () => ({ clientId: suite.s.clientAId, amount: '5', note: '§' }),
      'note',
      { 'Idempotency-Key': 'hostile-note' },
    ],
    [
      'withdrawal destination',
      theNode,
      () => '/api/tokens/withdraw',
      { amount: '100', destination: '§' },
      'destination',
      { 'Idempotency-Key': 'hostile-destination' },
    ],
  ];

  describe.each(ESCAPES)('with %s', (_kind, escaped, char) => {
    it.each(fields)(
      'refuses it in the %s with 400 naming the field, storing nothing',
      async (_what, who, path, body, field, headers) => {
        const before = await snapshot();
        const r = await who().post(path(), raw(typeof body === 'function' ? body() : body, escaped), headers);
        expect(r.status, JSON.stringify(r.body)).toBe(400);
        expect(r.body.error).toMatchObject({
          code: 'validation_failed',
          message: `${field.replaceAll('§', `x${char}y`)}: ${UNSAFE}`,
        });
        expect(await snapshot()).toEqual(before);
      },
    );
  });

  it('refuses NUL in a query string with 400 naming the parameter', async () => {
    for (const path of [
      '/api/tasks?cursor=a%00b',
      `/api/tokens/history/client:${suite.s.clientAId}?cursor=a%00b`,
    ]) {
      const r = await suite.s.clientA.get(path);
      expect(r.status, path).toBe(400);
      expect(r.body.error).toEqual({ code: 'validation_failed', message: `cursor: ${UNSAFE}` });
    }
    // The UTF-8 bytes of a surrogate are no UTF-8: the cursor stays undecoded and is refused as no cursor.
    const r = await suite.s.clientA.get('/api/tasks?cursor=%ED%A0%80');
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('validation_failed');
  });

  it('refuses cursors and times that decode but that PostgreSQL could not compare', async () => {
    const cursor = (at: string, id: string) => Buffer.from(JSON.stringify([at, id])).toString('base64url');
    for (const path of [
      `/api/tasks?cursor=${cursor('2026-01-01T00:00:00Z', 'x\u0000')}`,
      `/api/tasks?cursor=${cursor('+275760-09-13T00:00:00Z', 't_aaaaaaaaaaaaaaaaaaaaaaaaaa')}`,
      `/api/tokens/history/client:${suite.s.clientAId}?since=0000-01-01T00:00:00Z`,
      `/api/nodes/${node.id}/metrics?since=0001-01-01T00:00:00%2B01:00`,
    ]) {
      const r = await (path.startsWith('/api/nodes') ? suite.s.ownerApi : suite.s.clientA).get(path);
      expect(r.status, path).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
    }
  });

  it('refuses heartbeat counters beyond an INTEGER column with 400', async () => {
    const before = await snapshot();
    for (const body of [
      { load: 0.5, inflight: 2 ** 31 },
      { load: 0.5, inflight: 1, metrics: { memUsedMb: 2 ** 40 } },
    ]) {
      const r = await node.api.post(`/api/nodes/${node.id}/heartbeat`, body);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
    }
    expect(await snapshot()).toEqual(before);
  });

  describe('JSON nesting and size, judged before parsing', () => {
    const deep = (levels: number, leaf = '1') => '{"a":'.repeat(levels) + leaf + '}'.repeat(levels);
    const tooDeep = `request body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`;

    it('refuses task input nested 10,000 deep with 400', async () => {
      const before = await snapshot();
      const body = `{"model":"${MODEL.name}","input":${deep(10_000)}}`;
      expect(body.length).toBeGreaterThan(60_000);
      const r = await suite.s.clientA.post('/api/tasks', body);
      expect(r.status).toBe(400);
      expect(r.body.error).toEqual({ code: 'validation_failed', message: tooDeep });
      expect(await snapshot()).toEqual(before);
    });

    it('refuses node hardware nested 10,000 deep with 400', async () => {
      const before = await snapshot();
      const r = await suite.s.ownerApi.post(
        '/api/nodes/register',
        `{"name":"deep","models":[${JSON.stringify(MODEL)}],"capacity":1,"hardware":${deep(10_000)}}`,
      );
      expect(r.status).toBe(400);
      expect(r.body.error).toEqual({ code: 'validation_failed', message: tooDeep });
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a whole body nested 10,000 deep with 400', async () => {
      const before = await snapshot();
      for (const body of ['['.repeat(10_000) + ']'.repeat(10_000), deep(10_000)]) {
        const r = await suite.s.admin.post('/api/admin/clients', body);
        expect(r.status).toBe(400);
        expect(r.body.error).toEqual({ code: 'validation_failed', message: tooDeep });
      }
      // Unbalanced and unparseable: still refused by depth, before JSON.parse sees it.
      const r = await suite.s.admin.post('/api/admin/clients', '['.repeat(10_000));
      expect(r.status).toBe(400);
      expect(await snapshot()).toEqual(before);
    });

    it(`accepts nesting up to ${MAX_JSON_DEPTH} levels and refuses one more`, async () => {
      // The body is level 1, hardware level 2: hardware's innermost object is at level levels + 1.
      const register = (levels: number) =>
        suite.s.ownerApi.post(
          '/api/nodes/register',
          `{"name":"nested","models":[${JSON.stringify(MODEL)}],"capacity":1,"hardware":${deep(levels - 1, '{}')}}`,
        );
      const ok = await register(MAX_JSON_DEPTH - 1);
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
      const before = await snapshot();
      const r = await register(MAX_JSON_DEPTH);
      expect(r.status).toBe(400);
      expect(r.body.error).toEqual({ code: 'validation_failed', message: tooDeep });
      expect(await snapshot()).toEqual(before);
    });

    it(`refuses more than ${MAX_JSON_NODES} keys and items with 413`, async () => {
      const before = await snapshot();
      const body = `{"name":"many","models":[${JSON.stringify(MODEL)}],"capacity":1,"hardware":{"x":[${'0,'.repeat(MAX_JSON_NODES)}0]}}`;
      const r = await suite.s.ownerApi.post('/api/nodes/register', body);
      expect(r.status).toBe(413);
      expect(r.body.error).toEqual({
        code: 'payload_too_large',
        message: `request body: more than ${MAX_JSON_NODES} JSON keys and items`,
      });
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('amounts past BIGINT (2^63 − 1)', () => {
    const topup = (clientId: string, amount: string, key: string = randomUUID()) =>
      suite.s.admin.post('/api/tokens/topup', { clientId, amount }, { 'Idempotency-Key': key });

    it('refuses a top-up that would carry a balance past the largest with 422, moving nothing', async () => {
      const before = await snapshot();
      const r = await topup(suite.s.clientAId, MAX_AMOUNT.toString());
      expect(r.status).toBe(422);
      expect(r.body.error).toEqual({
        code: 'validation_failed',
        message: `amount would exceed the largest balance (${MAX_AMOUNT} tokens); the client has ${before.balance.total}`,
      });
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a task whose hold would not fit with 422, holding and storing nothing', async () => {
      // A model may be priced anywhere in BIGINT; only a task's worst case can overflow.
      const model = await suite.s.admin.post('/api/models', {
        name: 'pricey',
        version: '1',
        taskType: 'text_generation',
        maxInputBytes: 1_000,
        maxOutputTokens: 16,
        pricePerRequest: (MAX_AMOUNT - 1_000n).toString(),
      });
      expect(model.status, JSON.stringify(model.body)).toBe(201);
      const before = await snapshot();
      const r = await suite.s.clientA.post('/api/tasks', { model: 'pricey', input: prompt, priority: 9 });
      expect(r.status).toBe(422);
      expect(r.body.error.code).toBe('validation_failed');
      expect(r.body.error.message).toMatch(
        /^maxPrice: the task's worst-case price, \d+ tokens, exceeds the largest amount/,
      );
      expect(await snapshot()).toEqual(before);

      // A maxPrice caps the hold, so the same task is admissible with one.
      const capped = await suite.s.clientA.post('/api/tasks', {
        model: 'pricey',
        input: prompt,
        priority: 9,
        maxPrice: '500',
      });
      expect(capped.status, JSON.stringify(capped.body)).toBe(202);
      expect(capped.body.task.tokens.held).toBe('500');
    });

    it('refuses a task whose hold would not fit with 422 also when submitted with an Idempotency-Key', async () => {
      const before = await snapshot();
      const r = await suite.s.clientA.post(
        '/api/tasks',
        { model: 'pricey', input: prompt, priority: 1 },
        { 'Idempotency-Key': 'pricey-1' },
      );
      expect(r.status).toBe(422);
      expect(await snapshot()).toEqual(before);
    });

    it('refuses top-ups that all together would pass the external account’s floor, keeping replays', async () => {
      const created = await suite.s.admin.post('/api/admin/clients', { name: 'Whale' });
      const whale = created.body.client.id as string;
      const big = (MAX_AMOUNT - 10_000_000n).toString();
      const first = await topup(whale, big, 'whale-1');
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      // A replay is answered from its key, even though the same amount would not fit any more.
      const replay = await topup(whale, big, 'whale-1');
      expect(replay.status).toBe(201);
      expect(replay.body.transactionId).toBe(first.body.transactionId);

      const before = await snapshot();
      // The whale's own balance has room for this, but every top-up ever made would pass 2^63.
      const r = await topup(whale, '9000000', 'whale-2');
      expect(r.status).toBe(422);
      expect(r.body.error).toEqual({
        code: 'validation_failed',
        message: `amount would exceed the largest balance (${MAX_AMOUNT} tokens)`,
      });
      expect(await snapshot()).toEqual(before);
      const balance = await suite.s.admin.get(`/api/tokens/balance/client:${whale}`);
      expect(balance.body.total).toBe(big);
    });
  });
});
