import { createLedger } from '../../lib/ledger/ledger.js';
import { MAX_AMOUNT } from '../../lib/ledger/money.js';
import { AmountOverflowError } from '../../lib/ledger/types.js';
import type { Principal } from '../auth/principal.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { notFound } from '../middleware/validate.js';
import type { TopupBody } from './schemas.js';
import { creditedTo, toBalanceView } from './views.js';

type Deps = Pick<AppDeps, 'prisma' | 'log'>;
type AdminPrincipal = Extract<Principal, { role: 'admin' }>;

/** The admin key behind an action, for the audit record (the bootstrap `ADMIN_API_KEY` has no row). */
const adminKeyOf = (p: AdminPrincipal) => p.keyId ?? 'ADMIN_API_KEY';

/**
 * Admin top-ups: credit a client from `external_topups`. The ledger transaction carries the audit
 * record in its metadata (admin key id, note, time) and the same facts go to the log.
 */
export function topupService({ prisma, log }: Deps) {
  const ledger = createLedger(prisma);

  /**
   * Idempotent per client and Idempotency-Key: a retry returns the same transaction; the same key with
   * another amount is 409. A new top-up that would carry the client's total (available + held) past
   * MAX_AMOUNT is 422: holds move tokens between the two, so a total that fits keeps both in BIGINT.
   */
  async function topUp(principal: AdminPrincipal, key: string, body: TopupBody, requestId?: string) {
    const { clientId, amount, note } = body;
    if ((await prisma.client.count({ where: { id: clientId } })) === 0) throw notFound('client');
    const idempotencyKey = `topup:${clientId}:${key}`;
    const audit = {
      adminKeyId: adminKeyOf(principal),
      ...(note ? { note } : {}),
      at: new Date().toISOString(),
      ...(requestId ? { requestId } : {}),
    };
    // A replay is judged by its key below, never by the balance it helped to reach.
    if (!(await ledger.findTransaction(idempotencyKey))) {
      const { total } = await ledger.balance({ kind: 'client', ownerId: clientId });
      if (total + amount > MAX_AMOUNT) throw exceedsLargestBalance(total);
    }
    let posted: Awaited<ReturnType<typeof ledger.post>>;
    try {
      posted = await ledger.post({
        idempotencyKey,
        type: 'topup',
        legs: [{ from: { kind: 'external_topups' }, to: { kind: 'client', ownerId: clientId }, amount }],
        reference: clientId,
        metadata: audit,
      });
    } catch (err) {
      // A concurrent top-up got there first, or all top-ups together reached the external account's floor.
      if (err instanceof AmountOverflowError) throw exceedsLargestBalance();
      throw err;
    }
    if (!posted.created) {
      const earlier = await ledger.findTransaction(idempotencyKey);
      if (earlier && creditedTo(earlier, 'client') !== amount) {
        throw new ApiError(409, 'conflict', 'Idempotency-Key was already used for a different top-up');
      }
    }
    log.info(
      {
        audit: 'tokens.topup',
        transactionId: posted.transactionId,
        clientId,
        amount: amount.toString(),
        replayed: !posted.created,
        ...audit,
      },
      'client topped up',
    );
    const balance = await ledger.balance({ kind: 'client', ownerId: clientId });
    return {
      transactionId: posted.transactionId,
      balance: toBalanceView({ kind: 'client', ownerId: clientId }, balance),
    };
  }

  return { topUp };
}

function exceedsLargestBalance(total?: bigint): ApiError {
  const now = total === undefined ? '' : `; the client has ${total}`;
  return new ApiError(
    422,
    'validation_failed',
    `amount would exceed the largest balance (${MAX_AMOUNT} tokens)${now}`,
  );
}
