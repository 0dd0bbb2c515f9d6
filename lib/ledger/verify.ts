import type { PrismaClient } from '../../generated/prisma/client.js';
import { NON_NEGATIVE_KINDS, type VerifyResult } from './types.js';

/** Problems reported per check at most, so a badly broken ledger still yields a readable report. */
const LIMIT = 50;

/**
 * Audit the ledger against its postings. Each check is one statement, so it sees one consistent
 * snapshot even while posts go on (a post changes postings and cached balances in one transaction).
 */
export async function verifyLedger(prisma: PrismaClient): Promise<VerifyResult> {
  const problems: string[] = [];

  const unbalanced = await prisma.$queryRaw<Array<{ id: string; total: bigint; n: number }>>`
    SELECT t.id, COALESCE(SUM(p.amount), 0)::bigint AS total, COUNT(p.id)::int AS n
    FROM ledger_transactions t LEFT JOIN ledger_postings p ON p.transaction_id = t.id
    GROUP BY t.id
    HAVING COALESCE(SUM(p.amount), 0) <> 0 OR COUNT(p.id) < 2
    LIMIT ${LIMIT}`;
  for (const r of unbalanced) {
    problems.push(`transaction ${r.id}: ${r.n} postings summing to ${r.total} (must be ≥ 2 summing to 0)`);
  }

  const accounts = await prisma.$queryRaw<
    Array<{ kind: string; owner_key: string; balance: bigint; derived: bigint }>
  >`
    SELECT a.kind::text AS kind, a.owner_key, a.balance, COALESCE(s.total, 0)::bigint AS derived
    FROM ledger_accounts a
    LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_postings GROUP BY account_id) s
      ON s.account_id = a.id
    WHERE a.balance <> COALESCE(s.total, 0)
       OR (a.kind::text = ANY(${NON_NEGATIVE_KINDS}::text[]) AND LEAST(a.balance, COALESCE(s.total, 0)) < 0)
    LIMIT ${LIMIT}`;
  for (const a of accounts) {
    const name = `account ${a.kind}:${a.owner_key}`;
    if (a.balance !== a.derived)
      problems.push(`${name}: cached balance ${a.balance} ≠ ${a.derived} from postings`);
    else problems.push(`${name}: balance ${a.balance} is below zero`);
  }

  // Each posting's balance_after must be the running sum of its account's postings up to it.
  const chain = await prisma.$queryRaw<Array<{ id: bigint; balance_after: bigint; running: bigint }>>`
    SELECT id, balance_after, running FROM (
      SELECT id, balance_after, SUM(amount) OVER (PARTITION BY account_id ORDER BY id)::bigint AS running
      FROM ledger_postings
    ) x
    WHERE balance_after <> running
    LIMIT ${LIMIT}`;
  for (const c of chain) {
    problems.push(`posting ${c.id}: balance_after ${c.balance_after} ≠ running balance ${c.running}`);
  }

  // A reversal is exactly the negation of its original, account by account.
  const reversals = await prisma.$queryRaw<Array<{ id: string }>>`
    SELECT DISTINCT id FROM (
      SELECT r.id, p.account_id, p.amount FROM ledger_transactions r
      JOIN ledger_postings p ON p.transaction_id = r.id WHERE r.reverses_id IS NOT NULL
      UNION ALL
      SELECT r.id, p.account_id, p.amount FROM ledger_transactions r
      JOIN ledger_postings p ON p.transaction_id = r.reverses_id
    ) x
    GROUP BY id, account_id HAVING SUM(amount) <> 0
    LIMIT ${LIMIT}`;
  const mislabelled = await prisma.$queryRaw<Array<{ id: string }>>`
    SELECT id FROM ledger_transactions WHERE (type = 'reversal') <> (reverses_id IS NOT NULL) LIMIT ${LIMIT}`;
  for (const r of reversals) problems.push(`reversal ${r.id}: does not negate its original`);
  for (const r of mislabelled) problems.push(`transaction ${r.id}: type 'reversal' iff reverses_id is set`);

  return { ok: problems.length === 0, problems };
}
