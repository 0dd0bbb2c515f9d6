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
