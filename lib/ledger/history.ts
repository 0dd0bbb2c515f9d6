import { Prisma, type PrismaClient } from '../../generated/prisma/client.js';
import { canonicalRef, pairOf } from './accounts.js';
import { MAX_AMOUNT } from './money.js';
import {
  type AccountKind,
  type AccountRef,
  type HistoryEntry,
  type HistoryPage,
  type HistoryQuery,
  LedgerInputError,
  TRANSACTION_TYPES,
  type TransactionType,
} from './types.js';

const MAX_LIMIT = 500;

/**
 * A page of the transactions touching an owner's account pair, newest first.
 *
 * Order key: a transaction's highest posting id on the pair (ids grow with time; one transaction's
 * postings on one account are written together under its row lock). Pages are cut on that key, so an
 * entry never shows on two pages. To stay on the (account_id, id) index, each page reads only the newest
 * `window` postings of each account below the cursor; entries at or above the oldest posting of a full
 * window are exact, and the window grows when they are fewer than a page.
 */
export async function readHistory(
  prisma: PrismaClient,
  ref: AccountRef,
  query: HistoryQuery,
): Promise<HistoryPage> {
  const { kind, ownerKey } = canonicalRef(ref);
  const q = checkQuery(query);
  const [availableKind, heldKind] = pairOf(kind);
  const kinds = heldKind ? [availableKind, heldKind] : [availableKind];
  const accounts = await prisma.$queryRaw<Array<{ id: string; kind: AccountKind }>>`
    SELECT id, kind::text AS kind FROM ledger_accounts
    WHERE owner_key = ${ownerKey} AND kind = ANY(${kinds}::ledger_account_kind[])`;
  if (accounts.length === 0) return { entries: [], nextCursor: null };
  const available = accounts.find((a) => a.kind === availableKind)?.id ?? null;
  const held = accounts.find((a) => a.kind === heldKind)?.id ?? null;

  for (let window = q.limit + 1; ; window *= 4) {
    const windows = await Promise.all(accounts.map((a) => newestPostings(prisma, a.id, q, window)));
    const full = windows.filter((w) => w.length === window);
    // Entries below a full window's oldest posting may lack postings we did not read: not exact yet.
    const floor = full.length ? full.map((w) => w[w.length - 1]?.id as bigint).reduce(max) : -1n;
    const txIds = [...new Set(windows.flat().map((p) => p.transaction_id))];
    const rows = txIds.length
      ? await aggregate(
          prisma,
          txIds,
          accounts.map((a) => a.id),
          available,
          held,
        )
      : [];
    const exact = rows
      .filter((r) => r.seq < q.before && r.seq >= floor)
      .sort((a, b) => (a.seq > b.seq ? -1 : 1));
    if (exact.length > q.limit || full.length === 0) {
      const page = exact.slice(0, q.limit);
      const last = page[page.length - 1];
      return {
        entries: page.map(toEntry),
        nextCursor: exact.length > q.limit && last ? encodeCursor(last.seq) : null,
      };
    }
  }
}

interface Checked {
  limit: number;
  before: bigint;
  types: TransactionType[] | null;
  since: Date | null;
  until: Date | null;
}

function checkQuery(query: HistoryQuery): Checked {
  const { limit, types, since, until, cursor } = query ?? ({} as HistoryQuery);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new LedgerInputError(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  if (types && !types.every((t) => (TRANSACTION_TYPES as readonly string[]).includes(t))) {
    throw new LedgerInputError(`types must be among ${TRANSACTION_TYPES.join(', ')}`);
  }
  for (const d of [since, until]) {
    if (d !== undefined && !(d instanceof Date && !Number.isNaN(d.getTime()))) {
      throw new LedgerInputError('since/until must be valid dates');
    }
  }
  return {
    limit,
    before: cursor === undefined ? MAX_AMOUNT : decodeCursor(cursor),
    types: types?.length ? types : null,
    since: since ?? null,
    until: until ?? null,
  };
}

/** The newest `window` postings of one account below the cursor that pass the filters. */
function newestPostings(prisma: PrismaClient, accountId: string, q: Checked, window: number) {
  // Filters are per transaction, so every posting of a transaction passes or fails them alike.
  const typeJoin = q.types
    ? Prisma.sql`JOIN ledger_transactions t ON t.id = p.transaction_id
                 AND t.type = ANY(${q.types}::ledger_transaction_type[])`
    : Prisma.empty;
  const since = q.since ? Prisma.sql`AND p.created_at >= ${q.since}` : Prisma.empty;
  const until = q.until ? Prisma.sql`AND p.created_at < ${q.until}` : Prisma.empty;
  return prisma.$queryRaw<Array<{ id: bigint; transaction_id: string }>>`
    SELECT p.id, p.transaction_id FROM ledger_postings p ${typeJoin}
    WHERE p.account_id = ${accountId}::uuid AND p.id < ${q.before} ${since} ${until}
    ORDER BY p.id DESC
    LIMIT ${window}`;
}

interface Row {
  id: string;
  type: TransactionType;
  reference: string | null;
  metadata: Record<string, unknown>;
  created_at: Date;
  seq: bigint;
  amount: bigint;
  held_amount: bigint;
  balance_after: bigint | null;
}

/** Each transaction's entry, from all its postings on the pair (not only those in the window). */
function aggregate(
  prisma: PrismaClient,
  txIds: string[],
  accountIds: string[],
  available: string | null,
  held: string | null,
) {
  return prisma.$queryRaw<Row[]>`
    SELECT t.id, t.type::text AS type, t.reference, t.metadata, t.created_at,
           MAX(p.id) AS seq,
           COALESCE(SUM(p.amount) FILTER (WHERE p.account_id = ${available}::uuid), 0)::bigint AS amount,
           COALESCE(SUM(p.amount) FILTER (WHERE p.account_id = ${held}::uuid), 0)::bigint AS held_amount,
           (array_agg(p.balance_after ORDER BY p.id DESC) FILTER (WHERE p.account_id = ${available}::uuid))[1]
             AS balance_after
    FROM ledger_postings p
    JOIN ledger_transactions t ON t.id = p.transaction_id
    WHERE p.transaction_id = ANY(${txIds}::uuid[]) AND p.account_id = ANY(${accountIds}::uuid[])
    GROUP BY t.id`;
}

function toEntry(r: Row): HistoryEntry {
  const entry: HistoryEntry = {
    transactionId: r.id,
    type: r.type,
    reference: r.reference,
    amount: r.amount,
    heldAmount: r.held_amount,
    createdAt: r.created_at,
    metadata: r.metadata,
  };
  if (r.balance_after !== null) entry.balanceAfter = r.balance_after;
  return entry;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);

/** Opaque to clients; a versioned posting id underneath. */
function encodeCursor(seq: bigint): string {
  return Buffer.from(`h1:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): bigint {
  const text =
    typeof cursor === 'string' && cursor.length <= 64 ? Buffer.from(cursor, 'base64url').toString() : '';
  const match = /^h1:([0-9]{1,19})$/.exec(text);
  if (!match?.[1] || BigInt(match[1]) > MAX_AMOUNT) throw new LedgerInputError('invalid cursor');
  return BigInt(match[1]);
}
