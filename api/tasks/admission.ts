import { WorkflowNotFoundError } from '@temporalio/client';
import { Prisma } from '../../generated/prisma/client.js';
import { crashPoint } from '../../lib/faults.js';
import { createLedger } from '../../lib/ledger/ledger.js';
import { postHold } from '../../lib/ledger/task-postings.js';
import { AmountOverflowError, InsufficientFundsError } from '../../lib/ledger/types.js';
import { holdAmount } from '../../lib/pricing.js';
import { startTaskWorkflow } from '../../lib/tasks/workflow-start.js';
import { TASK_TYPE_SCHEMAS } from '../../protocol/task-types.js';
import { isTerminal, type TaskStatus } from '../../workflows/task-status.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { describeZodError } from '../middleware/error-handler.js';
import { requestHash, taskIdFor } from './ids.js';
import type { CreateTaskBody } from './schemas.js';
import { type TaskRow, taskInclude } from './view.js';

type Deps = Pick<AppDeps, 'prisma' | 'config' | 'log' | 'temporal'>;

/** Raised when Temporal did not answer within `TASK_START_TIMEOUT_MS`: answer 503 with Retry-After. */
export class TemporalUnavailableError extends ApiError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(503, 'unavailable', message);
  }
}

/**
 * Task admission, the one path every client surface uses: validate → price → hold → start.
 * The hold is taken before the workflow starts; a task whose workflow never starts (this process
 * died, or Temporal was unreachable and a keyed request was never retried) is found by the reaper
 * after `TASK_STRANDED_GRACE_MS` and its hold released. Nothing here waits on Temporal longer than
 * `TASK_START_TIMEOUT_MS`.
 */
export function createTaskAdmission(deps: Deps) {
  const { prisma, config, temporal } = deps;
  const ledger = createLedger(prisma);
  const retryAfter = Math.max(1, Math.ceil(config.TASK_START_TIMEOUT_MS / 1000));

  const unavailable = (what: string, err: unknown) => {
    deps.log.warn({ err }, `could not ${what}: Temporal did not answer`);
    return new TemporalUnavailableError(`could not ${what} now; retry in ${retryAfter} s`, retryAfter);
  };

  return {
    /**
     * Admit a task for a client: 202-ready row, hold taken, workflow started. With an idempotency key
     * a retried request joins its task (the same row, hold and workflow) and never holds twice.
     */
    async submit(clientId: string, body: CreateTaskBody, key: string | undefined): Promise<TaskRow> {
      const id = taskIdFor(clientId, key);
      const hash = requestHash(body);

      // A retried request joins its task before anything else is judged (the model may have changed).
      let task = key ? await prisma.task.findUnique({ where: { id }, include: taskInclude }) : null;
      if (!task) {
        const { model, inputBytes, maxOutputTokens } = await admissibleModel(body);
        const hold = holdAmount(
          model,
          {
            inputBytes,
            maxOutputTokens,
            priority: body.priority,
            ...(body.maxPrice === undefined ? {} : { maxPrice: body.maxPrice }),
          },
          { prioritySurchargeBps: config.PRIORITY_SURCHARGE_BPS, nodeShareBps: config.NODE_SHARE_BPS },
        );
        try {
          task = await prisma.task.create({
            data: {
              id,
              clientId,
              modelId: model.id,
              idempotencyKey: key ?? null,
              requestHash: hash,
              input: body.input as Prisma.InputJsonValue,
              params: body.params as Prisma.InputJsonValue,
              priority: body.priority,
              holdAmount: hold,
              nodeShareBps: config.NODE_SHARE_BPS,
              deadlineAt: new Date(Date.now() + (body.queueTimeoutMs ?? config.TASK_QUEUE_TIMEOUT_MS)),
            },
            include: taskInclude,
          });
        } catch (err) {
          if (!(err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002')) throw err;
          task = await prisma.task.findUniqueOrThrow({ where: { id }, include: taskInclude });
        }
      }
      if (task.requestHash !== hash) {
        throw new ApiError(409, 'conflict', 'Idempotency-Key was already used for a different request');
      }

      // Idempotent, so a retry never holds twice.
      if (task.holdAmount && task.holdAmount > 0n) {
        try {
          await postHold(ledger, { taskId: task.id, clientId: task.clientId, amount: task.holdAmount });
        } catch (err) {
          if (!(err instanceof InsufficientFundsError || err instanceof AmountOverflowError)) throw err;
          // No hold, so no workflow was ever started for this row: nothing else refers to it.
          await prisma.task.deleteMany({ where: { id: task.id, status: 'queued' } });
          if (err instanceof AmountOverflowError) throw err;
          throw new ApiError(
            402,
            'payment_required',
            `insufficient balance: this task holds up to ${task.holdAmount} tokens and ${err.available} are available`,
          );
        }
      }

      crashPoint('before-workflow-start');
      try {
        await startTaskWorkflow(temporal.client, config, task);
      } catch (err) {
        // The hold stays with the row: a retry with the same key joins it, and otherwise the reaper
        // releases it (the start may even have reached Temporal, so nothing is undone here).
        throw unavailable(
          key ? 'start the task; retry with the same Idempotency-Key' : 'start the task; retry later',
          err,
        );
      }
      return task;
    },

    /**
     * Cancel a task that has not finished. A task whose workflow never started is started and
     * cancelled at once, so its hold is released by the same path as every other cancel.
     * False when the task had already finished.
     */
    async cancel(task: TaskRow): Promise<boolean> {
      if (isTerminal(task.status as TaskStatus)) return false;
      const handle = temporal.client.workflow.getHandle(task.id);
      const cancel = () =>
        temporal.client.withDeadline(Date.now() + config.TASK_START_TIMEOUT_MS, () => handle.cancel());
      try {
        try {
          await cancel();
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          const row = await prisma.task.findUnique({ where: { id: task.id }, select: { status: true } });
          if (!row || isTerminal(row.status as TaskStatus)) return false;
          await startTaskWorkflow(temporal.client, config, task);
          await cancel();
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw unavailable('cancel the task', err);
      }
      return true;
    },
  };

  /** The active model the body names, with input and params valid for its task type and limits. */
  async function admissibleModel(body: CreateTaskBody) {
    const model = await prisma.model.findFirst({
      where: { name: body.model, active: true, ...(body.version ? { version: body.version } : {}) },
      orderBy: { createdAt: 'desc' },
    });
    if (!model) {
      const which = body.version ? `${body.model}:${body.version}` : body.model;
      throw new ApiError(422, 'validation_failed', `model: no active model ${which}`);
    }
    const schemas = TASK_TYPE_SCHEMAS[model.taskType];
    const input = schemas.input.safeParse(body.input);
    if (!input.success) {
      throw new ApiError(
        400,
        'validation_failed',
        `input: ${describeZodError(input.error)}`,
        input.error.issues,
      );
    }
    const params = schemas.params.safeParse(body.params);
    if (!params.success) {
      throw new ApiError(
        400,
        'validation_failed',
        `params: ${describeZodError(params.error)}`,
        params.error.issues,
      );
    }
    const maxTokens = (params.data as { maxTokens?: number }).maxTokens;
    if (maxTokens !== undefined && maxTokens > model.maxOutputTokens) {
      throw new ApiError(
        400,
        'validation_failed',
        `params.maxTokens: at most ${model.maxOutputTokens} for ${model.name}:${model.version}`,
      );
    }
    const bytes = Buffer.byteLength(JSON.stringify(body.input));
    if (bytes > model.maxInputBytes) {
      throw new ApiError(
        413,
        'payload_too_large',
        `input is ${bytes} bytes; ${model.name}:${model.version} accepts at most ${model.maxInputBytes}`,
      );
    }
    return { model, inputBytes: bytes, maxOutputTokens: maxTokens ?? model.maxOutputTokens };
  }
}

export type TaskAdmission = ReturnType<typeof createTaskAdmission>;
