import { z } from 'zod';

/**
 * Limits on text and JSON that arrive from outside (REST bodies, node frames). PostgreSQL `text` and
 * `jsonb` cannot hold NUL, and a lone UTF-16 surrogate has no UTF-8 form; deep nesting overflows the
 * stack of every recursive walker after `JSON.parse` (zod, Prisma, the pg driver). All are refused
 * before anything is stored.
 */

/** Deepest JSON nesting accepted anywhere (a body, a frame, a task input). */
export const MAX_JSON_DEPTH = 64;
/** Most object keys plus array items accepted in one JSON document. */
export const MAX_JSON_NODES = 100_000;

/** True when `s` holds a NUL character or a lone (unpaired) surrogate. */
export function hasUnsafeText(s: string): boolean {
  return s.includes('\0') || !s.isWellFormed();
}

export const UNSAFE_TEXT_MESSAGE = 'must not contain NUL characters or unpaired surrogates';

/**
 * A string schema that refuses NUL and lone surrogates; use it for every text field from outside.
 * @example const name = safeText().min(1).max(128);
 */
export function safeText() {
  return z.string().refine((s) => !hasUnsafeText(s), { message: UNSAFE_TEXT_MESSAGE });
}

/**
 * The path of the first string (key or value) in a parsed JSON value that holds unsafe text, or
 * undefined when there is none. Iterative, so it is safe on any depth.
 * @example unsafeTextPath({ a: ['ok', 'bad\u0000'] }) // ['a', 1]
 */
export function unsafeTextPath(value: unknown): Array<string | number> | undefined {
  const stack: Array<{ v: unknown; path: Array<string | number> }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop() as { v: unknown; path: Array<string | number> };
    if (typeof v === 'string') {
      if (hasUnsafeText(v)) return path;
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => {
        stack.push({ v: item, path: [...path, i] });
      });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (hasUnsafeText(k)) return [...path, k];
        stack.push({ v: item, path: [...path, k] });
      }
    }
  }
  return undefined;
}

export type JsonShapeProblem = { kind: 'depth'; limit: number } | { kind: 'size'; limit: number };

/**
 * Scan raw JSON text (without parsing it) for nesting deeper than `maxDepth` or more than `maxNodes`
 * keys and items. Linear in the text, no recursion, so a 10,000-deep document costs a pass over it.
 */
export function jsonShapeProblem(
  text: string,
  { maxDepth = MAX_JSON_DEPTH, maxNodes = MAX_JSON_NODES } = {},
): JsonShapeProblem | undefined {
  let depth = 0;
  let nodes = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      if (++depth > maxDepth) return { kind: 'depth', limit: maxDepth };
    } else if (ch === 0x7d || ch === 0x5d) depth--;
    else if (ch === 0x2c || ch === 0x3a) {
      // Every separator adds at most one key or item.
      if (++nodes > maxNodes) return { kind: 'size', limit: maxNodes };
    }
  }
  return undefined;
}

/**
 * The depth of an already-parsed value, stopping once past `limit` (iterative).
 * For values that did not come from text we scanned, e.g. a node frame's `output` after parsing.
 */
export function jsonDepthExceeds(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > limit) return true;
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push([item, d + 1]);
  }
  return false;
}

/**
 * Why a parsed JSON value cannot be stored and walked, or undefined when it can: nested deeper than
 * MAX_JSON_DEPTH, or a key or string holding NUL or a lone surrogate (with that string's path).
 */
export function unstorableJson(
  value: unknown,
): { message: string; path: Array<string | number> } | undefined {
  // Depth first: the text walk copies paths, which costs the square of a pathological depth.
  if (jsonDepthExceeds(value)) return { message: `nested deeper than ${MAX_JSON_DEPTH} levels`, path: [] };
  const path = unsafeTextPath(value);
  return path ? { message: UNSAFE_TEXT_MESSAGE, path } : undefined;
}

/**
 * The same as a zod refinement, for fields that accept any JSON (`z.unknown()`, records); the issue
 * names the offending string's path below the field.
 * @example input: z.unknown().superRefine(storableJson)
 */
export function storableJson(value: unknown, ctx: z.RefinementCtx): void {
  const problem = unstorableJson(value);
  if (problem) ctx.addIssue({ code: 'custom', ...problem });
}
