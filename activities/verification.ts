import { ApplicationFailure } from '@temporalio/activity';
import { delayPoint } from '../lib/faults.js';
import type { Services } from '../lib/services.js';
import {
  embeddingInput,
  embeddingInputCount,
  TASK_TYPE_SCHEMAS,
  type TaskType,
  usage as usageSchema,
} from '../protocol/task-types.js';
import { FailureType } from '../workflows/policies.js';

/** Upper bound of UTF-8 bytes per token, generous for any tokenizer, to bound text against the token cap. */
export const MAX_BYTES_PER_TOKEN = 16;

/** The judgement stored with a completed task; `quality` (0..1) will scale the node's reward. */
export interface Verdict {
  checks: string[];
  quality: number;
}

export type Verification = { ok: true; verdict: Verdict } | { ok: false; reason: string };

type Deps = Pick<Services, 'prisma'>;

/** Cheap checks on every result: the task type's output format, the model's limits, declared usage. */
export function judgeOutput(
  model: { taskType: TaskType; maxOutputTokens: number },
  input: unknown,
  output: unknown,
  usage: unknown,
): Verification {
  const parsed = TASK_TYPE_SCHEMAS[model.taskType].output.safeParse(output);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      reason: `output is not a valid ${model.taskType} result: ${issue?.path.join('.')} ${issue?.message}`,
    };
  }
  if (usage !== null && usage !== undefined) {
    const u = usageSchema.safeParse(usage);
    if (!u.success) return { ok: false, reason: 'declared usage is malformed' };
    if (u.data.outputTokens > model.maxOutputTokens) {
      return {
        ok: false,
        reason: `declared ${u.data.outputTokens} output tokens, over the model's ${model.maxOutputTokens}`,
      };
    }
  }
  if (model.taskType === 'text_generation') {
    const bytes = Buffer.byteLength((parsed.data as { text: string }).text);
    if (bytes > model.maxOutputTokens * MAX_BYTES_PER_TOKEN) {
      return {
        ok: false,
        reason: `output of ${bytes} bytes exceeds the model's limit of ${model.maxOutputTokens} tokens`,
      };
    }
  } else {
    const expected = embeddingInputCount(embeddingInput.parse(input));
    const got = (parsed.data as { embeddings: number[][] }).embeddings.length;
    if (got !== expected) return { ok: false, reason: `expected ${expected} embeddings, got ${got}` };
  }
  return { ok: true, verdict: { checks: ['format', 'limits', 'usage'], quality: 1 } };
}

export function createVerificationActivities({ prisma }: Deps) {
  return {
    async verifyResult(input: { taskId: string; attemptNo: number }): Promise<Verification> {
      await delayPoint('before-verify');
      const attempt = await prisma.taskAttempt.findUnique({
        where: { taskId_attemptNo: { taskId: input.taskId, attemptNo: input.attemptNo } },
        select: { output: true, usage: true, task: { select: { input: true, model: true } } },
      });
      if (!attempt) {
        throw ApplicationFailure.create({
          type: FailureType.TaskNotFound,
          message: `attempt ${input.attemptNo} of task ${input.taskId} not found`,
          nonRetryable: true,
        });
      }
      if (attempt.output === null) return { ok: false, reason: 'no output was stored for the attempt' };
      return judgeOutput(attempt.task.model, attempt.task.input, attempt.output, attempt.usage);
    },
  };
}
