import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { holdAmount, settle } from '../lib/pricing.js';

const model = { pricePerRequest: 10n, pricePerInputToken: 2n, pricePerOutputToken: 5n };
const terms = { prioritySurchargeBps: 1_000, nodeShareBps: 8_000 };

describe('pricing', () => {
  it('computes the README worked example exactly', () => {
    const hold = holdAmount(model, { inputBytes: 120, maxOutputTokens: 100, priority: 1 }, terms);
    expect(hold).toBe(825n);
    const s = settle(
      model,
      { hold, inputBytes: 120, maxOutputTokens: 100, priority: 1 },
      { inputTokens: 30, outputTokens: 80, outputBytes: 400 },
      { qualityBps: 10_000, reputationBps: 10_000 },
      terms,
    );
    expect(s).toEqual({ price: 517n, reward: 413n, fee: 104n, refund: 308n });
  });

  it('caps the hold at the client’s maxPrice', () => {
    expect(
      holdAmount(model, { inputBytes: 120, maxOutputTokens: 100, priority: 1, maxPrice: 300n }, terms),
    ).toBe(300n);
  });

  it('never lets a node inflate its pay beyond what it could have produced', () => {
    const task = { hold: 825n, inputBytes: 120, maxOutputTokens: 100, priority: 1 };
    const inflated = settle(
      model,
      task,
      { inputTokens: 1e9, outputTokens: 1e9, outputBytes: 50 },
      { qualityBps: 10_000, reputationBps: 10_000 },
      terms,
    );
    // 120 input tokens at most (bytes), 50 output tokens at most (output bytes).
    expect(inflated.price).toBe(((10n + 240n + 250n) * 11_000n) / 10_000n);
  });

  it('keeps money conserved and the fee non-negative for any inputs', () => {
    fc.assert(
      fc.property(
        fc.record({
          perRequest: fc.bigInt({ min: 0n, max: 10n ** 9n }),
          perIn: fc.bigInt({ min: 0n, max: 10n ** 6n }),
          perOut: fc.bigInt({ min: 0n, max: 10n ** 6n }),
          inputBytes: fc.integer({ min: 0, max: 1_000_000 }),
          maxOut: fc.integer({ min: 0, max: 100_000 }),
          priority: fc.integer({ min: 0, max: 9 }),
          maxPrice: fc.option(fc.bigInt({ min: 0n, max: 10n ** 12n }), { nil: undefined }),
          inTok: fc.integer({ min: -10, max: 2_000_000 }),
          outTok: fc.integer({ min: -10, max: 200_000 }),
          outBytes: fc.integer({ min: 0, max: 1_000_000 }),
          quality: fc.integer({ min: -5_000, max: 20_000 }),
          reputation: fc.integer({ min: -5_000, max: 20_000 }),
          share: fc.integer({ min: 0, max: 10_000 }),
        }),
        (r) => {
          const m = {
            pricePerRequest: r.perRequest,
            pricePerInputToken: r.perIn,
            pricePerOutputToken: r.perOut,
          };
          const t = { prioritySurchargeBps: 1_000, nodeShareBps: r.share };
          const base = { inputBytes: r.inputBytes, maxOutputTokens: r.maxOut, priority: r.priority };
          const hold = holdAmount(
            m,
            { ...base, ...(r.maxPrice === undefined ? {} : { maxPrice: r.maxPrice }) },
            t,
          );
          const s = settle(
            m,
            { ...base, hold },
            { inputTokens: r.inTok, outputTokens: r.outTok, outputBytes: r.outBytes },
            { qualityBps: r.quality, reputationBps: r.reputation },
            t,
          );
          expect(s.price + s.refund).toBe(hold);
          expect(s.reward + s.fee).toBe(s.price);
          expect(s.fee >= 0n && s.reward >= 0n && s.refund >= 0n).toBe(true);
          expect(s.price <= hold).toBe(true);
          if (r.maxPrice !== undefined) expect(hold <= r.maxPrice).toBe(true);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
