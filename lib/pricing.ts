/**
 * Task pricing and rewards, in integer minor units. Worked example (README "Tokens"): model prices
 * 10 per request, 2 per input token, 5 per output token; priority 1 (+10 %); 120-byte prompt,
 * maxTokens 100 → hold = ⌊(10 + 120·2 + 100·5)·1.1⌋ = 825. The node declares 30 input and 80 output
 * tokens → price = ⌊(10 + 30·2 + 80·5)·1.1⌋ = 517; node share 80 %, quality 1, reputation 1 →
 * reward = ⌊517·0.8⌋ = 413; fee = 517 − 413 = 104; refund = 825 − 517 = 308.
 */

import { MAX_AMOUNT } from './ledger/money.js';
import { AmountOverflowError } from './ledger/types.js';

const BPS = 10_000n;

export interface ModelPrices {
  pricePerRequest: bigint;
  pricePerInputToken: bigint;
  pricePerOutputToken: bigint;
}

export interface PricingTerms {
  /** Surcharge per priority level, basis points. */
  prioritySurchargeBps: number;
  /** The node's share of the price, basis points. */
  nodeShareBps: number;
}

/** Quality and reputation scale the reward within these bounds (basis points). */
export const QUALITY_BOUNDS_BPS = { min: 0, max: 10_000 } as const;
export const REPUTATION_BOUNDS_BPS = { min: 5_000, max: 10_000 } as const;

const withPriority = (amount: bigint, priority: number, terms: PricingTerms) =>
  (amount * (BPS + BigInt(priority) * BigInt(terms.prioritySurchargeBps))) / BPS;

/** Math.min for bigint (which Math.min does not take). */
function smaller(a: bigint, b: bigint): bigint {
  if (a < b) return a;
  return b;
}

const clamp = (v: number, { min, max }: { min: number; max: number }) =>
  Math.min(max, Math.max(min, Math.round(v)));

/**
 * The most a task can cost: every input byte counted as a token (no tokenizer makes tokens smaller than
 * a byte) and the full output allowance. Capped by the client's `maxPrice` when given. This is held.
 * A model may be priced anywhere in BIGINT, so the worst case of a large task can exceed it; the hold
 * cannot, since it is stored and posted.
 * @throws {AmountOverflowError} when the hold exceeds MAX_AMOUNT (the API answers 422; a lower
 *   `maxPrice` or priority makes the task admissible).
 */
export function holdAmount(
  model: ModelPrices,
  task: { inputBytes: number; maxOutputTokens: number; priority: number; maxPrice?: bigint },
  terms: PricingTerms,
): bigint {
  const worst = withPriority(
    model.pricePerRequest +
      BigInt(task.inputBytes) * model.pricePerInputToken +
      BigInt(task.maxOutputTokens) * model.pricePerOutputToken,
    task.priority,
    terms,
  );
  const hold = task.maxPrice !== undefined && task.maxPrice < worst ? task.maxPrice : worst;
  if (hold > MAX_AMOUNT) {
    throw new AmountOverflowError(
      `maxPrice: the task's worst-case price, ${worst} tokens, exceeds the largest amount (${MAX_AMOUNT}); set a maxPrice of at most that, or a lower priority`,
    );
  }
  return hold;
}

export interface Settlement {
  price: bigint;
  reward: bigint;
  fee: bigint;
  refund: bigint;
}

/**
 * What a verified task costs and who gets what. Usage is what the node declared, capped by what it
 * cannot exceed (input bytes, the output allowance, output bytes), so a node cannot inflate its own
 * pay; the price never exceeds the hold; the fee is never negative.
 */
export function settle(
  model: ModelPrices,
  task: { hold: bigint; inputBytes: number; maxOutputTokens: number; priority: number },
  result: { inputTokens?: number; outputTokens?: number; outputBytes: number },
  scores: { qualityBps: number; reputationBps: number },
  terms: PricingTerms,
): Settlement {
  const inputTokens = Math.min(Math.max(0, result.inputTokens ?? 0), task.inputBytes);
  const outputTokens = Math.min(
    Math.max(0, result.outputTokens ?? 0),
    task.maxOutputTokens,
    result.outputBytes,
  );
  const computed = withPriority(
    model.pricePerRequest +
      BigInt(inputTokens) * model.pricePerInputToken +
      BigInt(outputTokens) * model.pricePerOutputToken,
    task.priority,
    terms,
  );
  const price = smaller(computed, task.hold);
  const quality = BigInt(clamp(scores.qualityBps, QUALITY_BOUNDS_BPS));
  const reputation = BigInt(clamp(scores.reputationBps, REPUTATION_BOUNDS_BPS));
  const reward = (price * BigInt(terms.nodeShareBps) * quality * reputation) / (BPS * BPS * BPS);
  return { price, reward, fee: price - reward, refund: task.hold - price };
}
