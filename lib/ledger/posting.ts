import {
  type CanonicalRef,
  type LockedAccount,
  lockAccounts,
  refKey,
  type Tx,
  toAccountRef,
} from './accounts.js';
import { MAX_AMOUNT, MIN_BALANCE } from './money.js';
import {
  AmountOverflowError,
  InsufficientFundsError,
  NON_NEGATIVE_KINDS,
  type PostResult,
  type TransactionType,
} from './types.js';

/** A transaction ready to write: signed, non-zero entries that sum to zero. */
export interface Draft {
  idempotencyKey: string;
  type: TransactionType;
  reference: string | null;
  /** JSON text. */
  metadata: string;
  reversesId: string | null;
  entries: Array<{ ref: CanonicalRef; amount: bigint }>;
}

/** The draft lost a race on `reverses_id`: another key reversed the same transaction first. */
export const REVERSED_ELSEWHERE = Symbol('reversed elsewhere');

/**
 * Write `draft` inside the caller's database transaction: lock its accounts, check funds, then insert
 * the transaction, its postings and the new cached balances in one statement.
 *
 * Idempotency: the unique index on idempotency_key is the guard. A duplicate that committed before we
 * got the row locks is found when the insert does nothing (or before refusing for lack of funds or for a
 * balance past BIGINT, since the original may have spent or filled the account); one still in flight
 * makes our insert wait for its outcome.
 */
export async function writeTransaction(
  tx: Tx,
  draft: Draft,
): Promise<PostResult | typeof REVERSED_ELSEWHERE> {
  const accounts = await lockAccounts(
    tx,
    draft.entries.map((e) => e.ref),
  );
  let postings: ReturnType<typeof plan>;
  try {
    postings = plan(draft, accounts);
  } catch (err) {
    // As for lack of funds below: a replay whose original filled the account is answered by its key.
    if (!(err instanceof AmountOverflowError)) throw err;
    const earlier = await findConflict(tx, draft);
    if (earlier) return earlier;
    throw err;
  }
  const short = [...accounts.values()].find(
    (a) => NON_NEGATIVE_KINDS.includes(a.kind) && (postings.final.get(a.id) ?? a.balance) < 0n,
  );
  if (short) {
    const earlier = await findConflict(tx, draft);
    if (earlier) return earlier;
    const after = postings.final.get(short.id) as bigint;
    throw new InsufficientFundsError(
      toAccountRef(short.kind, short.ownerId),
      short.balance,
      short.balance - after,
    );
  }

  const rows = await tx.$queryRaw<Array<{ id: string }>>`
    WITH t AS (
      INSERT INTO ledger_transactions (idempotency_key, type, reference, metadata, reverses_id)
      VALUES (${draft.idempotencyKey}, ${draft.type}::ledger_transaction_type, ${draft.reference},
              ${draft.metadata}::jsonb, ${draft.reversesId}::uuid)
      ON CONFLICT DO NOTHING
      RETURNING id
    ), p AS (
      INSERT INTO ledger_postings (transaction_id, account_id, amount, balance_after)
      SELECT t.id, v.account_id, v.amount, v.balance_after
      FROM t, unnest(${postings.accountIds}::uuid[], ${postings.amounts}::bigint[], ${postings.after}::bigint[])
        WITH ORDINALITY AS v(account_id, amount, balance_after, n)
      ORDER BY v.n
    ), b AS (
      UPDATE ledger_accounts a SET balance = v.balance
      FROM t, unnest(${[...postings.final.keys()]}::uuid[], ${[...postings.final.values()]}::bigint[]) AS v(id, balance)
      WHERE a.id = v.id
    )
    SELECT id FROM t`;
  if (rows[0]) return { transactionId: rows[0].id, created: true };
  // Nothing inserted (so nothing written): the key, or for a reversal its target, is already taken.
  const earlier = await findConflict(tx, draft);
  if (earlier) return earlier;
  throw new Error(`ledger: insert of ${draft.idempotencyKey} conflicted with nothing visible`);
}

/**
 * Postings in write order with their running balances. Credits come before debits, so no account's
 * running balance dips below the lower of its start and end: a valid transaction never shows a negative
 * balance_after on a non-negative account.
 */
function plan(draft: Draft, accounts: Map<string, LockedAccount>) {
  const ordered = [...draft.entries].sort((a, b) =>
    a.amount === b.amount ? 0 : a.amount > b.amount ? -1 : 1,
  );
  const final = new Map<string, bigint>();
  const accountIds: string[] = [];
  const amounts: bigint[] = [];
  const after: bigint[] = [];
  for (const entry of ordered) {
    const account = accounts.get(refKey(entry.ref)) as LockedAccount;
    const balance = (final.get(account.id) ?? account.balance) + entry.amount;
    if (balance > MAX_AMOUNT || balance < MIN_BALANCE) {
      throw new AmountOverflowError(`the ${account.kind} account's balance would overflow`);
    }
    final.set(account.id, balance);
    accountIds.push(account.id);
    amounts.push(entry.amount);
    after.push(balance);
  }
  return { accountIds, amounts, after, final };
}

/** What already took the draft's place: the same key (a replay), or another reversal of its target. */
async function findConflict(tx: Tx, draft: Draft): Promise<PostResult | typeof REVERSED_ELSEWHERE | null> {
  const rows = await tx.$queryRaw<Array<{ id: string; replay: boolean }>>`
    SELECT id, idempotency_key = ${draft.idempotencyKey} AS replay
    FROM ledger_transactions
    WHERE idempotency_key = ${draft.idempotencyKey} OR reverses_id = ${draft.reversesId}::uuid
    ORDER BY replay DESC
    LIMIT 1`;
  const row = rows[0];
  if (!row) return null;
  return row.replay ? { transactionId: row.id, created: false } : REVERSED_ELSEWHERE;
}
