import { createLedger } from '../../lib/ledger/ledger.js';
import type { AppDeps } from '../app.js';
import type { Principal } from '../auth/principal.js';
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
   * another amount is 409.
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
    const posted = await ledger.post({
      idempotencyKey,
      type: 'topup',
      legs: [{ from: { kind: 'external_topups' }, to: { kind: 'client', ownerId: clientId }, amount }],
      reference: clientId,
      metadata: audit,
    });
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
