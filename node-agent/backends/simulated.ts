import { createHash } from 'node:crypto';
import { inputTexts, parseTask } from './inputs.js';
import type { Backend } from './types.js';

export interface SimulatedBackendOptions {
  /** Fixed latency, or a uniform range `[min, max]`; default 0. */
  latencyMs?: number | [number, number];
  /** Probability (0–1) that a run throws "simulated failure"; default 0. */
  failureRate?: number;
  /** Seed for the latency and failure draws (outputs never depend on it); default random. */
  seed?: number;
  /** Return outputs that fail the task type's output schema (to exercise verification). */
  invalidOutput?: boolean;
}

/** Dimension of simulated embeddings when the task does not ask for one. */
export const SIMULATED_DIMENSIONS = 8;

/**
 * A backend with no GPU: deterministic outputs computed from the input only, so two simulated nodes
 * given the same task agree (redundancy checks pass) and outputs pass the schemas in
 * protocol/task-types.ts. Used by the tests' nodes, the demo and `neurogrid-node --backend simulated`.
 * @example const backend = simulatedBackend({ latencyMs: [50, 200], failureRate: 0.1, seed: 42 });
 */
export function simulatedBackend(options: SimulatedBackendOptions = {}): Backend {
  const { latencyMs = 0, failureRate = 0, invalidOutput = false } = options;
  if (!(failureRate >= 0 && failureRate <= 1))
    throw new TypeError('simulatedBackend: failureRate must be 0–1');
  const random = mulberry32(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  const [min, max] = typeof latencyMs === 'number' ? [latencyMs, latencyMs] : latencyMs;
  if (!(min >= 0 && max >= min)) throw new TypeError('simulatedBackend: latencyMs must be ≥ 0 and min ≤ max');

  return {
    async run(task, signal) {
      const parsed = parseTask(task);
      // Draw both up front so a given seed yields the same sequence whatever the tasks are.
      const delay = min + (max - min) * random();
      const fails = random() < failureRate;
      await sleep(delay, signal);
      if (fails) throw new Error('simulated failure');
      const texts = inputTexts(parsed);
      if (parsed.taskType === 'embedding') {
        if (invalidOutput) return { output: { embeddings: [] } };
        const dims = parsed.params.dimensions ?? SIMULATED_DIMENSIONS;
        const embeddings = texts.map((text) => hashVector(text, dims));
        return { output: { embeddings }, usage: { inputTokens: wordCount(texts), outputTokens: 0 } };
      }
      if (invalidOutput) return { output: { completion: 'not a text_generation output' } };
      const prompt = texts.join('\n');
      const text = `echo: ${prompt.slice(0, 80)}`;
      return {
        output: { text, finishReason: 'stop' },
        usage: { inputTokens: wordCount(texts), outputTokens: wordCount([text]) },
      };
    },
  };
}

function wordCount(texts: string[]): number {
  return texts.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0);
}

/** A unit-length vector in `dims` dimensions from SHA-256 of the text (16 components per digest). */
function hashVector(text: string, dims: number): number[] {
  const values: number[] = [];
  for (let block = 0; values.length < dims; block++) {
    const digest = createHash('sha256').update(`${block}:${text}`).digest();
    for (let i = 0; i < 32 && values.length < dims; i += 2)
      values.push(digest.readUInt16BE(i) / 32_767.5 - 1);
  }
  const norm = Math.sqrt(values.reduce((sum, v) => sum + v * v, 0)) || 1;
  return values.map((v) => v / norm);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Small seeded PRNG (public-domain mulberry32): reproducible latency/failure draws in tests. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
