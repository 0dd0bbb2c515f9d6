import { Hono } from 'hono';
import { createLedger } from '../../lib/ledger/ledger.js';
import { type HistoryPage, LedgerInputError } from '../../lib/ledger/types.js';
import { authenticate, requireRole } from '../auth/index.js';
import type { Principal } from '../auth/principal.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { resourceId, validate } from '../middleware/validate.js';
import { formatAccountId, ledgerAccount, visibleAccount } from './accounts.js';
import { historyQuery, requiredIdempotencyKey, topupBody, withdrawBody } from './schemas.js';
import { topupService } from './topups.js';
import { toBalanceView, toHistoryEntryView, toWithdrawalView } from './views.js';
import { withdrawalService } from './withdrawals.js';

type Deps = Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store' | 'temporal'>;

/**
 * Tokens, mounted at `/api/tokens`. Accounts are named `client:<client id>`, `node:<node id>` or
 * `platform` (see ./accounts.ts); a caller sees only its own (a node owner: its nodes'; an admin:
 * all), and any other is 404. Amounts are decimal strings of integer minor units.
 * - `GET /balance/:accountId` → `{ accountId, kind, available, held, total }`
 * - `GET /history/:accountId` `?type&since&until&limit&cursor` → `{ accountId, entries, nextCursor }`
 * - `POST /withdraw` (node; `Idempotency-Key`) `{ amount, destination }` → 202 `{ withdrawal }`;
 *   402 when the balance does not cover it, 400 below WITHDRAWAL_MIN_AMOUNT
 * - `GET /withdrawals/:id` (the node, its owner, admin) → `{ withdrawal }`
 * - `POST /topup` (admin; `Idempotency-Key`) `{ clientId, amount, note? }` → 201 `{ transactionId, balance }`
 */
export function tokenRoutes(deps: Deps) {
  const { prisma } = deps;
  const ledger = createLedger(prisma);
  const withdrawals = withdrawalService(deps);
  const topups = topupService(deps);

  return new Hono()
    .use('*', authenticate(deps))
    .get('/balance/:accountId', async (c) => {
      const account = await visibleAccount(prisma, c.var.principal, c.req.param('accountId'));
      const balance = await ledger.balance(ledgerAccount(account));
      return c.json(toBalanceView(account, balance));
    })
    .get('/history/:accountId', validate('query', historyQuery), async (c) => {
      const account = await visibleAccount(prisma, c.var.principal, c.req.param('accountId'));
      const { type, since, until, limit, cursor } = c.req.valid('query');
      let page: HistoryPage;
      try {
        page = await ledger.history(ledgerAccount(account), {
          ...(type ? { types: type } : {}),
          ...(since ? { since } : {}),
          ...(until ? { until } : {}),
          limit,
          ...(cursor ? { cursor } : {}),
        });
      } catch (err) {
        // Everything else was validated above: only a cursor the ledger did not issue gets here.
        if (!(err instanceof LedgerInputError)) throw err;
        throw new ApiError(400, 'validation_failed', 'cursor: not a cursor returned by this endpoint');
      }
      const withMetadata = c.var.principal.role === 'admin';
      return c.json({
        accountId: formatAccountId(account),
        entries: page.entries.map((e) => toHistoryEntryView(e, { withMetadata })),
        nextCursor: page.nextCursor,
      });
    })
    .post('/withdraw', requireRole('node'), validate('json', withdrawBody), async (c) => {
      const principal = c.var.principal as Extract<Principal, { role: 'node' }>;
      const key = requiredIdempotencyKey(c.req.header('Idempotency-Key'));
      const withdrawal = await withdrawals.request(principal, key, c.req.valid('json'));
      c.header('Location', `/api/tokens/withdrawals/${withdrawal.id}`);
      return c.json({ withdrawal: toWithdrawalView(withdrawal) }, 202);
    })
    .get(
      '/withdrawals/:id',
      requireRole('admin', 'node_owner', 'node'),
      resourceId('withdrawal'),
      async (c) => {
        const withdrawal = await withdrawals.find(c.var.principal, c.req.param('id'));
        return c.json({ withdrawal: toWithdrawalView(withdrawal) });
      },
    )
    .post('/topup', requireRole('admin'), validate('json', topupBody), async (c) => {
      const principal = c.var.principal as Extract<Principal, { role: 'admin' }>;
      const key = requiredIdempotencyKey(c.req.header('Idempotency-Key'));
      const result = await topups.topUp(principal, key, c.req.valid('json'), c.get('requestId'));
      return c.json(result, 201);
    });
}
