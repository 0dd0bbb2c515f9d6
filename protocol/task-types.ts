import { z } from 'zod';
import { safeText } from './text.js';

/**
 * What each task type takes and returns: the one definition shared by the REST API (input), the node
 * agent (running it) and verification (judging the output). Text a client sends is `safeText()`: no
 * NUL, no lone surrogates, which PostgreSQL cannot store.
 */
export const TASK_TYPES = ['text_generation', 'embedding'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

const message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: safeText() });

export const textGenerationInput = z.union([
  z.object({ prompt: safeText().min(1) }).strict(),
  z.object({ messages: z.array(message).min(1).max(256) }).strict(),
]);
export const textGenerationParams = z
  .object({
    maxTokens: z.number().int().min(1).max(1_000_000).optional(),
    temperature: z.number().min(0).max(2).optional(),
    topP: z.number().gt(0).max(1).optional(),
    stop: z.array(safeText().max(64)).max(8).optional(),
    seed: z.number().int().optional(),
  })
  .strict();
export const textGenerationOutput = z
  .object({ text: z.string(), finishReason: z.string().max(32).optional() })
  .strict();

export const embeddingInput = z.union([
  z.object({ text: safeText().min(1) }).strict(),
  z.object({ texts: z.array(safeText().min(1)).min(1).max(256) }).strict(),
]);
export const embeddingParams = z
  .object({ dimensions: z.number().int().min(1).max(65_536).optional() })
  .strict();
export const embeddingOutput = z
  .object({ embeddings: z.array(z.array(z.number().finite()).min(1)).min(1) })
  .strict()
  .refine((o) => o.embeddings.every((v) => v.length === o.embeddings[0]?.length), {
    message: 'every embedding must have the same dimension',
  });

export const usage = z
  .object({ inputTokens: z.number().int().min(0), outputTokens: z.number().int().min(0) })
  .strict();
export type Usage = z.infer<typeof usage>;

export const TASK_TYPE_SCHEMAS = {
  text_generation: { input: textGenerationInput, params: textGenerationParams, output: textGenerationOutput },
  embedding: { input: embeddingInput, params: embeddingParams, output: embeddingOutput },
} as const satisfies Record<TaskType, { input: z.ZodType; params: z.ZodType; output: z.ZodType }>;

export type TextGenerationInput = z.infer<typeof textGenerationInput>;
export type TextGenerationOutput = z.infer<typeof textGenerationOutput>;
export type EmbeddingInput = z.infer<typeof embeddingInput>;
export type EmbeddingOutput = z.infer<typeof embeddingOutput>;

/** How many inputs an embedding task carries (the output must have as many vectors). */
export function embeddingInputCount(input: EmbeddingInput): number {
  return 'texts' in input ? input.texts.length : 1;
}
