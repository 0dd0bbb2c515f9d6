import type { Withdrawal } from '../../generated/prisma/client.js';
import type { AccountKind, Balance, HistoryEntry, LedgerTransactionRecord } from '../../lib/ledger/types.js';
import { type AccountName, formatAccountId } from './accounts.js';

/** A balance as the API shows it: amounts as decimal strings (JSON numbers cannot hold every bigint). */
export function toBalanceView(account: AccountName, balance: Balance) {
  return {
    accountId: formatAccountId(account),
    kind: account.kind,
    available: balance.available.toString(),
    held: balance.held.toString(),
    total: balance.total.toString(),
  };
}

export function toWithdrawalView(w: Withdrawal) {
  return {
    id: w.id,
    nodeId: w.nodeId,
    status: w.status,
    amount: w.amount.toString(),
    destination: w.destination,
    failureReason: w.failureReason,
    payoutReference: w.payoutReference,
    createdAt: w.createdAt,
    completedAt: w.completedAt,
  };
}

/**
 * One history entry: `amount` is the change of the available balance, `heldAmount` that of the held
 * part (signed decimal strings). The audit metadata (admin key ids, notes) is for admins only.
 */
export function toHistoryEntryView(entry: HistoryEntry, { withMetadata }: { withMetadata: boolean }) {
  return {
    transactionId: entry.transactionId,
    type: entry.type,
    reference: entry.reference,
    amount: entry.amount.toString(),
    heldAmount: entry.heldAmount.toString(),
    balanceAfter: entry.balanceAfter === undefined ? null : entry.balanceAfter.toString(),
    createdAt: entry.createdAt,
    ...(withMetadata ? { metadata: entry.metadata } : {}),
  };
}

/** What a posted transaction credited to accounts of `kind`: to compare a replayed request with it. */
export function creditedTo(tx: LedgerTransactionRecord, kind: AccountKind): bigint {
  return tx.postings
    .filter((p) => p.account.kind === kind && p.amount > 0n)
    .reduce((sum, p) => sum + p.amount, 0n);
}
