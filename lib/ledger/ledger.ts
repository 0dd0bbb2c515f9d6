import type { PrismaClient } from '../../generated/prisma/client.js';
import { type CanonicalRef, canonicalRef, pairOf, refKey, type Tx, toAccountRef } from './accounts.js';
import { readHistory } from './history.js';
import { MAX_AMOUNT } from './money.js';
import { type Draft, REVERSED_ELSEWHERE, writeTransaction } from './posting.js';
import {
  type AccountKind,
  type Balance,
  type Ledger,
  LedgerInputError,
  type LedgerTransactionRecord,
  type PostInput,
  ReversalRefusedError,
  TRANSACTION_TYPES,
  type TransactionType,
} from './types.js';
import { verifyLedger } from './verify.js';

export interface LedgerOptions {
  /** How long a post may wait for a pooled connection (ms). Default 10 000. */
  maxWait?: number;
  /** How long one post's database transaction may run (ms). Default 10 000. */
  timeout?: number;
}

const MAX_KEY_LENGTH = 256;
const MAX_LEGS = 64;
const MAX_METADATA_BYTES = 8_192;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The double-entry token ledger over PostgreSQL (see ./types.ts for the contract). Every write is one
 * database transaction that locks the accounts it touches, so concurrent posts on the same accounts
 * serialise and can never overdraw; writes to other accounts run in parallel.
 * @example const { created } = await createLedger(prisma).post({ idempotencyKey: `task:${id}:hold`, type: 'hold', legs });
 */
export function createLedger(prisma: PrismaClient, options: LedgerOptions = {}): Ledger {
  const txOptions = { maxWait: options.maxWait ?? 10_000, timeout: options.timeout ?? 10_000 };
  const inTransaction = <T>(fn: (tx: Tx) => Promise<T>) => retrying(() => prisma.$transaction(fn, txOptions));

  return {
    async post(input) {
      const draft = postDraft(input);
      const result = await inTransaction((tx) => writeTransaction(tx, draft));
      if (result === REVERSED_ELSEWHERE) throw new Error('ledger: a post collided with a reversal');
      return result;
    },

    async balance(ref) {
      const { kind, ownerKey } = canonicalRef(ref);
      const [available, held] = pairOf(kind);
      const rows = await prisma.$queryRaw<Array<{ kind: AccountKind; balance: bigint }>>`
        SELECT kind::text AS kind, balance FROM ledger_accounts
        WHERE owner_key = ${ownerKey} AND kind = ANY(${[available, held ?? available]}::ledger_account_kind[])`;
      const of = (k: AccountKind | null) => rows.find((r) => r.kind === k)?.balance ?? 0n;
      const result: Balance = { available: of(available), held: of(held), total: 0n };
      result.total = result.available + result.held;
      return result;
    },

    history: (ref, query) => readHistory(prisma, ref, query),

    async reverse(transactionId, idempotencyKey, metadata) {
      checkKey(idempotencyKey);
      const meta = metadataJson(metadata);
      if (typeof transactionId !== 'string' || !UUID.test(transactionId)) {
        throw new ReversalRefusedError(String(transactionId), 'not_found');
      }
      const result = await inTransaction(async (tx) => {
        const replay = await tx.$queryRaw<Array<{ id: string }>>`
          SELECT id FROM ledger_transactions WHERE idempotency_key = ${idempotencyKey}`;
        if (replay[0]) return { transactionId: replay[0].id, created: false };
        const draft = await reversalDraft(tx, transactionId, idempotencyKey, meta);
        return writeTransaction(tx, draft);
      });
      if (result === REVERSED_ELSEWHERE) throw new ReversalRefusedError(transactionId, 'already_reversed');
      return result;
    },

    verify: () => verifyLedger(prisma),

    async findTransaction(idempotencyKey) {
      const t = await prisma.ledgerTransaction.findUnique({
        where: { idempotencyKey },
        include: { postings: { include: { account: true }, orderBy: { id: 'asc' } } },
      });
      if (!t) return null;
      const record: LedgerTransactionRecord = {
        id: t.id,
        idempotencyKey: t.idempotencyKey,
        type: t.type,
        reference: t.reference,
        metadata: t.metadata as Record<string, unknown>,
        reversesId: t.reversesId,
        createdAt: t.createdAt,
        postings: t.postings.map((p) => ({
          account: toAccountRef(p.account.kind, p.account.ownerId),
          amount: p.amount,
          balanceAfter: p.balanceAfter,
        })),
      };
      return record;
    },
  };
}

/** Validate a post and turn its legs into postings: −amount on `from`, +amount on `to`. */
function postDraft(input: PostInput): Draft {
  checkKey(input?.idempotencyKey);
  if (!(TRANSACTION_TYPES as readonly string[]).includes(input.type) || input.type === 'reversal') {
    throw new LedgerInputError(
      `type must be one of ${TRANSACTION_TYPES.join(', ')} (reversals: use reverse())`,
    );
  }
  if (!Array.isArray(input.legs) || input.legs.length === 0 || input.legs.length > MAX_LEGS) {
    throw new LedgerInputError(`a transaction needs 1-${MAX_LEGS} legs`);
  }
  if (
    input.reference != null &&
    (typeof input.reference !== 'string' || input.reference.length > MAX_KEY_LENGTH)
  ) {
    throw new LedgerInputError(`reference must be a string of at most ${MAX_KEY_LENGTH} characters`);
  }
  const entries: Draft['entries'] = [];
  for (const leg of input.legs) {
    if (typeof leg?.amount !== 'bigint' || leg.amount <= 0n || leg.amount > MAX_AMOUNT) {
      throw new LedgerInputError('every leg needs a bigint amount > 0 (integer minor units)');
    }
    const from = canonicalRef(leg.from);
    const to = canonicalRef(leg.to);
    if (refKey(from) === refKey(to)) throw new LedgerInputError(`a leg moves from ${refKey(from)} to itself`);
    entries.push({ ref: from, amount: -leg.amount }, { ref: to, amount: leg.amount });
  }
  return {
    idempotencyKey: input.idempotencyKey,
    type: input.type,
    reference: input.reference ?? null,
    metadata: metadataJson(input.metadata),
    reversesId: null,
    entries,
  };
}

interface OriginalPosting {
  type: TransactionType;
  reference: string | null;
  reversed_by: string | null;
  kind: AccountKind;
  owner_id: string | null;
  owner_key: string;
  amount: bigint;
}

/** The negation of every posting of `transactionId`, or why it cannot be reversed. */
async function reversalDraft(tx: Tx, transactionId: string, key: string, metadata: string): Promise<Draft> {
  const rows = await tx.$queryRaw<OriginalPosting[]>`
    SELECT t.type::text AS type, t.reference,
           (SELECT r.id FROM ledger_transactions r WHERE r.reverses_id = t.id) AS reversed_by,
           a.kind::text AS kind, a.owner_id, a.owner_key, p.amount
    FROM ledger_transactions t
    JOIN ledger_postings p ON p.transaction_id = t.id
    JOIN ledger_accounts a ON a.id = p.account_id
    WHERE t.id = ${transactionId}::uuid
    ORDER BY p.id`;
  const first = rows[0];
  if (!first) throw new ReversalRefusedError(transactionId, 'not_found');
  // Undoing a reversal would re-apply the original under a reversal's name; post it again instead.
  if (first.type === 'reversal') throw new ReversalRefusedError(transactionId, 'is_reversal');
  if (first.reversed_by) throw new ReversalRefusedError(transactionId, 'already_reversed');
  const entries = rows.map((r) => {
    const ref: CanonicalRef = { kind: r.kind, ownerId: r.owner_id, ownerKey: r.owner_key };
    return { ref, amount: -r.amount };
  });
  return {
    idempotencyKey: key,
    type: 'reversal',
    reference: first.reference,
    metadata,
    reversesId: transactionId,
    entries,
  };
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new LedgerInputError(`idempotencyKey must be a string of 1-${MAX_KEY_LENGTH} characters`);
  }
}

/** Metadata as JSON text: a plain object, JSON-safe (no bigint), at most 8 KiB. */
function metadataJson(metadata: Record<string, unknown> | undefined): string {
  if (metadata == null) return '{}';
  if (typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new LedgerInputError('metadata must be an object');
  }
  let json: string;
  try {
    json = JSON.stringify(metadata);
  } catch (err) {
    throw new LedgerInputError(`metadata is not JSON: ${(err as Error).message}`);
  }
  if (Buffer.byteLength(json) > MAX_METADATA_BYTES) {
    throw new LedgerInputError(`metadata exceeds ${MAX_METADATA_BYTES} bytes`);
  }
  return json;
}

/** SQLSTATEs worth one more try: deadlock (only possible while two posts create the same accounts). */
const RETRYABLE = new Set(['40P01', '40001']);

async function retrying<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !RETRYABLE.has(sqlState(err) ?? '')) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
    }
  }
}

/** The PostgreSQL error code behind a Prisma error (raw queries report it as P2010 + driver cause). */
function sqlState(err: unknown): string | undefined {
  const e = err as {
    code?: string;
    meta?: { driverAdapterError?: { cause?: { originalCode?: string; code?: string } } };
  };
  if (e?.code === 'P2034') return '40001';
  const cause = e?.meta?.driverAdapterError?.cause;
  return cause?.originalCode ?? cause?.code;
}
