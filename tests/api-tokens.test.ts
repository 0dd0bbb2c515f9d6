import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLedger } from '../lib/ledger/ledger.js';
import { type ApiClient, apiClient, MODEL, useCoordinator } from './helpers/coordinator.js';

// The tokens REST API over a real coordinator: who may see which account, who may move tokens, and the
// exact answer to every bad input. Withdrawals run on the local payout adapter here (see
// withdrawals.test.ts for the payout paths).
describe('tokens REST API', () => {
  const suite = useCoordinator();
  const ledger = () => createLedger(suite.coordinator.services.prisma);
  const as = (key: string) => apiClient(suite.coordinator.url, key);
  const notFound = (what: string) => ({ error: { code: 'not_found', message: `${what} not found` } });
  // The ledger's own amount rules (lib/ledger/money.ts), shared by every endpoint that takes an amount.
  const NOT_AN_INTEGER = 'amount: must be an integer number of minor units (as a string above 2^53)';
  const NOT_DIGITS = 'amount: must be a decimal string of digits (minor units), e.g. "1500"';
  const forbidden = (role: string) => ({
    error: { code: 'forbidden', message: `this endpoint requires the ${role} role` },
  });

  async function newClient(name: string) {
    const r = await suite.s.admin.post('/api/admin/clients', { name });
    expect(r.status).toBe(201);
    return { id: r.body.client.id as string, api: as(r.body.apiKey) };
  }

  async function newOwner(name: string) {
    const r = await suite.s.admin.post('/api/admin/node-owners', { name });
    expect(r.status).toBe(201);
    const api = as(r.body.apiKey);
    return {
      api,
      async node(nodeName: string) {
        const n = await api.post('/api/nodes/register', {
          name: nodeName,
          models: [MODEL],
          capacity: 1,
        });
        expect(n.status, JSON.stringify(n.body)).toBe(201);
        return { id: n.body.node.id as string, api: as(n.body.nodeKey) };
      },
    };
  }

  async function node(name: string) {
    const { nodeId, key } = await suite.s.registerNode(name);
    return { id: nodeId, api: as(key) };
  }

  /** Earnings for a node, straight through the ledger (a fixture until tasks settle tokens). */
  const fundNode = (nodeId: string, amount: bigint) =>
    ledger().post({
      idempotencyKey: `test-fund:${nodeId}:${randomUUID()}`,
      type: 'topup',
      legs: [{ from: { kind: 'external_topups' }, to: { kind: 'node', ownerId: nodeId }, amount }],
    });

  const topup = (body: unknown, key: string | null = randomUUID(), caller: ApiClient = suite.s.admin) =>
    caller.post('/api/tokens/topup', body, key === null ? {} : { 'Idempotency-Key': key });

  const withdraw = (caller: ApiClient, body: unknown, key: string | null = randomUUID()) =>
    caller.post('/api/tokens/withdraw', body, key === null ? {} : { 'Idempotency-Key': key });

  describe('balances', () => {
    it('shows a client its own balance and answers 404 for every other account', async () => {
      const c1 = await newClient('balance-1');
      const c2 = await newClient('balance-2');
      const n = await node('balance-node');
      expect((await topup({ clientId: c1.id, amount: 500 })).status).toBe(201);

      const own = await c1.api.get(`/api/tokens/balance/client:${c1.id}`);
      expect(own.status).toBe(200);
      expect(own.body).toEqual({
        accountId: `client:${c1.id}`,
        kind: 'client',
        available: '500',
        held: '0',
        total: '500',
      });
      const upper = await c1.api.get(`/api/tokens/balance/client:${c1.id.toUpperCase()}`);
      expect(upper.body.accountId).toBe(`client:${c1.id}`);

      for (const other of [
        `client:${c2.id}`,
        `node:${n.id}`,
        'platform',
        'client:nope',
        'wallet',
        'client',
      ]) {
        const r = await c1.api.get(`/api/tokens/balance/${other}`);
        expect([other, r.status, r.body]).toEqual([other, 404, notFound('account')]);
      }
      const history = await c2.api.get(`/api/tokens/history/client:${c1.id}`);
      expect(history.status).toBe(404);
      expect(history.body).toEqual(notFound('account'));
    });

    it('lets an admin read every account, and answers 404 for accounts that do not exist', async () => {
      const c = await newClient('admin-reads');
      const r = await suite.s.admin.get(`/api/tokens/balance/client:${c.id}`);
      expect(r.body).toEqual({
        accountId: `client:${c.id}`,
        kind: 'client',
        available: '0',
        held: '0',
        total: '0',
      });
      const platform = await suite.s.admin.get('/api/tokens/balance/platform');
      expect(platform.status).toBe(200);
      expect(platform.body).toMatchObject({ accountId: 'platform', kind: 'platform' });
      for (const unknown of [`client:${randomUUID()}`, `node:${randomUUID()}`]) {
        const u = await suite.s.admin.get(`/api/tokens/balance/${unknown}`);
        expect([u.status, u.body]).toEqual([404, notFound('account')]);
      }
    });

    it('lets a node read only itself, and a node owner only its own nodes', async () => {
      const n1 = await node('self-1');
      const n2 = await node('self-2');
      const stranger = await newOwner('other owner');
      const n3 = await stranger.node('foreign');
      const client = await newClient('nosy');

      expect((await n1.api.get(`/api/tokens/balance/node:${n1.id}`)).status).toBe(200);
      expect((await suite.s.ownerApi.get(`/api/tokens/balance/node:${n1.id}`)).status).toBe(200);
      expect((await suite.s.ownerApi.get(`/api/tokens/balance/node:${n2.id}`)).status).toBe(200);
      const denied: Array<[ApiClient, string]> = [
        [n1.api, `node:${n2.id}`],
        [n1.api, `node:${n3.id}`],
        [n1.api, 'platform'],
        [suite.s.ownerApi, `node:${n3.id}`],
        [stranger.api, `node:${n1.id}`],
        [client.api, `node:${n1.id}`],
      ];
      for (const [caller, account] of denied) {
        for (const path of ['balance', 'history']) {
          const r = await caller.get(`/api/tokens/${path}/${account}`);
          expect([path, account, r.status, r.body]).toEqual([path, account, 404, notFound('account')]);
        }
      }
    });
  });

  describe('withdrawals', () => {
    it('withdraws only from the calling node, and shows it to the node, its owner and admins', async () => {
      const n1 = await node('withdrawer');
      const n2 = await node('bystander');
      const stranger = await newOwner('stranger');
      await fundNode(n1.id, 1_000n);
      await fundNode(n2.id, 1_000n);

      const r = await withdraw(n1.api, { amount: 150, destination: 'acct-1' });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      expect(r.body.withdrawal).toMatchObject({ status: 'pending', amount: '150', destination: 'acct-1' });
      const { id } = r.body.withdrawal;
      expect((await n1.api.get(`/api/tokens/balance/node:${n1.id}`)).body.available).toBe('850');
      expect((await n2.api.get(`/api/tokens/balance/node:${n2.id}`)).body).toMatchObject({
        available: '1000',
        total: '1000',
      });

      // There is no way to name another node's account: the body is strict.
      const foreign = await withdraw(n1.api, { amount: 150, destination: 'acct-1', nodeId: n2.id });
      expect(foreign.status).toBe(400);
      expect(foreign.body.error).toMatchObject({
        code: 'validation_failed',
        message: 'Unrecognized key: "nodeId"',
      });

      for (const caller of [suite.s.clientA, suite.s.ownerApi, suite.s.admin]) {
        const denied = await withdraw(caller, { amount: 150, destination: 'acct-1' });
        expect([denied.status, denied.body]).toEqual([403, forbidden('node')]);
      }

      for (const viewer of [n1.api, suite.s.ownerApi, suite.s.admin]) {
        const seen = await viewer.get(`/api/tokens/withdrawals/${id}`);
        expect(seen.status).toBe(200);
        expect(seen.body.withdrawal).toMatchObject({ id, nodeId: n1.id, amount: '150' });
      }
      for (const outsider of [n2.api, stranger.api]) {
        const hidden = await outsider.get(`/api/tokens/withdrawals/${id}`);
        expect([hidden.status, hidden.body]).toEqual([404, notFound('withdrawal')]);
      }
      const unknown = await n1.api.get(`/api/tokens/withdrawals/${randomUUID()}`);
      expect([unknown.status, unknown.body]).toEqual([404, notFound('withdrawal')]);
      const malformed = await n1.api.get('/api/tokens/withdrawals/42');
      expect([malformed.status, malformed.body]).toEqual([404, notFound('withdrawal')]);
      const client = await suite.s.clientA.get(`/api/tokens/withdrawals/${id}`);
      expect([client.status, client.body]).toEqual([
        403,
        {
          error: {
            code: 'forbidden',
            message: 'this endpoint requires one of the roles admin, node_owner, node',
          },
        },
      ]);
    });

    it.each([
      ['a float amount', { amount: 150.5, destination: 'a' }, NOT_AN_INTEGER],
      ['a negative amount', { amount: -150, destination: 'a' }, 'amount: must not be negative'],
      ['a zero amount', { amount: 0, destination: 'a' }, 'amount: must be greater than 0'],
      ['a fractional string', { amount: '150.0', destination: 'a' }, NOT_DIGITS],
      ['an exponent string', { amount: '1e3', destination: 'a' }, NOT_DIGITS],
      ['an unsafe integer', { amount: 2 ** 60, destination: 'a' }, NOT_AN_INTEGER],
      ['no destination', { amount: 150 }, 'destination: Invalid input: expected string, received undefined'],
      [
        'a destination over 200 characters',
        { amount: 150, destination: 'x'.repeat(201) },
        'destination: Too big: expected string to have <=200 characters',
      ],
      [
        'a destination with a newline',
        { amount: 150, destination: 'a\nb' },
        'destination: must not contain control characters',
      ],
    ])('refuses %s with 400', async (_what, body, message) => {
      const n = await node(`bad-input-${randomUUID().slice(0, 8)}`);
      const r = await withdraw(n.api, body);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'validation_failed', message });
      expect(await suite.coordinator.services.prisma.withdrawal.count({ where: { nodeId: n.id } })).toBe(0);
    });

    it('answers 400 without an Idempotency-Key or below the minimum, and 402 beyond the balance', async () => {
      const n = await node('limits');
      await fundNode(n.id, 500n);
      const bad = (message: string) => ({ error: { code: 'validation_failed', message } });

      const noKey = await withdraw(n.api, { amount: 150, destination: 'a' }, null);
      expect([noKey.status, noKey.body]).toEqual([
        400,
        bad('Idempotency-Key: required header for this endpoint'),
      ]);
      const badKey = await withdraw(n.api, { amount: 150, destination: 'a' }, 'has space');
      expect([badKey.status, badKey.body]).toEqual([
        400,
        bad('Idempotency-Key: must be 1-128 of A-Z a-z 0-9 _ . : -'),
      ]);
      const small = await withdraw(n.api, { amount: 99, destination: 'a' });
      expect([small.status, small.body]).toEqual([400, bad('amount: the minimum withdrawal is 100')]);
      const tooMuch = await withdraw(n.api, { amount: '501', destination: 'a' });
      expect([tooMuch.status, tooMuch.body]).toEqual([
        402,
        {
          error: {
            code: 'payment_required',
            message: 'insufficient balance: 500 tokens available, 501 requested',
          },
        },
      ]);
      expect((await n.api.get(`/api/tokens/balance/node:${n.id}`)).body).toMatchObject({
        available: '500',
        held: '0',
      });
      expect(await suite.coordinator.services.prisma.withdrawal.count({ where: { nodeId: n.id } })).toBe(0);
    });
  });

  describe('top-ups', () => {
    it('credits a client once per Idempotency-Key and records who did it', async () => {
      const c = await newClient('topped');
      const key = `topup-${randomUUID()}`;
      const first = await topup({ clientId: c.id, amount: '500', note: 'wire #42' }, key);
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      expect(first.body).toEqual({
        transactionId: expect.any(String),
        balance: { accountId: `client:${c.id}`, kind: 'client', available: '500', held: '0', total: '500' },
      });
      const again = await topup({ clientId: c.id, amount: '500', note: 'wire #42' }, key);
      expect(again.status).toBe(201);
      expect(again.body.transactionId).toBe(first.body.transactionId);
      expect(again.body.balance.total).toBe('500');
      const different = await topup({ clientId: c.id, amount: 600 }, key);
      expect([different.status, different.body]).toEqual([
        409,
        { error: { code: 'conflict', message: 'Idempotency-Key was already used for a different top-up' } },
      ]);

      const tx = await ledger().findTransaction(`topup:${c.id}:${key}`);
      expect(tx?.metadata).toMatchObject({
        adminKeyId: 'ADMIN_API_KEY',
        note: 'wire #42',
        at: expect.any(String),
      });
    });

    it('is for admins only', async () => {
      const c = await newClient('self-service');
      const n = await node('topup-node');
      for (const caller of [c.api, suite.s.ownerApi, n.api]) {
        const r = await topup({ clientId: c.id, amount: 100 }, randomUUID(), caller);
        expect([r.status, r.body]).toEqual([403, forbidden('admin')]);
      }
      expect((await c.api.get(`/api/tokens/balance/client:${c.id}`)).body.total).toBe('0');
    });

    it.each([
      ['a float amount', { amount: 2.5 }, NOT_AN_INTEGER],
      ['a negative amount', { amount: '-100' }, NOT_DIGITS],
      ['a missing amount', {}, 'amount: Invalid input'],
      [
        'a note over 500 characters',
        { amount: 100, note: 'n'.repeat(501) },
        'note: Too big: expected string to have <=500 characters',
      ],
    ])('refuses %s with 400', async (_what, fields, message) => {
      const c = await newClient('bad-topup');
      const r = await topup({ clientId: c.id, ...fields });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'validation_failed', message });
    });

    it('answers 400 without an Idempotency-Key or with a malformed client id, and 404 for an unknown client', async () => {
      const c = await newClient('key-less');
      const noKey = await topup({ clientId: c.id, amount: 100 }, null);
      expect([noKey.status, noKey.body]).toEqual([
        400,
        {
          error: { code: 'validation_failed', message: 'Idempotency-Key: required header for this endpoint' },
        },
      ]);
      const malformed = await topup({ clientId: 'acme', amount: 100 });
      expect(malformed.status).toBe(400);
      expect(malformed.body.error).toMatchObject({
        code: 'validation_failed',
        message: 'clientId: must be a client id (UUID)',
      });
      const unknown = await topup({ clientId: randomUUID(), amount: 100 });
      expect([unknown.status, unknown.body]).toEqual([404, notFound('client')]);
    });
  });

  describe('history', () => {
    it('pages through an account newest first and filters by type and time', async () => {
      const c = await newClient('historian');
      for (const amount of [100, 200, 300, 400, 500]) {
        expect((await topup({ clientId: c.id, amount })).status).toBe(201);
      }
      const n = await node('history-node');
      await fundNode(n.id, 1_000n);
      expect((await withdraw(n.api, { amount: 250, destination: 'acct-h' })).status).toBe(202);

      const seen: Array<{ type: string; amount: string }> = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r = await c.api.get(
          `/api/tokens/history/client:${c.id}?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        expect(r.body.accountId).toBe(`client:${c.id}`);
        expect(r.body.entries.length).toBeLessThanOrEqual(2);
        seen.push(...r.body.entries);
        cursor = r.body.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).toBe(3);
      expect(seen.map((e) => [e.type, e.amount])).toEqual([
        ['topup', '500'],
        ['topup', '400'],
        ['topup', '300'],
        ['topup', '200'],
        ['topup', '100'],
      ]);

      const reserves = await n.api.get(`/api/tokens/history/node:${n.id}?type=withdrawal_reserve`);
      expect(reserves.body.entries.map((e: { type: string }) => e.type)).toEqual(['withdrawal_reserve']);
      const both = await n.api.get(`/api/tokens/history/node:${n.id}?type=topup&type=withdrawal_reserve`);
      expect(both.body.entries.map((e: { type: string }) => e.type).sort()).toEqual([
        'topup',
        'withdrawal_reserve',
      ]);
      const none = await n.api.get(`/api/tokens/history/node:${n.id}?type=capture`);
      expect(none.body).toEqual({ accountId: `node:${n.id}`, entries: [], nextCursor: null });

      const future = new Date(Date.now() + 3_600_000).toISOString();
      const later = await c.api.get(`/api/tokens/history/client:${c.id}?since=${encodeURIComponent(future)}`);
      expect(later.body.entries).toEqual([]);
      const earlier = await c.api.get(
        `/api/tokens/history/client:${c.id}?until=${encodeURIComponent(future)}`,
      );
      expect(earlier.body.entries).toHaveLength(5);
    });

    it.each([
      ['an unknown type', 'type=bonus'],
      ['a limit of 0', 'limit=0'],
      ['a limit over 100', 'limit=101'],
      ['a since that is not a date-time', 'since=yesterday'],
      ['until before since', 'since=2026-11-27T10:00:00Z&until=2026-11-27T09:00:00Z'],
      ['an unknown parameter', 'kind=node'],
    ])('refuses %s with 400', async (_what, query) => {
      const r = await suite.s.admin.get(`/api/tokens/history/platform?${query}`);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
    });
  });
});
