import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { Hono } from 'hono';
import { Prisma } from '../../generated/prisma/client.js';
import { createLedger } from '../../lib/ledger/ledger.js';
import { postHold, postRelease } from '../../lib/ledger/task-postings.js';
import { InsufficientFundsError } from '../../lib/ledger/types.js';
import { holdAmount } from '../../lib/pricing.js';
import { TASK_TYPE_SCHEMAS } from '../../protocol/task-types.js';
import type { TaskWorkflowInput } from '../../workflows/definitions.js';
import { TaskClientKey, TaskModelKey, TaskStatusKey } from '../../workflows/search-attributes.js';
import type { taskWorkflow } from '../../workflows/task.js';
import { isTerminal, type TaskStatus } from '../../workflows/task-status.js';
import type { AppDeps } from '../app.js';
import { authenticate, requireRole } from '../auth/index.js';
import type { Principal } from '../auth/principal.js';
import { ApiError } from '../errors.js';
import { describeZodError } from '../middleware/error-handler.js';
import { notFound, validate } from '../middleware/validate.js';
import { requestHash, taskIdFor } from './ids.js';
import {
  type CreateTaskBody,
  createTaskBody,
  idempotencyKey,
  listTasksQuery,
  taskIdPattern,
} from './schemas.js';
import { decodeCursor, encodeCursor, type TaskRow, taskInclude, toTaskView } from './view.js';

type Deps = Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store' | 'temporal'>;

/**
 * Tasks, mounted at `/api/tasks`. Clients submit and read their own tasks; admins read all.
 * - `POST /` → 202 `{ task }` (header `Idempotency-Key` makes retries join the same task)
 * - `GET /` `?status&limit&cursor` → `{ tasks, nextCursor }`
 * - `GET /:id` → `{ task }` with its attempts
 * - `GET /:id/result` → 202 while running, 200 with the result (or the failure) when finished
 * - `POST /:id/cancel` → 202; 409 when already finished
 */
export function taskRoutes(deps: Deps) {
  const { prisma, config, temporal } = deps;
  const ledger = createLedger(prisma);

  async function abandon(task: TaskRow) {
    await prisma.task.deleteMany({ where: { id: task.id, status: 'queued' } }).catch(() => undefined);
    if (!task.holdAmount || task.holdAmount <= 0n) return;
    await postRelease(ledger, { taskId: task.id, clientId: task.clientId, amount: task.holdAmount }).catch(
      (err) => deps.log.error({ err, taskId: task.id }, 'could not release an abandoned hold'),
    );
  }

  /** The caller's task, or 404 (also for another client's task: ids must not leak). */
  async function findOwnTask(principal: Principal, id: string): Promise<TaskRow> {
    if (!taskIdPattern.test(id)) throw notFound('task');
    const task = await prisma.task.findUnique({ where: { id }, include: taskInclude });
    if (!task || (principal.role === 'client' && task.clientId !== principal.clientId))
      throw notFound('task');
    return task;
  }

  async function startWorkflow(task: TaskRow) {
    const input: TaskWorkflowInput = {
      taskId: task.id,
      clientId: task.clientId,
      model: {
        id: task.model.id,
        name: task.model.name,
        version: task.model.version,
        taskType: task.model.taskType,
      },
      queueDeadline: task.deadlineAt.getTime(),
      limits: {
        maxAttempts: config.TASK_MAX_ATTEMPTS,
        acceptTimeoutMs: config.TASK_ACCEPT_TIMEOUT_MS,
        resultTimeoutMs: config.TASK_RESULT_TIMEOUT_MS,
        noNodeRetryMs: config.TASK_NO_NODE_RETRY_MS,
      },
    };
    try {
      await temporal.client.workflow.start<typeof taskWorkflow>('taskWorkflow', {
        workflowId: task.id,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [input],
        // A retried request joins the running workflow; a finished one is never started again.
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: TaskStatusKey, value: 'queued' },
          { key: TaskModelKey, value: `${task.model.name}:${task.model.version}` },
          { key: TaskClientKey, value: task.clientId },
        ],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      throw err;
    }
  }

  return new Hono()
    .use('*', authenticate(deps))
    .post('/', requireRole('client'), validate('json', createTaskBody), async (c) => {
      const principal = c.get('principal') as Extract<Principal, { role: 'client' }>;
      const key = c.req.header('Idempotency-Key');
      if (key !== undefined && !idempotencyKey.safeParse(key).success) {
        throw new ApiError(400, 'validation_failed', 'Idempotency-Key: must be 1-128 of A-Z a-z 0-9 _ . : -');
      }
      const body = c.req.valid('json');
      const id = taskIdFor(principal.clientId, key);
      const hash = requestHash(body);

      // A retried request joins its task before anything else is judged (the model may have changed since).
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
              clientId: principal.clientId,
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

      // Hold the price cap before the workflow exists; idempotent, so a retry never holds twice.
      if (task.holdAmount && task.holdAmount > 0n) {
        try {
          await postHold(ledger, { taskId: task.id, clientId: task.clientId, amount: task.holdAmount });
        } catch (err) {
          if (!(err instanceof InsufficientFundsError)) throw err;
          // No hold, so no workflow was ever started for this row: nothing else refers to it.
          await prisma.task.deleteMany({ where: { id: task.id, status: 'queued' } });
          throw new ApiError(
            402,
            'payment_required',
            `insufficient balance: this task holds up to ${task.holdAmount} tokens and ${err.available} are available`,
          );
        }
      }

      try {
        await startWorkflow(task);
      } catch (err) {
        deps.log.error({ err, taskId: id }, 'could not start the task workflow');
        // Without a key the client cannot retry into this row: remove it and give the hold back.
        if (!key) await abandon(task);
        throw new ApiError(
          503,
          'unavailable',
          key
            ? 'the task could not be started now; retry with the same Idempotency-Key'
            : 'the task could not be started now; retry later',
        );
      }
      c.header('Location', `/api/tasks/${task.id}`);
      return c.json({ task: toTaskView(task) }, 202);
    })
    .get('/', requireRole('client', 'admin'), validate('query', listTasksQuery), async (c) => {
      const principal = c.get('principal');
      const { status, limit, cursor } = c.req.valid('query');
      const after = cursor ? decodeCursor(cursor) : undefined;
      const rows = await prisma.task.findMany({
        where: {
          ...(principal.role === 'client' ? { clientId: principal.clientId } : {}),
          ...(status ? { status } : {}),
          ...(after
            ? {
                OR: [
                  { createdAt: { lt: after.createdAt } },
                  { createdAt: after.createdAt, id: { lt: after.id } },
                ],
              }
            : {}),
        },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: limit + 1,
        include: taskInclude,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return c.json({
        tasks: page.map((t) => toTaskView(t, { brief: true })),
        nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
      });
    })
    .get('/:id', requireRole('client', 'admin'), async (c) => {
      const task = await findOwnTask(c.get('principal'), c.req.param('id'));
      const attempts = await prisma.taskAttempt.findMany({
        where: { taskId: task.id },
        orderBy: { attemptNo: 'asc' },
        select: {
          attemptNo: true,
          nodeId: true,
          outcome: true,
          error: true,
          assignedAt: true,
          acceptedAt: true,
          finishedAt: true,
          latencyMs: true,
        },
      });
      return c.json({ task: { ...toTaskView(task), attemptHistory: attempts } });
    })
    .get('/:id/result', requireRole('client', 'admin'), async (c) => {
      const task = await findOwnTask(c.get('principal'), c.req.param('id'));
      const status = task.status as TaskStatus;
      if (!isTerminal(status)) return c.json({ id: task.id, status }, 202);
      return c.json({
        id: task.id,
        status,
        result: task.result,
        verdict: task.verdict,
        failureReason: task.failureReason,
        completedAt: task.completedAt,
      });
    })
    .post('/:id/cancel', requireRole('client', 'admin'), async (c) => {
      const task = await findOwnTask(c.get('principal'), c.req.param('id'));
      if (isTerminal(task.status as TaskStatus)) {
        throw new ApiError(409, 'conflict', `task ${task.id} is already ${task.status}`);
      }
      try {
        await temporal.client.workflow.getHandle(task.id).cancel();
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        throw new ApiError(409, 'conflict', `task ${task.id} has already finished`);
      }
      return c.json({ id: task.id, status: task.status, cancelRequested: true }, 202);
    });

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
