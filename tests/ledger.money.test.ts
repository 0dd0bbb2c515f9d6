import { describe, expect, it } from 'vitest';
import { amount, formatAmount, MAX_AMOUNT, parseAmount } from '../lib/ledger/money.js';
import { LedgerInputError } from '../lib/ledger/types.js';

describe('money helpers', () => {
  it('parses digit strings, safe integers and bigints exactly', () => {
    expect(parseAmount('0')).toBe(0n);
    expect(parseAmount('1500')).toBe(1_500n);
    expect(parseAmount('9223372036854775807')).toBe(MAX_AMOUNT);
    expect(parseAmount(42)).toBe(42n);
    expect(parseAmount(Number.MAX_SAFE_INTEGER)).toBe(9_007_199_254_740_991n);
    expect(parseAmount(7n)).toBe(7n);
  });

  it('refuses floats, signs, exponents, separators, leading zeros, overflow and other types', () => {
    const bad: unknown[] = [
      '1.5',
      '1.0',
      '-1',
      '+1',
      '1e3',
      '1_000',
      '1,000',
      ' 1',
      '1 ',
      '',
      '007',
      '0x10',
      '９', // a non-ASCII digit
      '9223372036854775808',
      1.5,
      -1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      2 ** 53,
      -1n,
      MAX_AMOUNT + 1n,
      null,
      undefined,
      {},
      [],
    ];
    for (const value of bad) expect(() => parseAmount(value), String(value)).toThrow(LedgerInputError);
  });

  it('formats minor units as decimal strings, signed', () => {
    expect(formatAmount(0n)).toBe('0');
    expect(formatAmount(-25n)).toBe('-25');
    expect(formatAmount(MAX_AMOUNT)).toBe('9223372036854775807');
  });

  it('offers a zod schema for positive request amounts', () => {
    expect(amount.parse('1500')).toBe(1_500n);
    expect(amount.parse(3)).toBe(3n);
    for (const value of ['0', 0, '1.5', -3, 'abc', '1e9']) {
      expect(amount.safeParse(value).success, String(value)).toBe(false);
    }
    expect(amount.safeParse('1.5').error?.issues[0]?.message).toMatch(/decimal string/);
  });
});
