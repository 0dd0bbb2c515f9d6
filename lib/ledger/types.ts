/**
 * The token ledger's vocabulary. Amounts are integer minor units (bigint in code, decimal strings in
 * JSON); there are no floats anywhere in money code.
 */

/** Who an account belongs to and what it holds. System accounts (platform, external) have no owner. */
export const ACCOUNT_KINDS = [
  'client', // a client's spendable balance
  'client_hold', // a client's funds held for admitted tasks (escrow)
  'node', // a node's earned, withdrawable balance
  'node_pending', // a node's funds in a withdrawal being paid out
  'platform_fees', // the platform's fee income
  'external_topups', // where top-ups come from (goes negative: money entering the system)
  'external_payouts', // where withdrawals go (money leaving the system)
] as const;
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

/** Accounts that may never go below zero. */
export const NON_NEGATIVE_KINDS: readonly AccountKind[] = [
  'client',
  'client_hold',
  'node',
  'node_pending',
  'platform_fees',
];

export interface AccountRef {
  kind: AccountKind;
  /** Client id for client/client_hold, node id for node/node_pending; absent for system accounts. */
  ownerId?: string;
}

export const TRANSACTION_TYPES = [
  'topup',
  'hold',
  'capture',
  'release',
  'withdrawal_reserve',
  'withdrawal_complete',
  'withdrawal_reverse',
  'reversal',
] as const;
export type TransactionType = (typeof TRANSACTION_TYPES)[number];

/** One movement of `amount` (> 0) from one account to another: two postings, -amount and +amount. */
export interface Leg {
  from: AccountRef;
  to: AccountRef;
  amount: bigint;
}

export interface PostInput {
  /** Unique per side effect (e.g. `task:<id>:settle`); a second post with the same key changes nothing. */
  idempotencyKey: string;
  type: TransactionType;
  legs: Leg[];
  /** What the transaction is about, e.g. a task id or withdrawal id. */
  reference?: string;
  /** Audit data (who, why); never secrets. */
  metadata?: Record<string, unknown>;
}

export interface PostResult {
  transactionId: string;
  /** False when the idempotency key had already been posted: nothing moved this time. */
  created: boolean;
}

export interface Balance {
  available: bigint;
  /** client: held for tasks; node: in withdrawals being paid out. */
  held: bigint;
  total: bigint;
}

/** Raised when a posting would take a non-negative account below zero. Nothing is posted. */
export class InsufficientFundsError extends Error {
  constructor(
    readonly account: AccountRef,
    readonly available: bigint,
    readonly requested: bigint,
  ) {
    super(`insufficient funds: ${available} available, ${requested} needed`);
    this.name = 'InsufficientFundsError';
  }
}

/** A request the ledger refuses as malformed (bad amount or account, unknown cursor, …). Nothing is posted. */
export class LedgerInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LedgerInputError';
  }
}

/**
 * An amount or a balance would leave the BIGINT range (above MAX_AMOUNT, or below MIN_BALANCE for the
 * external accounts): a top-up past the largest balance, a task whose hold does not fit. A
 * LedgerInputError, so callers that refuse malformed input refuse this too; nothing is posted.
 */
export class AmountOverflowError extends LedgerInputError {
  constructor(message: string) {
    super(message);
    this.name = 'AmountOverflowError';
  }
}

/**
 * `reverse()` refused: the transaction does not exist, is itself a reversal (post the original again
 * instead), or was already reversed under another idempotency key. Nothing is posted.
 */
export class ReversalRefusedError extends Error {
  constructor(
    readonly transactionId: string,
    readonly reason: 'not_found' | 'is_reversal' | 'already_reversed',
  ) {
    super(`cannot reverse transaction ${transactionId}: ${reason.replace('_', ' ')}`);
    this.name = 'ReversalRefusedError';
  }
}

export interface HistoryQuery {
  /** Only these transaction types (default: all). */
  types?: TransactionType[];
  /** Inclusive lower bound on the transaction's time. */
  since?: Date;
  /** Exclusive upper bound on the transaction's time. */
  until?: Date;
  /** Page size, 1–500. */
  limit: number;
  /** `nextCursor` of the previous page (opaque). */
  cursor?: string;
}

/**
 * One transaction as the owner of an account pair sees it. For client/node owners `amount` is the change
 * of the available account (client / node) and `heldAmount` that of its pair (client_hold /
 * node_pending); a system account has `heldAmount` 0.
 */
export interface HistoryEntry {
  transactionId: string;
  type: TransactionType;
  reference: string | null;
  amount: bigint;
  heldAmount: bigint;
  /** The available account's balance right after this transaction; absent when it did not touch it. */
  balanceAfter?: bigint;
  createdAt: Date;
  metadata: Record<string, unknown>;
}

/** Newest first; `nextCursor` is null on the last page. */
export interface HistoryPage {
  entries: HistoryEntry[];
  nextCursor: string | null;
}

/** A posted transaction with its postings (each a signed change of one account). */
export interface LedgerTransactionRecord {
  id: string;
  idempotencyKey: string;
  type: TransactionType;
  reference: string | null;
  metadata: Record<string, unknown>;
  /** The transaction a reversal undoes. */
  reversesId: string | null;
  createdAt: Date;
  postings: Array<{ account: AccountRef; amount: bigint; balanceAfter: bigint }>;
}

export interface VerifyResult {
  ok: boolean;
  /** One line per broken invariant (empty when ok). */
  problems: string[];
}

/** The ledger API (`createLedger(prisma)` in ./ledger.ts). */
export interface Ledger {
  /**
   * Post `input` atomically, once per idempotency key. Idempotent: a replayed key returns the first
   * transaction with `created: false` and moves nothing.
   * @throws {InsufficientFundsError} when a non-negative account would go below zero (nothing posted).
   * @throws {LedgerInputError} for malformed input.
   */
  post(input: PostInput): Promise<PostResult>;
  /** Available and held funds of an owner (client/node) or a system account; unknown accounts are 0. */
  balance(ref: AccountRef): Promise<Balance>;
  /** Transactions touching the account pair of `ref`'s owner (or the system account), newest first. */
  history(ref: AccountRef, query: HistoryQuery): Promise<HistoryPage>;
  /**
   * Post a `reversal` that negates every posting of `transactionId` (idempotent by key).
   * @throws {ReversalRefusedError} when it is unknown, a reversal itself, or reversed under another key.
   * @throws {InsufficientFundsError} when undoing it would overdraw an account (e.g. the client spent it).
   */
  reverse(
    transactionId: string,
    idempotencyKey: string,
    metadata?: Record<string, unknown>,
  ): Promise<PostResult>;
  /** Check every invariant against the stored postings (a full scan: for audits and tests, not hot paths). */
  verify(): Promise<VerifyResult>;
  /** The transaction posted under `idempotencyKey`, or null. */
  findTransaction(idempotencyKey: string): Promise<LedgerTransactionRecord | null>;
}
