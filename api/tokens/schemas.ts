import { z } from 'zod';
import { amount } from '../../lib/ledger/money.js';
import { TRANSACTION_TYPES } from '../../lib/ledger/types.js';
import { safeText } from '../../protocol/text.js';
import { ApiError } from '../errors.js';
import { instant } from '../middleware/validate.js';
import { idempotencyKey } from '../tasks/schemas.js';

/** `POST /api/tokens/withdraw`: always from the calling node's own account. */
export const withdrawBody = z
  .object({
    amount,
    /** Where the payout goes: an address or IBAN label, handed to the payout adapter as is. */
    destination: safeText()
      .trim()
      .min(1)
      .max(200)
      .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters'),
  })
  .strict();
export type WithdrawBody = z.infer<typeof withdrawBody>;

/** `POST /api/tokens/topup` (admin): credit a client from outside the system. */
export const topupBody = z
  .object({
    clientId: z.guid('must be a client id (UUID)'),
    amount,
    /** Why, for the audit record. */
    note: safeText().trim().max(500).optional(),
  })
  .strict();
export type TopupBody = z.infer<typeof topupBody>;

/** `type=topup,hold` or `type=topup&type=hold`. */
const transactionTypes = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter((s) => s !== ''))
  .pipe(z.array(z.enum(TRANSACTION_TYPES)).min(1));

/** `GET /api/tokens/history/:accountId`: newest first, filtered by type and time (since ≤ t < until). */
export const historyQuery = z
  .object({
    type: transactionTypes.optional(),
    since: instant.optional(),
    until: instant.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    /** The `nextCursor` of the previous page. */
    cursor: safeText().min(1).max(200).optional(),
  })
  .strict()
  .refine((q) => !q.since || !q.until || q.since < q.until, {
    message: 'must be after since',
    path: ['until'],
  });
export type HistoryQuery = z.infer<typeof historyQuery>;

/**
 * The `Idempotency-Key` header, required by the endpoints that move tokens so a retry never moves
 * them twice.
 */
export function requiredIdempotencyKey(header: string | undefined): string {
  if (header === undefined) {
    throw new ApiError(400, 'validation_failed', 'Idempotency-Key: required header for this endpoint');
  }
  if (!idempotencyKey.safeParse(header).success) {
    throw new ApiError(400, 'validation_failed', 'Idempotency-Key: must be 1-128 of A-Z a-z 0-9 _ . : -');
  }
  return header;
}
