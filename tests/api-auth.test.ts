import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY_FILE, ensureAdminKey, readDevAdminKey } from '../api/auth/bootstrap.js';
import { verifyApiKey } from '../api/auth/index.js';
import { generateApiKey, hashApiKey, parseApiKey } from '../api/auth/keys.js';
import { startHttpServer } from '../api/server.js';
import { loadConfig } from '../lib/config.js';
import { startTestApi, TEST_ADMIN_KEY, type TestApi } from './helpers/api.js';

const MISSING = { error: { code: 'unauthorized', message: 'missing API key (Authorization: Bearer <key>)' } };
const INVALID = { error: { code: 'unauthorized', message: 'invalid API key' } };

describe('API keys', () => {
  it('generates ngk_<prefix>_<secret> keys whose prefix parses back and whose hash is SHA-256 of the key', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a.key).toMatch(/^ngk_[0-9a-f]{12}_[0-9A-Za-z]{43}$/);
    expect(parseApiKey(a.key)).toBe(a.prefix);
    expect(a.hash).toBe(hashApiKey(a.key));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.prefix).not.toBe(b.prefix);
    expect(a.key).not.toBe(b.key);
  });

  it('parses nothing out of malformed keys', () => {
    const { key } = generateApiKey();
    for (const bad of [
      '',
      'ngk_',
      `${key}x`,
      key.slice(0, -1),
      key.replace('ngk_', 'ngx_'),
      key.toUpperCase(),
    ]) {
      expect(parseApiKey(bad)).toBeNull();
    }
  });
});

describe('API authentication', () => {
  let api: TestApi;
  /** A fresh client and its first key, made through the admin API. */
  const newClient = async (name = 'Tenant') => {
    const res = await api.call('POST', '/api/admin/clients', { key: TEST_ADMIN_KEY, body: { name } });
    expect(res.status).toBe(201);
    return res.body as { client: { id: string }; apiKey: string; keyId: string };
  };

  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  it('answers 401 naming the header when no key is sent', async () => {
    const res = await api.call('GET', '/api/models');
    expect(res.status).toBe(401);
    expect(res.body).toEqual(MISSING);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    const basic = await api.call('GET', '/api/models', { headers: { authorization: 'Basic dXNlcjpwdw==' } });
    expect([basic.status, basic.body]).toEqual([401, MISSING]);
  });

  it('answers 401 "invalid API key" for malformed, unknown and tampered keys', async () => {
    const { apiKey } = await newClient();
    const tampered = `${apiKey.slice(0, -1)}${apiKey.endsWith('a') ? 'b' : 'a'}`;
    for (const key of ['nope', generateApiKey().key, tampered, `${TEST_ADMIN_KEY}x`]) {
      const res = await api.call('GET', '/api/models', { key });
      expect([res.status, res.body]).toEqual([401, INVALID]);
    }
  });

  it('answers 401 for a key once it is revoked', async () => {
    const { apiKey, keyId } = await newClient();
    expect((await api.call('GET', '/api/models', { key: apiKey })).status).toBe(200);
    const revoked = await api.call('POST', `/api/admin/keys/${keyId}/revoke`, { key: TEST_ADMIN_KEY });
    expect(revoked.status).toBe(200);
    const res = await api.call('GET', '/api/models', { key: apiKey });
    expect([res.status, res.body]).toEqual([401, INVALID]);
  });

  it('answers 401 for the keys of a suspended client', async () => {
    const { client, apiKey } = await newClient();
    await api.services.prisma.client.update({ where: { id: client.id }, data: { status: 'suspended' } });
    const res = await api.call('GET', '/api/models', { key: apiKey });
    expect([res.status, res.body]).toEqual([401, INVALID]);
  });

  it('answers 403 naming the needed role', async () => {
    const { apiKey } = await newClient();
    const admin = await api.call('GET', '/api/stats', { key: apiKey });
    expect(admin.status).toBe(403);
    expect(admin.body).toEqual({
      error: { code: 'forbidden', message: 'this endpoint requires the admin role' },
    });
    const nodes = await api.call('GET', '/api/nodes', { key: apiKey });
    expect(nodes.status).toBe(403);
    expect(nodes.body).toEqual({
      error: {
        code: 'forbidden',
        message: 'this endpoint requires one of the roles admin, node_owner, node',
      },
    });
  });

  it('accepts the configured ADMIN_API_KEY as the bootstrap admin', async () => {
    expect((await api.call('GET', '/api/stats', { key: TEST_ADMIN_KEY })).status).toBe(200);
    expect(await verifyApiKey(api.services, TEST_ADMIN_KEY)).toEqual({ role: 'admin', keyId: null });
  });

  it('resolves each key to its principal', async () => {
    const { client, apiKey, keyId } = await newClient();
    expect(await verifyApiKey(api.services, apiKey)).toEqual({ role: 'client', keyId, clientId: client.id });
    expect(await verifyApiKey(api.services, generateApiKey().key)).toBeNull();
  });

  it('records when a key was last used, at most once a minute', async () => {
    const { apiKey, keyId } = await newClient();
    const lastUsed = async () =>
      (await api.services.prisma.apiKey.findUniqueOrThrow({ where: { id: keyId } })).lastUsedAt;
    expect(await lastUsed()).toBeNull();
    await api.call('GET', '/api/models', { key: apiKey });
    await expect.poll(lastUsed).not.toBeNull();
    const first = await lastUsed();
    await api.call('GET', '/api/models', { key: apiKey });
    await api.call('GET', '/api/models', { key: apiKey });
    expect(await lastUsed()).toEqual(first);
  });

  it('answers 429 with Retry-After once a principal exceeds its per-minute limit, counting all its keys', async () => {
    const limited = api.withConfig({ RATE_LIMIT_PER_MINUTE: 3 });
    const { client, apiKey } = await newClient();
    const second = await api.call('POST', `/api/admin/clients/${client.id}/keys`, { key: TEST_ADMIN_KEY });
    const other = await newClient();
    for (const key of [apiKey, apiKey, second.body.apiKey]) {
      expect((await limited.call('GET', '/api/models', { key })).status).toBe(200);
    }
    const res = await limited.call('GET', '/api/models', { key: second.body.apiKey });
    expect(res.status).toBe(429);
    expect(res.body).toEqual({
      error: { code: 'rate_limited', message: 'rate limit of 3 requests per minute per principal exceeded' },
    });
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Another principal has its own budget.
    expect((await limited.call('GET', '/api/models', { key: other.apiKey })).status).toBe(200);
  });

  it('answers 429 per remote address, before looking at the key', async () => {
    const { app } = api.withConfig({ RATE_LIMIT_IP_PER_MINUTE: 2 });
    const http = await startHttpServer(app, '127.0.0.1', 0);
    try {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 3; i++) {
        last = await fetch(`${http.url}/api/models`);
        statuses.push(last.status);
        if (i < 2) await last.arrayBuffer();
      }
      expect(statuses).toEqual([401, 401, 429]);
      expect(await last?.json()).toEqual({
        error: { code: 'rate_limited', message: 'rate limit of 2 requests per minute per address exceeded' },
      });
      expect(Number(last?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      await http.close();
    }
  });

  it('leaves the health check open', async () => {
    expect((await api.call('GET', '/api/health')).status).not.toBe(401);
  });

  describe('bootstrap admin key', () => {
    const devConfig = () => loadConfig({ NODE_ENV: 'development', DATA_DIR: path.join(api.dataDir, 'boot') });

    it('does nothing when ADMIN_API_KEY is configured', async () => {
      const printed: string[] = [];
      await ensureAdminKey(api.services, { print: (t) => printed.push(t) });
      expect(printed).toEqual([]);
      expect(await readDevAdminKey(api.services.config.dataDir)).toBeNull();
      expect(await api.services.prisma.apiKey.count({ where: { role: 'admin' } })).toBe(0);
    });

    it('creates, saves (0600) and prints a key once; later starts print only where it is', async () => {
      const config = devConfig();
      const deps = { ...api.services, config };
      const file = path.join(config.dataDir, ADMIN_KEY_FILE);

      const first: string[] = [];
      await ensureAdminKey(deps, { print: (t) => first.push(t) });
      const key = await readDevAdminKey(config.dataDir);
      expect(key).toMatch(/^ngk_/);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(first.join('')).toContain(`Admin API key (shown once, also saved to ${file})`);
      expect(first.join('')).toContain(key);
      expect((await api.call('GET', '/api/stats', { key: key as string })).status).toBe(200);

      const second: string[] = [];
      await ensureAdminKey(deps, { print: (t) => second.push(t) });
      expect(second.join('')).not.toContain(key);
      expect(second.join('')).toContain(file);
      expect(await readFile(file, 'utf8')).toBe(`${key}\n`);
      expect(await api.services.prisma.apiKey.count({ where: { role: 'admin', revokedAt: null } })).toBe(1);
    });

    it('refuses to generate a key in production', async () => {
      const config = { ...devConfig(), NODE_ENV: 'production' as const };
      await expect(ensureAdminKey({ ...api.services, config }, { print: () => {} })).rejects.toThrow(
        'ADMIN_API_KEY is required',
      );
    });
  });
});
