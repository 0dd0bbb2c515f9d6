import type { Prisma } from '../../generated/prisma/client.js';
import { ACCOUNT_KINDS, type AccountKind, type AccountRef, LedgerInputError } from './types.js';

export type Tx = Prisma.TransactionClient;

/** Kinds that belong to a client or node; the others are system accounts without an owner. */
const OWNED_KINDS: ReadonlySet<AccountKind> = new Set(['client', 'client_hold', 'node', 'node_pending']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A validated account reference; `ownerKey` is the unique key's owner part (`'-'` for system accounts). */
export interface CanonicalRef {
  kind: AccountKind;
  ownerId: string | null;
  ownerKey: string;
}

/** Validate `ref`: a known kind, a UUID owner exactly for owned kinds. @throws {LedgerInputError} */
export function canonicalRef(ref: AccountRef): CanonicalRef {
  if (!ref || !(ACCOUNT_KINDS as readonly string[]).includes(ref.kind)) {
    throw new LedgerInputError(`unknown account kind ${JSON.stringify(ref?.kind)}`);
  }
  if (!OWNED_KINDS.has(ref.kind)) {
    if (ref.ownerId != null) throw new LedgerInputError(`a ${ref.kind} account has no owner`);
    return { kind: ref.kind, ownerId: null, ownerKey: '-' };
  }
  if (typeof ref.ownerId !== 'string' || !UUID.test(ref.ownerId)) {
    throw new LedgerInputError(`a ${ref.kind} account needs a UUID ownerId`);
  }
  // Lower case is how PostgreSQL prints a uuid, which is what owner_key holds.
  const ownerId = ref.ownerId.toLowerCase();
  return { kind: ref.kind, ownerId, ownerKey: ownerId };
}

export const refKey = (ref: { kind: string; ownerKey: string }) => `${ref.kind}:${ref.ownerKey}`;

export function toAccountRef(kind: AccountKind, ownerId: string | null): AccountRef {
  return ownerId === null ? { kind } : { kind, ownerId };
}

/** The accounts an owner's balance is made of: [available, held] (held is null for system accounts). */
export function pairOf(kind: AccountKind): [AccountKind, AccountKind | null] {
  if (kind === 'client' || kind === 'client_hold') return ['client', 'client_hold'];
  if (kind === 'node' || kind === 'node_pending') return ['node', 'node_pending'];
  return [kind, null];
}

export interface LockedAccount extends CanonicalRef {
  id: string;
  balance: bigint;
}

interface AccountRow {
  id: string;
  kind: AccountKind;
  owner_key: string;
  balance: bigint;
}

/**
 * Get-or-create the accounts and lock them (`FOR UPDATE`) in id order, so concurrent posts on the same
 * accounts serialise without deadlocking. Returns them by `refKey`.
 */
export async function lockAccounts(tx: Tx, refs: CanonicalRef[]): Promise<Map<string, LockedAccount>> {
  const wanted = new Map(refs.map((r) => [refKey(r), r]));
  let rows = await selectForUpdate(tx, [...wanted.values()]);
  if (rows.length < wanted.size) {
    const found = new Set(rows.map(rowKey));
    // Sorted, so two posts creating the same accounts wait for each other in one order (no deadlock).
    const missing = [...wanted.entries()]
      .filter(([key]) => !found.has(key))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, ref]) => ref);
    // DO NOTHING: a concurrent post may create the same account; we then wait for it and lock its row.
    await tx.$executeRaw`
      INSERT INTO ledger_accounts (kind, owner_id, owner_key)
      SELECT v.kind, v.owner_id, COALESCE(v.owner_id::text, '-')
      FROM unnest(${missing.map((r) => r.kind)}::ledger_account_kind[], ${missing.map((r) => r.ownerId)}::uuid[])
        WITH ORDINALITY AS v(kind, owner_id, n)
      ORDER BY v.n
      ON CONFLICT (kind, owner_key) DO NOTHING`;
    rows = await selectForUpdate(tx, [...wanted.values()]);
  }
  const locked = new Map<string, LockedAccount>();
  for (const row of rows) {
    const ref = wanted.get(rowKey(row)) as CanonicalRef;
    locked.set(rowKey(row), { ...ref, id: row.id, balance: row.balance });
  }
  if (locked.size !== wanted.size) throw new Error('ledger: an account vanished while being locked');
  return locked;
}

const rowKey = (row: AccountRow) => `${row.kind}:${row.owner_key}`;

function selectForUpdate(tx: Tx, refs: CanonicalRef[]): Promise<AccountRow[]> {
  return tx.$queryRaw<AccountRow[]>`
    SELECT id, kind::text AS kind, owner_key, balance
    FROM ledger_accounts
    WHERE (kind, owner_key) IN (
      SELECT * FROM unnest(${refs.map((r) => r.kind)}::ledger_account_kind[], ${refs.map((r) => r.ownerKey)}::text[])
    )
    ORDER BY id
    FOR UPDATE`;
}
