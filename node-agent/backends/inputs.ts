import { prettifyError, type z } from 'zod';
import {
  type EmbeddingInput,
  type embeddingParams,
  TASK_TYPE_SCHEMAS,
  type TaskType,
  type TextGenerationInput,
  type textGenerationParams,
} from '../../protocol/task-types.js';
import type { BackendTask } from './types.js';

/** The task's input or params do not match its task type: running it again elsewhere won't help. */
export class InvalidTaskError extends Error {
  override name = 'InvalidTaskError';
}

export type ParsedTask =
  | { taskType: 'text_generation'; input: TextGenerationInput; params: z.infer<typeof textGenerationParams> }
  | { taskType: 'embedding'; input: EmbeddingInput; params: z.infer<typeof embeddingParams> };

/**
 * Validate a task's input and params with the shared schemas (the coordinator validated them too, but
 * a backend must not trust the wire), so backends work on typed data.
 * @example const t = parseTask(task); if (t.taskType === 'embedding') t.input;
 */
export function parseTask(task: BackendTask): ParsedTask {
  const taskType: TaskType = task.model.taskType;
  const schemas = TASK_TYPE_SCHEMAS[taskType];
  if (!schemas) throw new InvalidTaskError(`unsupported task type: ${String(taskType).slice(0, 40)}`);
  const input = schemas.input.safeParse(task.input);
  if (!input.success) throw new InvalidTaskError(`invalid ${taskType} input: ${prettifyError(input.error)}`);
  const params = schemas.params.safeParse(task.params ?? {});
  if (!params.success)
    throw new InvalidTaskError(`invalid ${taskType} params: ${prettifyError(params.error)}`);
  return { taskType, input: input.data, params: params.data } as ParsedTask;
}

/** The texts of a text-generation or embedding input, in order. */
export function inputTexts(t: ParsedTask): string[] {
  if (t.taskType === 'embedding') return 'texts' in t.input ? t.input.texts : [t.input.text];
  return 'prompt' in t.input ? [t.input.prompt] : t.input.messages.map((m) => m.content);
}
