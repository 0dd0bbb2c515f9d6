import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../api/auth/keys.js';
import { findActiveModel } from '../api/models/lookup.js';
import { startTestApi, TEST_ADMIN_KEY, type TestApi } from './helpers/api.js';

const KEY_FORMAT = /^ngk_[0-9a-f]{12}_[0-9A-Za-z]{43}$/;
const UNKNOWN_ID = '7b0f3c52-4a55-4e4c-9d7e-3f2a5d1c0b9e';

describe('admin API', () => {
  let api: TestApi;
  const admin = (method: string, path: string, body?: unknown) =>
    api.call(method, path, { key: TEST_ADMIN_KEY, ...(body === undefined ? {} : { body }) });
  const counts = async () => ({
    clients: await api.services.prisma.client.count(),
    owners: await api.services.prisma.nodeOwner.count(),
    keys: await api.services.prisma.apiKey.count(),
  });

  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  it('creates a client with a key that is returned once and stored only as its hash', async () => {
    const res = await admin('POST', '/api/admin/clients', { name: '  Acme  ' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      client: { id: expect.any(String), name: 'Acme', status: 'active', createdAt: expect.any(String) },
      apiKey: expect.stringMatching(KEY_FORMAT),
      keyId: expect.any(String),
    });
    const row = await api.services.prisma.apiKey.findUniqueOrThrow({ where: { id: res.body.keyId } });
    expect(row).toMatchObject({
      role: 'client',
      clientId: res.body.client.id,
      nodeOwnerId: null,
      nodeId: null,
    });
    expect(row.hash).toBe(hashApiKey(res.body.apiKey));
    expect(JSON.stringify(row)).not.toContain(res.body.apiKey.split('_')[2]);
    expect((await api.call('GET', '/api/models', { key: res.body.apiKey })).status).toBe(200);
  });

  it('creates a node owner with its key', async () => {
    const res = await admin('POST', '/api/admin/node-owners', { name: 'GPU Farm' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      nodeOwner: { id: expect.any(String), name: 'GPU Farm', createdAt: expect.any(String) },
      apiKey: expect.stringMatching(KEY_FORMAT),
      keyId: expect.any(String),
    });
    const nodes = await api.call('GET', '/api/nodes', { key: res.body.apiKey });
    expect(nodes.status).toBe(200);
    expect(nodes.body).toEqual({ nodes: [], nextCursor: null });
  });

  it('rotates a key: the new one works alongside the old until the old is revoked', async () => {
    const created = await admin('POST', '/api/admin/clients', { name: 'Rotating' });
    const extra = await admin('POST', `/api/admin/clients/${created.body.client.id}/keys`, { label: 'ci' });
    expect(extra.status).toBe(201);
    expect(extra.body).toEqual({ apiKey: expect.stringMatching(KEY_FORMAT), keyId: expect.any(String) });
    expect(extra.body.apiKey).not.toBe(created.body.apiKey);
    const stored = await api.services.prisma.apiKey.findUniqueOrThrow({ where: { id: extra.body.keyId } });
    expect(stored.label).toBe('ci');

    for (const key of [created.body.apiKey, extra.body.apiKey]) {
      expect((await api.call('GET', '/api/models', { key })).status).toBe(200);
    }
    const revoked = await admin('POST', `/api/admin/keys/${created.body.keyId}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({ keyId: created.body.keyId, revokedAt: expect.any(String) });
    expect((await api.call('GET', '/api/models', { key: created.body.apiKey })).status).toBe(401);
    expect((await api.call('GET', '/api/models', { key: extra.body.apiKey })).status).toBe(200);

    // Revoking again keeps the first revocation time.
    const again = await admin('POST', `/api/admin/keys/${created.body.keyId}/revoke`);
    expect(again.body).toEqual(revoked.body);
  });

  it('issues extra keys for node owners', async () => {
    const owner = await admin('POST', '/api/admin/node-owners', { name: 'Owner' });
    const extra = await admin('POST', `/api/admin/node-owners/${owner.body.nodeOwner.id}/keys`);
    expect(extra.status).toBe(201);
    expect((await api.call('GET', '/api/nodes', { key: extra.body.apiKey })).status).toBe(200);
  });

  it('answers 404 for unknown or malformed ids, creating nothing', async () => {
    const before = await counts();
    const cases: [string, string][] = [
      [`/api/admin/clients/${UNKNOWN_ID}/keys`, 'client not found'],
      ['/api/admin/clients/not-a-uuid/keys', 'client not found'],
      [`/api/admin/node-owners/${UNKNOWN_ID}/keys`, 'node owner not found'],
      [`/api/admin/keys/${UNKNOWN_ID}/revoke`, 'API key not found'],
      ['/api/admin/keys/123/revoke', 'API key not found'],
    ];
    for (const [path, message] of cases) {
      const res = await admin('POST', path);
      expect([res.status, res.body]).toEqual([404, { error: { code: 'not_found', message } }]);
    }
    expect(await counts()).toEqual(before);
  });

  it('refuses non-admins with 403', async () => {
    const client = await admin('POST', '/api/admin/clients', { name: 'Not an admin' });
    const res = await api.call('POST', '/api/admin/clients', {
      key: client.body.apiKey,
      body: { name: 'x' },
    });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({
      error: { code: 'forbidden', message: 'this endpoint requires the admin role' },
    });
  });

  it('answers bad bodies with exact 4xx errors and creates nothing', async () => {
    const before = await counts();
    const post = (opts: Parameters<TestApi['call']>[2]) =>
      api.call('POST', '/api/admin/clients', { key: TEST_ADMIN_KEY, ...opts });

    const missing = await post({ body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({
      error: {
        code: 'validation_failed',
        message: 'name: Invalid input: expected string, received undefined',
        details: expect.any(Array),
      },
    });
    const extra = await post({ body: { name: 'x', status: 'suspended' } });
    expect(extra.status).toBe(400);
    expect(extra.body.error).toMatchObject({
      code: 'validation_failed',
      message: 'Unrecognized key: "status"',
    });
    const blank = await post({ body: { name: '   ' } });
    expect(blank.body.error.message).toBe('name: Too small: expected string to have >=1 characters');

    const badJson = await post({ raw: '{"name": ', headers: { 'content-type': 'application/json' } });
    expect(badJson.status).toBe(400);
    expect(badJson.body).toEqual({
      error: { code: 'bad_request', message: 'request body is not valid JSON' },
    });

    const text = await post({ raw: 'name=x', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(text.body).toEqual({
      error: { code: 'unsupported_media_type', message: 'request body must be application/json' },
    });

    const max = api.services.config.MAX_BODY_BYTES;
    const huge = await post({ body: { name: 'x'.repeat(max) } });
    expect(huge.status).toBe(413);
    expect(huge.body).toEqual({
      error: { code: 'payload_too_large', message: `request body exceeds ${max} bytes` },
    });
    expect(await counts()).toEqual(before);
  });
});

describe('model catalog API', () => {
  let api: TestApi;
  let clientKey: string;
  const admin = (method: string, path: string, body?: unknown) =>
    api.call(method, path, { key: TEST_ADMIN_KEY, ...(body === undefined ? {} : { body }) });
  const llama = {
    name: 'llama',
    version: '3.1-8b',
    taskType: 'text_generation',
    maxInputBytes: 65_536,
    maxOutputTokens: 1_024,
  };

  beforeAll(async () => {
    api = await startTestApi();
    clientKey = (await admin('POST', '/api/admin/clients', { name: 'Reader' })).body.apiKey;
  });
  afterAll(async () => {
    await api?.close();
  });

  it('creates a model with prices as strings (numbers or numeric strings in, BigInt in the database)', async () => {
    const res = await admin('POST', '/api/models', {
      ...llama,
      pricePerRequest: 10,
      pricePerInputToken: '2',
      pricePerOutputToken: '9007199254740993',
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      model: {
        id: expect.any(String),
        ...llama,
        pricePerRequest: '10',
        pricePerInputToken: '2',
        pricePerOutputToken: '9007199254740993',
        active: true,
        createdAt: expect.any(String),
      },
    });
    const row = await api.services.prisma.model.findUniqueOrThrow({ where: { id: res.body.model.id } });
    expect(row.pricePerOutputToken).toBe(9_007_199_254_740_993n);
  });

  it('answers 409 for a duplicate name and version', async () => {
    const res = await admin('POST', '/api/models', llama);
    expect(res.status).toBe(409);
    expect(res.body).toEqual({
      error: { code: 'conflict', message: 'model llama version 3.1-8b already exists' },
    });
    expect(await api.services.prisma.model.count({ where: { name: 'llama' } })).toBe(1);
  });

  it('refuses invalid models with 400 naming the field, creating nothing', async () => {
    const priceMessage =
      'pricePerRequest: must be a non-negative integer in minor units (a string for values above 2^53)';
    const cases: [unknown, string][] = [
      [{ ...llama, version: 'v2', pricePerRequest: -1 }, priceMessage],
      [{ ...llama, version: 'v2', pricePerRequest: 1.5 }, priceMessage],
      [{ ...llama, version: 'v2', pricePerRequest: '12a' }, priceMessage],
      [{ ...llama, version: 'v2', pricePerRequest: 2 ** 53 }, priceMessage],
      [{ ...llama, version: 'v2', pricePerRequest: '9223372036854775808' }, priceMessage],
      [
        { ...llama, version: 'v2', taskType: 'image' },
        'taskType: Invalid option: expected one of "text_generation"|"embedding"',
      ],
      [{ ...llama, version: 'v2', maxInputBytes: 0 }, 'maxInputBytes: Too small: expected number to be >=1'],
      [{ ...llama, version: 'v2', name: 'has space' }, 'name: letters, digits and . _ : / - only'],
      [{ ...llama, version: 'v2', id: '1' }, 'Unrecognized key: "id"'],
    ];
    for (const [body, message] of cases) {
      const res = await admin('POST', '/api/models', body);
      expect([res.status, res.body.error.code, res.body.error.message]).toEqual([
        400,
        'validation_failed',
        message,
      ]);
    }
    expect(await api.services.prisma.model.count()).toBe(1);
  });

  it('lets admins only create and change models', async () => {
    const res = await api.call('POST', '/api/models', { key: clientKey, body: { ...llama, version: 'x' } });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({
      error: { code: 'forbidden', message: 'this endpoint requires the admin role' },
    });
    const { id } = (await api.call('GET', '/api/models', { key: clientKey })).body.models[0];
    const patch = await api.call('PATCH', `/api/models/${id}`, { key: clientKey, body: { active: false } });
    expect(patch.status).toBe(403);
  });

  it('lists models to any principal, filtered by active and paginated', async () => {
    await admin('POST', '/api/models', { ...llama, name: 'mistral', version: '7b', active: false });
    await admin('POST', '/api/models', { ...llama, name: 'bge', version: 'small', taskType: 'embedding' });

    const all = await api.call('GET', '/api/models', { key: clientKey });
    expect(all.status).toBe(200);
    expect(all.body.models.map((m: { name: string }) => m.name)).toEqual(['llama', 'mistral', 'bge']);
    expect(all.body.nextCursor).toBeNull();

    const active = await api.call('GET', '/api/models?active=true', { key: clientKey });
    expect(active.body.models.map((m: { name: string }) => m.name)).toEqual(['llama', 'bge']);
    const inactive = await api.call('GET', '/api/models?active=false', { key: clientKey });
    expect(inactive.body.models.map((m: { name: string }) => m.name)).toEqual(['mistral']);

    const names: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { models: { name: string }[]; nextCursor: string | null } } = await api.call(
        'GET',
        `/api/models?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        { key: clientKey },
      );
      expect(page.body.models.length).toBeLessThanOrEqual(2);
      names.push(...page.body.models.map((m) => m.name));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(names).toEqual(['llama', 'mistral', 'bge']);
  });

  it('refuses bad list queries with 400', async () => {
    const cases: [string, string][] = [
      ['limit=0', 'limit: Too small: expected number to be >=1'],
      ['limit=101', 'limit: Too big: expected number to be <=100'],
      ['active=maybe', 'active: Invalid option: expected one of "true"|"false"'],
      ['cursor=abc', 'cursor: Invalid GUID'],
      ['sort=name', 'Unrecognized key: "sort"'],
    ];
    for (const [query, message] of cases) {
      const res = await api.call('GET', `/api/models?${query}`, { key: clientKey });
      expect([res.status, res.body.error.code, res.body.error.message]).toEqual([
        400,
        'validation_failed',
        message,
      ]);
    }
  });

  it('reads one model, and answers 404 for unknown or malformed ids', async () => {
    const { models } = (await api.call('GET', '/api/models', { key: clientKey })).body;
    const one = await api.call('GET', `/api/models/${models[0].id}`, { key: clientKey });
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ model: models[0] });
    for (const id of [UNKNOWN_ID, 'nope']) {
      const res = await api.call('GET', `/api/models/${id}`, { key: clientKey });
      expect([res.status, res.body]).toEqual([
        404,
        { error: { code: 'not_found', message: 'model not found' } },
      ]);
    }
  });

  it('updates activity, prices and limits, never identity', async () => {
    const { id } = (await api.call('GET', '/api/models?active=false', { key: clientKey })).body.models[0];
    const res = await admin('PATCH', `/api/models/${id}`, {
      active: true,
      pricePerRequest: '5',
      maxOutputTokens: 2_048,
    });
    expect(res.status).toBe(200);
    expect(res.body.model).toMatchObject({
      id,
      name: 'mistral',
      active: true,
      pricePerRequest: '5',
      maxOutputTokens: 2_048,
    });

    const empty = await admin('PATCH', `/api/models/${id}`, {});
    expect([empty.status, empty.body.error.message]).toEqual([400, 'send at least one field to change']);
    const rename = await admin('PATCH', `/api/models/${id}`, { name: 'other' });
    expect(rename.status).toBe(400);
    expect(rename.body.error.message).toContain('Unrecognized key: "name"');
    const unknown = await admin('PATCH', `/api/models/${UNKNOWN_ID}`, { active: false });
    expect([unknown.status, unknown.body]).toEqual([
      404,
      { error: { code: 'not_found', message: 'model not found' } },
    ]);
    const after = await api.services.prisma.model.findUniqueOrThrow({ where: { id } });
    expect(after.name).toBe('mistral');
  });

  it('finds active models by name and version for task submission', async () => {
    const { prisma } = api.services;
    expect((await findActiveModel(prisma, 'llama', '3.1-8b'))?.name).toBe('llama');
    expect(await findActiveModel(prisma, 'llama', 'nope')).toBeNull();
    await prisma.model.updateMany({ where: { name: 'bge' }, data: { active: false } });
    expect(await findActiveModel(prisma, 'bge', 'small')).toBeNull();
  });
});
