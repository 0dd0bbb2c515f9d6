import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, describe, expect, it } from 'vitest';
import { webhookPayoutAdapter } from '../activities/payouts/webhook.js';
import { ConfigError, loadConfig } from '../lib/config.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { apiClient, eventually, useCoordinator } from './helpers/coordinator.js';

// Withdrawals end to end: the api reserves at once, the withdrawal workflow (real Temporal dev server)
// pays through the webhook adapter, and settles in the ledger (real database, real Redis when
// REDIS_URL is set). The payout provider is a small HTTP server in this file.

const SECRET = `payout-secret-${randomBytes(16).toString('hex')}`;

interface PayoutCall {
  idempotencyKey: string | undefined;
  timestamp: string | undefined;
  signatureValid: boolean;
  body: Record<string, string>;
}

/**
 * The payout provider: checks the signature, records every call, and answers by the destination's
 * prefix: `reject:` → 400; `flaky:` → 500 twice, then 200; `hold:` → waits for release(); else 200.
 */
async function startProvider() {
  const calls: PayoutCall[] = [];
  const tries = new Map<string, number>();
  let waiting = 0;
  let releaseAll: (() => void) | undefined;
  const released = new Promise<void>((resolve) => {
    releaseAll = resolve;
  });

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString();
    const expected = `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`;
    const given = String(req.headers['x-neurogrid-signature'] ?? '');
    const signatureValid =
      given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
    const body = JSON.parse(raw) as Record<string, string>;
    const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
    calls.push({
      idempotencyKey,
      timestamp: req.headers['x-neurogrid-timestamp'] as string | undefined,
      signatureValid,
      body,
    });
    const answer = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    };
    if (!signatureValid) return answer(401, { error: 'bad signature' });

    const destination = body.destination ?? '';
    const n = (tries.get(idempotencyKey ?? '') ?? 0) + 1;
    tries.set(idempotencyKey ?? '', n);
    if (destination.startsWith('reject:')) return answer(400, { error: 'destination account closed' });
    if (destination.startsWith('flaky:') && n <= 2) return answer(500, { error: 'try again' });
    if (destination.startsWith('hold:')) {
      waiting++;
      await released;
    }
    answer(200, { reference: `pay_${body.withdrawalId}` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/payouts`,
    calls,
    callsFor: (withdrawalId: string) => calls.filter((c) => c.body.withdrawalId === withdrawalId),
    /** How many payouts are waiting for release() (`hold:` destinations). */
    waiting: () => waiting,
    release: () => releaseAll?.(),
    close: () =>
      new Promise<void>((resolve) => {
        releaseAll?.();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const provider = await startProvider();

describe('withdrawals', () => {
  const suite = useCoordinator({
    PAYOUT_ADAPTER: 'webhook',
    PAYOUT_WEBHOOK_URL: provider.url,
    PAYOUT_WEBHOOK_SECRET: SECRET,
    WITHDRAWAL_MIN_AMOUNT: '100',
  });
  afterAll(() => provider.close());

  const ledger = () => createLedger(suite.coordinator.services.prisma);

  /** A registered node with `amount` tokens earned (funded through the ledger: a test fixture). */
  async function fundedNode(name: string, amount: bigint) {
    const { nodeId, key } = await suite.s.registerNode(name);
    await ledger().post({
      idempotencyKey: `test-fund:${nodeId}`,
      type: 'topup',
      legs: [{ from: { kind: 'external_topups' }, to: { kind: 'node', ownerId: nodeId }, amount }],
    });
    return { nodeId, api: apiClient(suite.coordinator.url, key) };
  }

  const withdraw = (
    api: ReturnType<typeof apiClient>,
    body: { amount: number | string; destination: string },
    key: string = randomUUID(),
  ) => api.post('/api/tokens/withdraw', body, { 'Idempotency-Key': key });

  const balanceOf = async (api: ReturnType<typeof apiClient>, nodeId: string) => {
    const r = await api.get(`/api/tokens/balance/node:${nodeId}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as { available: string; held: string; total: string };
  };

  const settled = (api: ReturnType<typeof apiClient>, id: string) =>
    eventually(
      async () => {
        const r = await api.get(`/api/tokens/withdrawals/${id}`);
        return r.body.withdrawal.status === 'pending' ? undefined : r.body.withdrawal;
      },
      30_000,
      `withdrawal ${id} to settle`,
    );

  const workflowStatus = async (id: string) =>
    (await suite.temporal.workflow.getHandle(`withdrawal-${id}`).describe()).status.name;

  it('pays out through the signed webhook: available → held → gone', async () => {
    const { nodeId, api } = await fundedNode('payee', 1_000n);
    const r = await withdraw(api, { amount: 300, destination: 'hold:DE89 3704 0044 0532 0130 00' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const { id } = r.body.withdrawal;
    expect(r.body.withdrawal).toMatchObject({
      status: 'pending',
      amount: '300',
      destination: 'hold:DE89 3704 0044 0532 0130 00',
      nodeId,
      createdAt: expect.any(String),
    });
    expect(r.headers.get('location')).toBe(`/api/tokens/withdrawals/${id}`);

    // Reserved in the request, before the payout answers.
    expect(await balanceOf(api, nodeId)).toMatchObject({ available: '700', held: '300', total: '1000' });
    await eventually(async () => (provider.waiting() > 0 ? true : undefined), 10_000, 'the payout call');
    provider.release();

    const done = await settled(api, id);
    expect(done).toMatchObject({ status: 'completed', payoutReference: `pay_${id}`, failureReason: null });
    expect(done.completedAt).toEqual(expect.any(String));
    expect(await balanceOf(api, nodeId)).toMatchObject({ available: '700', held: '0', total: '700' });
    await expect.poll(() => workflowStatus(id), { timeout: 5_000 }).toBe('COMPLETED');

    const calls = provider.callsFor(id);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      idempotencyKey: `withdrawal:${id}`,
      signatureValid: true,
      timestamp: expect.stringMatching(/^\d+$/),
      body: {
        withdrawalId: id,
        idempotencyKey: `withdrawal:${id}`,
        nodeId,
        amount: '300',
        destination: 'hold:DE89 3704 0044 0532 0130 00',
      },
    });
    expect(calls[0]?.body.timestamp).toBe(calls[0]?.timestamp);
    expect(await ledger().verify()).toMatchObject({ ok: true });
  });

  it('reverses a payout the provider refuses: balance restored, status failed with the reason', async () => {
    const { nodeId, api } = await fundedNode('refused', 1_000n);
    const r = await withdraw(api, { amount: 400, destination: 'reject:closed-account' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const { id } = r.body.withdrawal;

    const done = await settled(api, id);
    expect(done).toMatchObject({
      status: 'failed',
      failureReason: 'payout provider refused the payout (HTTP 400): destination account closed',
      payoutReference: null,
    });
    expect(await balanceOf(api, nodeId)).toMatchObject({ available: '1000', held: '0', total: '1000' });
    expect(provider.callsFor(id)).toHaveLength(1); // refused for good: never retried
    await expect.poll(() => workflowStatus(id), { timeout: 5_000 }).toBe('FAILED');

    const history = await api.get(
      `/api/tokens/history/node:${nodeId}?type=withdrawal_reserve,withdrawal_reverse`,
    );
    expect(history.status).toBe(200);
    expect(history.body.entries.map((e: { type: string }) => e.type).sort()).toEqual([
      'withdrawal_reserve',
      'withdrawal_reverse',
    ]);
  });

  it('retries a provider outage with the same Idempotency-Key and pays once', async () => {
    const { nodeId, api } = await fundedNode('flaky', 1_000n);
    const r = await withdraw(api, { amount: 250, destination: 'flaky:acct-7' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const { id } = r.body.withdrawal;

    const done = await settled(api, id);
    expect(done).toMatchObject({ status: 'completed', payoutReference: `pay_${id}` });
    const calls = provider.callsFor(id);
    expect(calls).toHaveLength(3); // 500, 500, 200
    expect(new Set(calls.map((c) => c.idempotencyKey))).toEqual(new Set([`withdrawal:${id}`]));
    expect(calls.every((c) => c.signatureValid)).toBe(true);
    expect(await balanceOf(api, nodeId)).toMatchObject({ available: '750', held: '0', total: '750' });
  });

  it('accepts exactly 5 of 20 concurrent withdrawals when the balance covers 5, never going negative', async () => {
    const { nodeId, api } = await fundedNode('race', 500n);
    let sampling = true;
    const samples: bigint[] = [];
    const sampler = (async () => {
      while (sampling) {
        const b = await balanceOf(api, nodeId);
        samples.push(BigInt(b.available), BigInt(b.held));
      }
    })();

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => withdraw(api, { amount: 100, destination: `acct-${i}` })),
    );
    sampling = false;
    await sampler;

    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 402);
    expect(accepted).toHaveLength(5);
    expect(refused).toHaveLength(15);
    for (const r of refused) {
      expect(r.body).toEqual({
        error: {
          code: 'payment_required',
          message: expect.stringMatching(/^insufficient balance: \d+ tokens available, 100 requested$/),
        },
      });
    }
    expect(samples.every((v) => v >= 0n)).toBe(true);
    expect(await suite.coordinator.services.prisma.withdrawal.count({ where: { nodeId } })).toBe(5);

    await Promise.all(accepted.map((r) => settled(api, r.body.withdrawal.id)));
    expect(await balanceOf(api, nodeId)).toMatchObject({ available: '0', held: '0', total: '0' });
    expect(await ledger().verify()).toMatchObject({ ok: true });
  });

  it('joins the same withdrawal and workflow for a retried Idempotency-Key', async () => {
    const { nodeId, api } = await fundedNode('retry', 1_000n);
    const key = `wd-${randomBytes(4).toString('hex')}`;
    const body = { amount: '200', destination: 'acct-retry' };
    const [a, b] = await Promise.all([withdraw(api, body, key), withdraw(api, body, key)]);
    expect(a.status, JSON.stringify(a.body)).toBe(202);
    expect(b.status, JSON.stringify(b.body)).toBe(202);
    const { id } = a.body.withdrawal;
    expect(b.body.withdrawal.id).toBe(id);

    await settled(api, id);
    const again = await withdraw(api, body, key);
    expect(again.status).toBe(202);
    expect(again.body.withdrawal).toMatchObject({ id, status: 'completed' });

    const runs = [];
    for await (const wf of suite.temporal.workflow.list({ query: `WorkflowId = 'withdrawal-${id}'` })) {
      runs.push(wf);
    }
    expect(runs).toHaveLength(1);
    expect(provider.callsFor(id)).toHaveLength(1);
    expect(await balanceOf(api, nodeId)).toMatchObject({ available: '800', held: '0', total: '800' });

    const other = await withdraw(api, { amount: '300', destination: 'acct-retry' }, key);
    expect(other.status).toBe(409);
    expect(other.body).toEqual({
      error: { code: 'conflict', message: 'Idempotency-Key was already used for a different withdrawal' },
    });
  });
});

// The webhook adapter's answer to each kind of provider response, without a workflow around it.
describe('webhook payout adapter', () => {
  const request = {
    withdrawalId: 'w-1',
    idempotencyKey: 'withdrawal:w-1',
    nodeId: 'n-1',
    amount: '100',
    destination: 'acct',
  };
  const answering = (status: number, body = '') =>
    webhookPayoutAdapter({
      url: 'https://payouts.example/neurogrid',
      secret: SECRET,
      fetch: async () => new Response(body || null, { status }),
    });
  const failureOf = (adapter: ReturnType<typeof answering>) =>
    adapter.pay(request).then(
      () => expect.unreachable('the payout should have failed'),
      (err: unknown) => err,
    );

  it('takes the reference from a 2xx answer, or the idempotency key when there is none', async () => {
    expect(await answering(200, '{"reference":"tr_9"}').pay(request)).toEqual({ reference: 'tr_9' });
    expect(await answering(202, 'queued').pay(request)).toEqual({ reference: 'withdrawal:w-1' });
  });

  it.each([400, 403, 404, 422])(
    'refuses for good (non-retryable PayoutRejected) on HTTP %i',
    async (status) => {
      const err = await failureOf(answering(status, '{"error":{"message":"no such\\naccount"}}'));
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({
        type: 'PayoutRejected',
        nonRetryable: true,
        message: `payout provider refused the payout (HTTP ${status}): no such account`,
      });
    },
  );

  it.each([408, 409, 429, 500, 503, 302])('leaves HTTP %i to the retry policy', async (status) => {
    const err = await failureOf(answering(status));
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect((err as Error).message).toBe(`payout provider answered HTTP ${status}`);
  });

  it('leaves a network error to the retry policy', async () => {
    const adapter = webhookPayoutAdapter({
      url: 'https://payouts.example/neurogrid',
      secret: SECRET,
      fetch: async () => {
        throw new TypeError('fetch failed');
      },
    });
    const err = await failureOf(adapter);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect((err as Error).message).toBe('payout provider unreachable: fetch failed');
  });
});

describe('payout configuration', () => {
  const problemsFor = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
  };

  it('defaults to the local adapter and a minimum of 100', () => {
    expect(loadConfig({})).toMatchObject({ PAYOUT_ADAPTER: 'local', WITHDRAWAL_MIN_AMOUNT: 100 });
  });

  it('refuses to start the webhook adapter without its URL and a secret of at least 32 characters', () => {
    expect(problemsFor({ PAYOUT_ADAPTER: 'webhook' })).toEqual([
      'PAYOUT_WEBHOOK_URL: required when PAYOUT_ADAPTER=webhook',
      'PAYOUT_WEBHOOK_SECRET: required when PAYOUT_ADAPTER=webhook',
    ]);
    expect(
      problemsFor({
        PAYOUT_ADAPTER: 'webhook',
        PAYOUT_WEBHOOK_URL: 'ftp://payouts.example',
        PAYOUT_WEBHOOK_SECRET: 'short',
      }),
    ).toEqual([
      'PAYOUT_WEBHOOK_URL: must be a URL starting with http:// or https://',
      'PAYOUT_WEBHOOK_SECRET: must be at least 32 characters',
    ]);
    expect(problemsFor({ PAYOUT_ADAPTER: 'bank' })).toHaveLength(1);
    expect(problemsFor({ WITHDRAWAL_MIN_AMOUNT: '0' })).toHaveLength(1);
  });
});
