import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createPrisma } from '../lib/db/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import {
  type AccountRef,
  InsufficientFundsError,
  type Ledger,
  LedgerInputError,
  type PostInput,
  ReversalRefusedError,
} from '../lib/ledger/types.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const client = (ownerId: string): AccountRef => ({ kind: 'client', ownerId });
const clientHold = (ownerId: string): AccountRef => ({ kind: 'client_hold', ownerId });
const node = (ownerId: string): AccountRef => ({ kind: 'node', ownerId });
const nodePending = (ownerId: string): AccountRef => ({ kind: 'node_pending', ownerId });
const topups: AccountRef = { kind: 'external_topups' };
const fees: AccountRef = { kind: 'platform_fees' };

describe('ledger', () => {
  let db: TestDatabase;
  let prisma: PrismaClient;
  let ledger: Ledger;

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: true });
    prisma = createPrisma(db.url, { max: 10 });
    ledger = createLedger(prisma);
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const topUp = (clientId: string, amount: bigint, key = `topup:${randomUUID()}`) =>
    ledger.post({
      idempotencyKey: key,
      type: 'topup',
      legs: [{ from: topups, to: client(clientId), amount }],
    });

  /** A node with `amount` earned the way nodes earn: a client's task captured to it. */
  async function fundedNode(amount: bigint): Promise<string> {
    const clientId = randomUUID();
    const nodeId = randomUUID();
    const taskId = randomUUID();
    await topUp(clientId, amount);
    await ledger.post({
      idempotencyKey: `task:${taskId}:hold`,
      type: 'hold',
      legs: [{ from: client(clientId), to: clientHold(clientId), amount }],
    });
    await ledger.post({
      idempotencyKey: `task:${taskId}:settle`,
      type: 'capture',
      legs: [{ from: clientHold(clientId), to: node(nodeId), amount }],
    });
    return nodeId;
  }

  const counts = async () =>
    (
      await prisma.$queryRaw<Array<{ accounts: number; transactions: number; postings: number }>>`
        SELECT (SELECT COUNT(*) FROM ledger_accounts)::int AS accounts,
               (SELECT COUNT(*) FROM ledger_transactions)::int AS transactions,
               (SELECT COUNT(*) FROM ledger_postings)::int AS postings`
    )[0];

  it('posts a top-up, reports balances, and treats unknown accounts as empty', async () => {
    const clientId = randomUUID();
    expect(await ledger.balance(client(clientId))).toEqual({ available: 0n, held: 0n, total: 0n });

    const posted = await topUp(clientId, 1_500n);

    expect(posted.created).toBe(true);
    expect(await ledger.balance(client(clientId))).toEqual({ available: 1_500n, held: 0n, total: 1_500n });
    // The hold account reports the same pair.
    expect(await ledger.balance(clientHold(clientId))).toEqual({
      available: 1_500n,
      held: 0n,
      total: 1_500n,
    });
  });

  it('replays an idempotency key without moving anything', async () => {
    const clientId = randomUUID();
    const first = await topUp(clientId, 100n, `topup:${clientId}`);
    const before = await counts();

    const again = await topUp(clientId, 999n, `topup:${clientId}`);

    expect(again).toEqual({ transactionId: first.transactionId, created: false });
    expect(await counts()).toEqual(before);
    expect((await ledger.balance(client(clientId))).available).toBe(100n);
  });

  it('posts the same request issued 10 times concurrently exactly once', async () => {
    const clientId = randomUUID();
    await topUp(clientId, 50n);
    const hold: PostInput = {
      idempotencyKey: `task:${randomUUID()}:hold`,
      type: 'hold',
      legs: [{ from: client(clientId), to: clientHold(clientId), amount: 50n }], // all of it
    };

    const results = await Promise.all(Array.from({ length: 10 }, () => ledger.post(hold)));

    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.transactionId)).size).toBe(1);
    const stored = await prisma.ledgerTransaction.count({ where: { idempotencyKey: hold.idempotencyKey } });
    expect(stored).toBe(1);
    expect(await ledger.balance(client(clientId))).toEqual({ available: 0n, held: 50n, total: 50n });
  });

  it('lets exactly 5 of 20 concurrent withdrawals through when the balance covers 5', async () => {
    const nodeId = await fundedNode(500n);
    const watcher = new pg.Client({ connectionString: db.url });
    await watcher.connect();
    let racing = true;
    let lowest = 500n;
    // Watches the cached balance and the postings' sum from another connection while the race runs.
    const watching = (async () => {
      while (racing) {
        const { rows } = await watcher.query<{ balance: string; derived: string }>(
          `SELECT a.balance::text, COALESCE(SUM(p.amount), 0)::text AS derived
           FROM ledger_accounts a LEFT JOIN ledger_postings p ON p.account_id = a.id
           WHERE a.kind = 'node' AND a.owner_key = $1 GROUP BY a.id`,
          [nodeId],
        );
        for (const value of [rows[0]?.balance, rows[0]?.derived]) {
          if (value !== undefined && BigInt(value) < lowest) lowest = BigInt(value);
        }
      }
    })();

    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        ledger.post({
          idempotencyKey: `withdrawal:${nodeId}-${i}:reserve`,
          type: 'withdrawal_reserve',
          legs: [{ from: node(nodeId), to: nodePending(nodeId), amount: 100n }],
        }),
      ),
    );
    racing = false;
    await watching;
    await watcher.end();

    const failed = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason);
    expect(outcomes.filter((o) => o.status === 'fulfilled' && o.value.created)).toHaveLength(5);
    expect(failed).toHaveLength(15);
    for (const err of failed) {
      expect(err).toBeInstanceOf(InsufficientFundsError);
      expect(err).toMatchObject({ account: node(nodeId), available: 0n, requested: 100n });
    }
    expect(lowest).toBeGreaterThanOrEqual(0n);
    expect(await ledger.balance(node(nodeId))).toEqual({ available: 0n, held: 500n, total: 500n });
  });

  it('settles a task once when its capture and release race (shared settle key)', async () => {
    const clientId = randomUUID();
    const nodeId = randomUUID();
    const taskId = randomUUID();
    await topUp(clientId, 100n);
    await ledger.post({
      idempotencyKey: `task:${taskId}:hold`,
      type: 'hold',
      legs: [{ from: client(clientId), to: clientHold(clientId), amount: 100n }],
    });
    const key = `task:${taskId}:settle`;
    const capture = () =>
      ledger.post({
        idempotencyKey: key,
        type: 'capture',
        legs: [
          { from: clientHold(clientId), to: node(nodeId), amount: 70n },
          { from: clientHold(clientId), to: fees, amount: 10n },
          { from: clientHold(clientId), to: client(clientId), amount: 20n },
        ],
      });
    const release = () =>
      ledger.post({
        idempotencyKey: key,
        type: 'release',
        legs: [{ from: clientHold(clientId), to: client(clientId), amount: 100n }],
      });

    const results = await Promise.all([capture(), release(), capture(), release()]);

    expect(results.filter((r) => r.created)).toHaveLength(1);
    const settled = await ledger.findTransaction(key);
    const c = await ledger.balance(client(clientId));
    const n = await ledger.balance(node(nodeId));
    if (settled?.type === 'capture') {
      expect([c, n.available]).toEqual([{ available: 20n, held: 0n, total: 20n }, 70n]);
    } else {
      expect(settled?.type).toBe('release');
      expect([c, n.available]).toEqual([{ available: 100n, held: 0n, total: 100n }, 0n]);
    }
  });

  it('writes nothing at all when funds are insufficient (not even the new accounts)', async () => {
    const clientId = randomUUID();
    await topUp(clientId, 10n);
    const before = await counts();
    const capture: PostInput = {
      idempotencyKey: `task:${randomUUID()}:settle`,
      type: 'capture',
      legs: [
        { from: client(clientId), to: node(randomUUID()), amount: 5n }, // a new account
        { from: client(clientId), to: fees, amount: 6n }, // 11 > 10
      ],
    };

    await expect(ledger.post(capture)).rejects.toMatchObject({
      name: 'InsufficientFundsError',
      account: client(clientId),
      available: 10n,
      requested: 11n,
    });
    expect(await counts()).toEqual(before);
    expect(await ledger.findTransaction(capture.idempotencyKey)).toBeNull();
    // The key was not used up: once funded, the same post goes through.
    await topUp(clientId, 1n);
    await expect(ledger.post(capture)).resolves.toMatchObject({ created: true });
  });

  it('refuses malformed posts before touching the database', async () => {
    const id = randomUUID();
    const leg = { from: client(id), to: clientHold(id), amount: 1n };
    const bad: Array<[string, Partial<PostInput> & Record<string, unknown>]> = [
      ['zero amount', { legs: [{ ...leg, amount: 0n }] }],
      ['negative amount', { legs: [{ ...leg, amount: -5n }] }],
      ['number amount', { legs: [{ ...leg, amount: 5 as unknown as bigint }] }],
      ['to itself', { legs: [{ ...leg, to: client(id.toUpperCase()) }] }],
      ['no legs', { legs: [] }],
      ['owner missing', { legs: [{ ...leg, from: { kind: 'client' } }] }],
      ['owner not a uuid', { legs: [{ ...leg, from: client('42') }] }],
      ['system account with owner', { legs: [{ ...leg, from: { kind: 'platform_fees', ownerId: id } }] }],
      ['unknown kind', { legs: [{ ...leg, from: { kind: 'bank' as 'client', ownerId: id } }] }],
      ['reversal by post', { type: 'reversal' }],
      ['unknown type', { type: 'gift' as 'topup' }],
      ['empty key', { idempotencyKey: '' }],
      ['bigint metadata', { metadata: { amount: 5n } }],
    ];
    const before = await counts();
    for (const [what, patch] of bad) {
      const input = {
        idempotencyKey: `bad:${randomUUID()}`,
        type: 'hold',
        legs: [leg],
        ...patch,
      } as PostInput;
      await expect(ledger.post(input), what).rejects.toBeInstanceOf(LedgerInputError);
    }
    expect(await counts()).toEqual(before);
  });

  it('reverses a transaction once, restoring the balances', async () => {
    const clientId = randomUUID();
    const nodeId = randomUUID();
    await topUp(clientId, 100n);
    const capture = await ledger.post({
      idempotencyKey: `task:${randomUUID()}:settle`,
      type: 'capture',
      reference: 'task-1',
      legs: [
        { from: client(clientId), to: node(nodeId), amount: 60n },
        { from: client(clientId), to: fees, amount: 15n },
      ],
    });
    const feesBefore = (await ledger.balance(fees)).available;

    const reversal = await ledger.reverse(capture.transactionId, `reverse:${capture.transactionId}`, {
      reason: 'disputed',
    });

    expect(reversal.created).toBe(true);
    expect((await ledger.balance(client(clientId))).available).toBe(100n);
    expect((await ledger.balance(node(nodeId))).available).toBe(0n);
    expect((await ledger.balance(fees)).available).toBe(feesBefore - 15n);
    const stored = await ledger.findTransaction(`reverse:${capture.transactionId}`);
    expect(stored).toMatchObject({
      type: 'reversal',
      reference: 'task-1',
      reversesId: capture.transactionId,
      metadata: { reason: 'disputed' },
    });
    expect(stored?.postings.map((p) => [p.account.kind, p.amount])).toEqual(
      expect.arrayContaining([
        ['client', 60n],
        ['client', 15n],
        ['node', -60n],
        ['platform_fees', -15n],
      ]),
    );

    // Same key: the same reversal. Another key, a reversal of the reversal, an unknown id: refused.
    await expect(ledger.reverse(capture.transactionId, `reverse:${capture.transactionId}`)).resolves.toEqual({
      transactionId: reversal.transactionId,
      created: false,
    });
    await expect(ledger.reverse(capture.transactionId, 'reverse:again')).rejects.toMatchObject({
      reason: 'already_reversed',
    });
    await expect(ledger.reverse(reversal.transactionId, 'reverse:reversal')).rejects.toMatchObject({
      reason: 'is_reversal',
    });
    await expect(ledger.reverse(randomUUID(), 'reverse:unknown')).rejects.toBeInstanceOf(
      ReversalRefusedError,
    );
    await expect(ledger.reverse('not-a-uuid', 'reverse:unknown')).rejects.toMatchObject({
      reason: 'not_found',
    });
  });

  it('refuses a reversal that would overdraw, and lets only one of two racing reversals through', async () => {
    const clientId = randomUUID();
    const top = await topUp(clientId, 40n);
    await ledger.post({
      idempotencyKey: `task:${randomUUID()}:hold`,
      type: 'hold',
      legs: [{ from: client(clientId), to: clientHold(clientId), amount: 30n }],
    });
    await expect(ledger.reverse(top.transactionId, `reverse:${top.transactionId}`)).rejects.toMatchObject({
      name: 'InsufficientFundsError',
      available: 10n,
      requested: 40n,
    });

    const other = await topUp(randomUUID(), 5n);
    const racing = await Promise.allSettled(
      ['a', 'b', 'c'].map((k) => ledger.reverse(other.transactionId, `reverse:${other.transactionId}:${k}`)),
    );
    expect(racing.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of racing.filter((r) => r.status === 'rejected')) {
      expect(r.reason).toMatchObject({ name: 'ReversalRefusedError', reason: 'already_reversed' });
    }
  });

  it('creates the same new accounts from racing posts without a deadlock surfacing', async () => {
    const a = randomUUID();
    const b = randomUUID();
    await Promise.all([topUp(a, 100n), topUp(b, 100n)]);
    const sinks = Array.from({ length: 4 }, () => node(randomUUID()));
    // Each post creates the same four accounts, listed in a different order.
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        ledger.post({
          idempotencyKey: `race:${randomUUID()}`,
          type: 'capture',
          legs: (i % 2 ? [...sinks].reverse() : sinks).map((to) => ({
            from: client(i % 2 ? a : b),
            to,
            amount: 1n,
          })),
        }),
      ),
    );
    expect(results.every((r) => r.created)).toBe(true);
    for (const sink of sinks) expect((await ledger.balance(sink)).available).toBe(10n);
  });

  it('pages through history newest first, with filters and running balances', async () => {
    const clientId = randomUUID();
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push((await topUp(clientId, BigInt(i))).transactionId); // balance 15
    const hold = await ledger.post({
      idempotencyKey: `task:${randomUUID()}:hold`,
      type: 'hold',
      reference: 'task-h',
      legs: [{ from: client(clientId), to: clientHold(clientId), amount: 4n }],
      metadata: { taskId: 'task-h' },
    });
    ids.push(hold.transactionId);

    const first = await ledger.history(client(clientId), { limit: 4 });
    expect(first.entries.map((e) => e.transactionId)).toEqual(ids.slice(2).reverse());
    expect(first.entries[0]).toMatchObject({
      type: 'hold',
      reference: 'task-h',
      amount: -4n,
      heldAmount: 4n,
      balanceAfter: 11n,
      metadata: { taskId: 'task-h' },
    });
    expect(first.entries[1]).toMatchObject({ type: 'topup', amount: 5n, heldAmount: 0n, balanceAfter: 15n });
    expect(first.nextCursor).toEqual(expect.any(String));

    const second = await ledger.history(client(clientId), { limit: 4, cursor: first.nextCursor as string });
    expect(second.entries.map((e) => e.transactionId)).toEqual(ids.slice(0, 2).reverse());
    expect(second.nextCursor).toBeNull();

    const holds = await ledger.history(clientHold(clientId), { limit: 10, types: ['hold'] });
    expect(holds.entries.map((e) => e.transactionId)).toEqual([hold.transactionId]);
    expect(await ledger.history(client(clientId), { limit: 10, until: new Date(0) })).toEqual({
      entries: [],
      nextCursor: null,
    });
    expect((await ledger.history(client(clientId), { limit: 10, since: new Date(0) })).entries).toHaveLength(
      6,
    );
    expect(await ledger.history(client(randomUUID()), { limit: 10 })).toEqual({
      entries: [],
      nextCursor: null,
    });
    await expect(ledger.history(client(clientId), { limit: 10, cursor: 'garbage' })).rejects.toBeInstanceOf(
      LedgerInputError,
    );
    await expect(ledger.history(client(clientId), { limit: 0 })).rejects.toBeInstanceOf(LedgerInputError);
  });

  it('pages exactly when one transaction has several postings on an account', async () => {
    const clientId = randomUUID();
    const nodeId = randomUUID();
    await topUp(clientId, 1_000n);
    const expected: string[] = [];
    for (let i = 0; i < 7; i++) {
      const legs = Array.from({ length: 1 + (i % 3) }, () => ({
        from: client(clientId),
        to: node(nodeId),
        amount: 1n,
      }));
      expected.unshift(
        (await ledger.post({ idempotencyKey: `multi:${randomUUID()}`, type: 'capture', legs })).transactionId,
      );
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await ledger.history(node(nodeId), { limit: 2, ...(cursor ? { cursor } : {}) });
      seen.push(...page.entries.map((e) => e.transactionId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(expected);
  });

  it('finds a transaction by idempotency key, with its postings', async () => {
    const clientId = randomUUID();
    await topUp(clientId, 7n, `topup:${clientId}`);
    expect(await ledger.findTransaction(`topup:${clientId}`)).toMatchObject({
      type: 'topup',
      reversesId: null,
      postings: [
        { account: client(clientId), amount: 7n, balanceAfter: 7n },
        { account: topups, amount: -7n },
      ],
    });
    expect(await ledger.findTransaction('no-such-key')).toBeNull();
  });

  it('verify() passes on a sound ledger and reports a tampered cached balance', async () => {
    expect(await ledger.verify()).toEqual({ ok: true, problems: [] });
    const clientId = randomUUID();
    await topUp(clientId, 10n);

    await prisma.$executeRaw`UPDATE ledger_accounts SET balance = 11 WHERE kind = 'client' AND owner_key = ${clientId}`;
    const tampered = await ledger.verify();

    expect(tampered.ok).toBe(false);
    expect(tampered.problems).toEqual([`account client:${clientId}: cached balance 11 ≠ 10 from postings`]);
    await prisma.$executeRaw`UPDATE ledger_accounts SET balance = 10 WHERE kind = 'client' AND owner_key = ${clientId}`;
    expect((await ledger.verify()).ok).toBe(true);
  });
});
