import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createPrisma } from '../lib/db/client.js';
import { createLedger } from '../lib/ledger/ledger.js';
import {
  type AccountKind,
  type AccountRef,
  InsufficientFundsError,
  type Ledger,
  NON_NEGATIVE_KINDS,
  type PostInput,
  type PostResult,
  ReversalRefusedError,
  type TransactionType,
} from '../lib/ledger/types.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

/**
 * Model-based test: random short sequences of ledger operations run against the real database and
 * against a model that tracks every balance in plain bigint. After each command the two must agree,
 * and InsufficientFundsError must be raised exactly when the model predicts an overdraft.
 * Each run uses fresh client/node/task ids, so runs share one database without interfering.
 */

const backend = process.env.DATABASE_URL ? 'postgres' : 'pglite';
// 2000 runs took ~50 s on PostgreSQL 15 and ~63 s on PGlite (2-core machine, under load), so both
// backends keep the default; LEDGER_PROPERTY_RUNS overrides it (e.g. 100 while iterating).
const RUNS = Number(process.env.LEDGER_PROPERTY_RUNS ?? 2000);

const SYSTEM_KINDS: AccountKind[] = ['platform_fees', 'external_topups', 'external_payouts'];
const SLOTS = 3; // tasks and withdrawals per run

type Key = string;
const keyOf = (ref: AccountRef): Key => `${ref.kind}:${ref.ownerId ?? '-'}`;

interface ModelTx {
  id: string;
  type: TransactionType;
  deltas: Map<Key, bigint>;
  /** Idempotency key of the reversal that undid it. */
  reversedBy: string | null;
}

interface Model {
  clientId: string;
  nodeId: string;
  taskIds: string[];
  withdrawalIds: string[];
  balances: Map<Key, bigint>;
  /** Idempotency key → transaction id, for every key the ledger accepted. */
  keys: Map<string, string>;
  txs: ModelTx[];
  holds: Map<number, bigint>;
  reserves: Map<number, bigint>;
  /** Every post issued (accepted or not), for replays. */
  posted: PostInput[];
}

interface Real {
  ledger: Ledger;
  /** Balances of SYSTEM_KINDS, in one query (balance() covers them in tests/ledger.test.ts). */
  systemBalances(): Promise<bigint[]>;
}

/** How often each command ended each way, to show the runs were not vacuous. */
const stats = new Map<string, number>();
const count = (what: string) => stats.set(what, (stats.get(what) ?? 0) + 1);

const refs = (m: Model) => ({
  client: { kind: 'client', ownerId: m.clientId } as AccountRef,
  hold: { kind: 'client_hold', ownerId: m.clientId } as AccountRef,
  node: { kind: 'node', ownerId: m.nodeId } as AccountRef,
  pending: { kind: 'node_pending', ownerId: m.nodeId } as AccountRef,
  fees: { kind: 'platform_fees' } as AccountRef,
  topups: { kind: 'external_topups' } as AccountRef,
  payouts: { kind: 'external_payouts' } as AccountRef,
});

function legDeltas(input: PostInput): Map<Key, bigint> {
  const deltas = new Map<Key, bigint>();
  for (const leg of input.legs) {
    deltas.set(keyOf(leg.from), (deltas.get(keyOf(leg.from)) ?? 0n) - leg.amount);
    deltas.set(keyOf(leg.to), (deltas.get(keyOf(leg.to)) ?? 0n) + leg.amount);
  }
  return deltas;
}

/** The non-negative accounts `deltas` would take below zero. */
function overdrawn(m: Model, deltas: Map<Key, bigint>): Key[] {
  return [...deltas]
    .filter(([key, delta]) => {
      const kind = key.split(':')[0] as AccountKind;
      return NON_NEGATIVE_KINDS.includes(kind) && (m.balances.get(key) ?? 0n) + delta < 0n;
    })
    .map(([key]) => key);
}

function apply(m: Model, deltas: Map<Key, bigint>) {
  for (const [key, delta] of deltas) m.balances.set(key, (m.balances.get(key) ?? 0n) + delta);
}

async function outcome(p: Promise<PostResult>): Promise<{ ok?: PostResult; err?: unknown }> {
  try {
    return { ok: await p };
  } catch (err) {
    return { err };
  }
}

/** Post through the ledger and check the outcome the model predicts; returns the result when created. */
async function expectPost(m: Model, r: Real, input: PostInput, name: string): Promise<PostResult | null> {
  m.posted.push(input);
  const known = m.keys.get(input.idempotencyKey);
  const deltas = legDeltas(input);
  const short = known ? [] : overdrawn(m, deltas);
  const got = await outcome(r.ledger.post(input));
  if (known) {
    expect(got).toEqual({ ok: { transactionId: known, created: false } });
    count(`${name}: replayed`);
  } else if (short.length) {
    expect(got.err).toBeInstanceOf(InsufficientFundsError);
    const account = keyOf((got.err as InsufficientFundsError).account);
    expect(short).toContain(account);
    const available = m.balances.get(account) ?? 0n;
    expect(got.err).toMatchObject({ available, requested: -(deltas.get(account) as bigint) });
    count(`${name}: insufficient`);
  } else {
    expect(got.err).toBeUndefined();
    expect(got.ok?.created).toBe(true);
    const id = got.ok?.transactionId as string;
    apply(m, deltas);
    m.keys.set(input.idempotencyKey, id);
    m.txs.push({ id, type: input.type, deltas, reversedBy: null });
    count(`${name}: created`);
  }
  await expectBalances(m, r);
  return known || short.length ? null : (got.ok as PostResult);
}

async function expectBalances(m: Model, r: Real) {
  const a = refs(m);
  const of = (ref: AccountRef) => m.balances.get(keyOf(ref)) ?? 0n;
  const pair = (available: AccountRef, held: AccountRef) => ({
    available: of(available),
    held: of(held),
    total: of(available) + of(held),
  });
  const [client, node, system] = await Promise.all([
    r.ledger.balance(a.client),
    r.ledger.balance(a.node),
    r.systemBalances(),
  ]);
  expect({ client, node, system }).toEqual({
    client: pair(a.client, a.hold),
    node: pair(a.node, a.pending),
    system: SYSTEM_KINDS.map((kind) => of({ kind })),
  });
}

type Cmd = fc.AsyncCommand<Model, Real>;

class TopUp implements Cmd {
  constructor(readonly amount: bigint) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const a = refs(m);
    const legs = [{ from: a.topups, to: a.client, amount: this.amount }];
    await expectPost(m, r, { idempotencyKey: `topup:${randomUUID()}`, type: 'topup', legs }, 'topup');
  }
  toString = () => `topUp(${this.amount})`;
}

class Hold implements Cmd {
  constructor(
    readonly slot: number,
    readonly amount: bigint,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const a = refs(m);
    const taskId = m.taskIds[this.slot] as string;
    const legs = [{ from: a.client, to: a.hold, amount: this.amount }];
    const input: PostInput = { idempotencyKey: `task:${taskId}:hold`, type: 'hold', reference: taskId, legs };
    if (await expectPost(m, r, input, 'hold')) m.holds.set(this.slot, this.amount);
  }
  toString = () => `hold(task ${this.slot}, ${this.amount})`;
}

/** The `pick`-th of the slots held (tasks) or reserved (withdrawals); commands act on existing ones. */
const picked = (slots: Map<number, bigint>, pick: number) =>
  [...slots][pick % slots.size] as [number, bigint];

/** Capture a held task: reward to the node, fee to the platform, the rest back to the client. */
class Capture implements Cmd {
  constructor(
    readonly pick: number,
    readonly rewardPct: number,
    readonly feePct: number,
  ) {}
  check = (m: Readonly<Model>) => m.holds.size > 0;
  async run(m: Model, r: Real) {
    const a = refs(m);
    const [slot, held] = picked(m.holds, this.pick);
    const reward = (held * BigInt(this.rewardPct)) / 100n;
    const fee = ((held - reward) * BigInt(this.feePct)) / 100n;
    const legs = [
      { from: a.hold, to: a.node, amount: reward },
      { from: a.hold, to: a.fees, amount: fee },
      { from: a.hold, to: a.client, amount: held - reward - fee },
    ].filter((l) => l.amount > 0n);
    const taskId = m.taskIds[slot] as string;
    await expectPost(m, r, { idempotencyKey: `task:${taskId}:settle`, type: 'capture', legs }, 'capture');
  }
  toString = () => `capture(held #${this.pick}, ${this.rewardPct}% reward, ${this.feePct}% fee)`;
}

/** Release a held task's funds; shares the settle key with capture, so only one of them ever posts. */
class Release implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.holds.size > 0;
  async run(m: Model, r: Real) {
    const a = refs(m);
    const [slot, held] = picked(m.holds, this.pick);
    const legs = [{ from: a.hold, to: a.client, amount: held }];
    const taskId = m.taskIds[slot] as string;
    await expectPost(m, r, { idempotencyKey: `task:${taskId}:settle`, type: 'release', legs }, 'release');
  }
  toString = () => `release(held #${this.pick})`;
}

class Reserve implements Cmd {
  constructor(
    readonly slot: number,
    readonly amount: bigint,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const a = refs(m);
    const id = m.withdrawalIds[this.slot] as string;
    const legs = [{ from: a.node, to: a.pending, amount: this.amount }];
    const input: PostInput = { idempotencyKey: `withdrawal:${id}:reserve`, type: 'withdrawal_reserve', legs };
    if (await expectPost(m, r, input, 'withdrawal_reserve')) m.reserves.set(this.slot, this.amount);
  }
  toString = () => `reserve(withdrawal ${this.slot}, ${this.amount})`;
}

/** Complete (paid out) or reverse (back to the node) a reserved withdrawal, under one settle key. */
class SettleWithdrawal implements Cmd {
  constructor(
    readonly pick: number,
    readonly type: 'withdrawal_complete' | 'withdrawal_reverse',
  ) {}
  check = (m: Readonly<Model>) => m.reserves.size > 0;
  async run(m: Model, r: Real) {
    const a = refs(m);
    const [slot, reserved] = picked(m.reserves, this.pick);
    const to = this.type === 'withdrawal_complete' ? a.payouts : a.node;
    const legs = [{ from: a.pending, to, amount: reserved }];
    const id = m.withdrawalIds[slot] as string;
    await expectPost(m, r, { idempotencyKey: `withdrawal:${id}:settle`, type: this.type, legs }, this.type);
  }
  toString = () => `${this.type}(reserved #${this.pick})`;
}

/** Generic reverse() of an earlier transaction; `variant` picks one of two keys, so some are replays. */
class Reverse implements Cmd {
  constructor(
    readonly index: number,
    readonly variant: number,
  ) {}
  check = (m: Readonly<Model>) => m.txs.length > 0;
  async run(m: Model, r: Real) {
    const target = m.txs[this.index % m.txs.length] as ModelTx;
    const key = `reverse:${target.id}:${this.variant}`;
    const known = m.keys.get(key);
    const deltas = new Map([...target.deltas].map(([k, d]) => [k, -d]));
    const got = await outcome(r.ledger.reverse(target.id, key, { by: 'property test' }));
    if (known) {
      expect(got).toEqual({ ok: { transactionId: known, created: false } });
      count('reverse: replayed');
    } else if (target.type === 'reversal' || target.reversedBy) {
      expect(got.err).toBeInstanceOf(ReversalRefusedError);
      const reason = target.type === 'reversal' ? 'is_reversal' : 'already_reversed';
      expect(got.err).toMatchObject({ reason });
      count(`reverse: ${reason}`);
    } else if (overdrawn(m, deltas).length) {
      expect(got.err).toBeInstanceOf(InsufficientFundsError);
      count('reverse: insufficient');
    } else {
      expect(got.ok?.created).toBe(true);
      const id = got.ok?.transactionId as string;
      apply(m, deltas);
      m.keys.set(key, id);
      target.reversedBy = key;
      m.txs.push({ id, type: 'reversal', deltas, reversedBy: null });
      count('reverse: created');
    }
    await expectBalances(m, r);
  }
  toString = () => `reverse(tx #${this.index}, key ${this.variant})`;
}

/** Re-send an earlier post unchanged, as a retried activity or HTTP request would. */
class Replay implements Cmd {
  constructor(readonly index: number) {}
  check = (m: Readonly<Model>) => m.posted.length > 0;
  async run(m: Model, r: Real) {
    const input = m.posted[this.index % m.posted.length] as PostInput;
    await expectPost(m, r, input, 'replay');
  }
  toString = () => `replay(post #${this.index})`;
}

const amount = fc.bigInt({ min: 1n, max: 60n });
const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const pick = fc.nat({ max: 7 });
const pct = fc.integer({ min: 0, max: 100 });
/** Weighted towards the settlement paths, which need a hold or reserve first. */
const commands = [
  fc.oneof(
    { weight: 2, arbitrary: amount.map((a) => new TopUp(a)) },
    { weight: 3, arbitrary: fc.tuple(slot, amount).map(([s, a]) => new Hold(s, a)) },
    { weight: 3, arbitrary: fc.tuple(pick, pct, pct).map(([p, reward, fee]) => new Capture(p, reward, fee)) },
    { weight: 2, arbitrary: pick.map((p) => new Release(p)) },
    { weight: 3, arbitrary: fc.tuple(slot, amount).map(([s, a]) => new Reserve(s, a)) },
    { weight: 2, arbitrary: pick.map((p) => new SettleWithdrawal(p, 'withdrawal_complete')) },
    { weight: 2, arbitrary: pick.map((p) => new SettleWithdrawal(p, 'withdrawal_reverse')) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.nat(), fc.integer({ min: 0, max: 1 })).map(([i, v]) => new Reverse(i, v)),
    },
    { weight: 2, arbitrary: fc.nat().map((i) => new Replay(i)) },
  ),
];

describe(`ledger model (${backend}, ${RUNS} runs)`, () => {
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

  /** A fresh client and node, funded as drawn; system balances are shared, so start from theirs. */
  async function setup(clientFunds: bigint, nodeFunds: bigint): Promise<{ model: Model; real: Real }> {
    const model: Model = {
      clientId: randomUUID(),
      nodeId: randomUUID(),
      taskIds: Array.from({ length: SLOTS }, () => randomUUID()),
      withdrawalIds: Array.from({ length: SLOTS }, () => randomUUID()),
      balances: new Map(),
      keys: new Map(),
      txs: [],
      holds: new Map(),
      reserves: new Map(),
      posted: [],
    };
    const real: Real = { ledger, systemBalances };
    const system = await systemBalances();
    for (const [i, kind] of SYSTEM_KINDS.entries()) model.balances.set(keyOf({ kind }), system[i] as bigint);
    // One seed transaction funds the client and/or the node (a reversible transaction like any other).
    const a = refs(model);
    const legs = [
      { from: a.topups, to: a.client, amount: clientFunds },
      { from: a.topups, to: a.node, amount: nodeFunds },
    ].filter((l) => l.amount > 0n);
    if (legs.length) {
      await expectPost(model, real, { idempotencyKey: `seed:${randomUUID()}`, type: 'topup', legs }, 'seed');
    }
    return { model, real };
  }

  async function systemBalances(): Promise<bigint[]> {
    const rows = await prisma.$queryRaw<Array<{ kind: AccountKind; balance: bigint }>>`
      SELECT kind::text AS kind, balance FROM ledger_accounts WHERE owner_key = '-'`;
    return SYSTEM_KINDS.map((kind) => rows.find((r) => r.kind === kind)?.balance ?? 0n);
  }

  /** What verify() checks, for this run's accounts and transactions only (a full verify per run is O(n²)). */
  async function expectRunConsistent(m: Model) {
    const drift = await prisma.$queryRaw<Array<{ kind: string }>>`
      SELECT a.kind::text AS kind FROM ledger_accounts a LEFT JOIN ledger_postings p ON p.account_id = a.id
      WHERE a.owner_key IN (${m.clientId}, ${m.nodeId})
      GROUP BY a.id HAVING a.balance <> COALESCE(SUM(p.amount), 0)`;
    const unbalanced = await prisma.$queryRaw<Array<{ transaction_id: string }>>`
      SELECT transaction_id FROM ledger_postings WHERE transaction_id = ANY(${m.txs.map((t) => t.id)}::uuid[])
      GROUP BY transaction_id HAVING SUM(amount) <> 0`;
    expect({ drift, unbalanced }).toEqual({ drift: [], unbalanced: [] });
  }

  it('agrees with a plain-bigint model of balances, idempotency and overdrafts', async () => {
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(
        fc.bigInt({ min: 0n, max: 100n }),
        fc.bigInt({ min: 0n, max: 100n }),
        fc.commands(commands, { maxCommands: 8, size: 'max' }),
        async (clientFunds, nodeFunds, cmds) => {
          let model: Model | undefined;
          await fc.asyncModelRun(async () => {
            const s = await setup(clientFunds, nodeFunds);
            model = s.model;
            return s;
          }, cmds);
          await expectRunConsistent(model as Model);
        },
      ),
      { numRuns: RUNS },
    );
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `ledger model: ${RUNS} runs on ${backend} in ${seconds} s`,
      Object.fromEntries([...stats].sort()),
    );

    expect(await ledger.verify()).toEqual({ ok: true, problems: [] });
    if (RUNS >= 100) {
      // Not vacuous: every command succeeded somewhere, and the refusals the model predicts happened.
      for (const name of [
        'topup',
        'hold',
        'capture',
        'release',
        'withdrawal_reserve',
        'withdrawal_complete',
        'withdrawal_reverse',
        'reverse',
      ]) {
        expect(stats.get(`${name}: created`), name).toBeGreaterThan(0);
      }
      for (const what of ['hold: insufficient', 'withdrawal_reserve: insufficient', 'replay: replayed']) {
        expect(stats.get(what), what).toBeGreaterThan(0);
      }
    }
  }, 1_800_000);

  it('stores postings that sum to zero per transaction', async () => {
    const id = randomUUID();
    const { transactionId } = await ledger.post({
      idempotencyKey: `sum:${id}`,
      type: 'capture',
      legs: [
        { from: { kind: 'external_topups' }, to: { kind: 'client', ownerId: id }, amount: 9n },
        { from: { kind: 'client', ownerId: id }, to: { kind: 'node', ownerId: id }, amount: 4n },
      ],
    });
    const rows = await prisma.$queryRaw<Array<{ n: number; total: bigint }>>`
      SELECT COUNT(*)::int AS n, SUM(amount)::bigint AS total FROM ledger_postings WHERE transaction_id = ${transactionId}::uuid`;
    expect(rows).toEqual([{ n: 4, total: 0n }]);
    const anywhere = await prisma.$queryRaw<unknown[]>`
      SELECT transaction_id FROM ledger_postings GROUP BY transaction_id HAVING SUM(amount) <> 0`;
    expect(anywhere).toEqual([]);
  });

  it('refuses UPDATE, DELETE and TRUNCATE of postings and transactions in the database', async () => {
    const id = randomUUID();
    const { transactionId } = await ledger.post({
      idempotencyKey: `immutable:${id}`,
      type: 'topup',
      legs: [{ from: { kind: 'external_topups' }, to: { kind: 'client', ownerId: id }, amount: 5n }],
    });
    const attempts: Array<[string, () => Promise<unknown>]> = [
      [
        'update posting',
        () =>
          prisma.$executeRaw`UPDATE ledger_postings SET amount = amount * 2 WHERE transaction_id = ${transactionId}::uuid`,
      ],
      [
        'delete posting',
        () => prisma.$executeRaw`DELETE FROM ledger_postings WHERE transaction_id = ${transactionId}::uuid`,
      ],
      [
        'update transaction',
        () =>
          prisma.$executeRaw`UPDATE ledger_transactions SET type = 'hold' WHERE id = ${transactionId}::uuid`,
      ],
      [
        'delete transaction',
        () => prisma.$executeRaw`DELETE FROM ledger_transactions WHERE id = ${transactionId}::uuid`,
      ],
      ['delete via client', () => prisma.ledgerPosting.deleteMany({ where: { transactionId } })],
      [
        'delete transaction via client',
        () => prisma.ledgerTransaction.delete({ where: { id: transactionId } }),
      ],
      [
        'update via client',
        () => prisma.ledgerPosting.updateMany({ where: { transactionId }, data: { amount: 1n } }),
      ],
      ['truncate', () => prisma.$executeRaw`TRUNCATE ledger_postings, ledger_transactions`],
    ];
    for (const [what, attempt] of attempts) {
      await expect(attempt(), what).rejects.toThrow(/append-only/);
    }
    const stored = await ledger.findTransaction(`immutable:${id}`);
    expect(stored?.postings.map((p) => p.amount).sort()).toEqual([-5n, 5n]);
  });
});
