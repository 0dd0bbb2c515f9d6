import { z } from 'zod';
import { LedgerInputError } from './types.js';

/** The largest amount (and balance) a BIGINT column holds. */
export const MAX_AMOUNT = 2n ** 63n - 1n;
/** The smallest balance a BIGINT column holds (only external accounts go negative). */
export const MIN_BALANCE = -(2n ** 63n);

/** Plain decimal digits, no sign, no leading zeros, no exponent, no separators. */
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Why `value` is not an amount in minor units, or null when it is one. */
function amountProblem(value: unknown): string | null {
  if (typeof value === 'bigint') {
    if (value < 0n) return 'must not be negative';
  } else if (typeof value === 'number') {
    // Numbers are accepted only where they are exact: a float or 2^53+ would silently round.
    if (!Number.isSafeInteger(value))
      return 'must be an integer number of minor units (as a string above 2^53)';
    if (value < 0) return 'must not be negative';
  } else if (typeof value === 'string') {
    if (!DECIMAL.test(value)) return 'must be a decimal string of digits (minor units), e.g. "1500"';
  } else {
    return 'must be a decimal string or an integer';
  }
  return BigInt(value) > MAX_AMOUNT ? `must be at most ${MAX_AMOUNT}` : null;
}

/**
 * Parse an amount in integer minor units, strictly: a digit string ("1500"), a safe integer number or a
 * bigint, ≥ 0 and ≤ MAX_AMOUNT. Floats, signs, exponents, spaces and leading zeros are refused.
 * @throws {LedgerInputError}
 * @example parseAmount('1500') // 1500n
 */
export function parseAmount(value: unknown): bigint {
  const problem = amountProblem(value);
  if (problem) throw new LedgerInputError(`amount ${problem}`);
  return BigInt(value as string | number | bigint);
}

/** Format minor units as the decimal string the API uses (signed for history amounts). */
export function formatAmount(value: bigint): string {
  return value.toString();
}

/**
 * Zod schema for a request field holding a positive amount: a decimal string or a safe integer,
 * parsed to bigint. Zero is refused (nothing moves zero tokens).
 */
export const amount = z
  .union([z.string(), z.number()])
  .superRefine((value, ctx) => {
    const problem = amountProblem(value) ?? (BigInt(value) === 0n ? 'must be greater than 0' : null);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((value) => BigInt(value));
