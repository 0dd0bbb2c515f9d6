import { type Context, Hono } from 'hono';
import { isTerminal, type TaskStatus } from '../../workflows/task-status.js';
import { authenticate, requireRole } from '../auth/index.js';
import type { Principal } from '../auth/principal.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { notFound, validate } from '../middleware/validate.js';
import { createTaskAdmission, TemporalUnavailableError } from './admission.js';
import { createTaskBody, idempotencyKey, listTasksQuery, taskIdPattern } from './schemas.js';
import { decodeCursor, encodeCursor, type TaskRow, taskInclude, toTaskView } from './view.js';

type Deps = Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store' | 'temporal'>;

/**
 * Tasks, mounted at `/api/tasks`. Clients submit and read their own tasks; admins read all.
 * - `POST /` → 202 `{ task }` (header `Idempotency-Key` makes retries join the same task)
 * - `GET /` `?status&limit&cursor` → `{ tasks, nextCursor }`
 * - `GET /:id` → `{ task }` with its attempts
 * - `GET /:id/result` → 202 while running, 200 with the result (or the failure) when finished
 * - `POST /:id/cancel` → 202; 409 when already finished
 * Temporal unreachable: 503 with `Retry-After` within `TASK_START_TIMEOUT_MS`.
 */
export function taskRoutes(deps: Deps) {
  const { prisma } = deps;
  const admission = createTaskAdmission(deps);

  /** The caller's task, or 404 (also for another client's task: ids must not leak). */
  async function findOwnTask(principal: Principal, id: string): Promise<TaskRow> {
    if (!taskIdPattern.test(id)) throw notFound('task');
    const task = await prisma.task.findUnique({ where: { id }, include: taskInclude });
    if (!task || (principal.role === 'client' && task.clientId !== principal.clientId))
      throw notFound('task');
    return task;
  }

  return new Hono()
    .use('*', authenticate(deps))
    .post('/', requireRole('client'), validate('json', createTaskBody), async (c) => {
      const principal = c.get('principal') as Extract<Principal, { role: 'client' }>;
      const key = c.req.header('Idempotency-Key');
      if (key !== undefined && !idempotencyKey.safeParse(key).success) {
        throw new ApiError(400, 'validation_failed', 'Idempotency-Key: must be 1-128 of A-Z a-z 0-9 _ . : -');
      }
      const task = await withRetryAfter(c, () =>
        admission.submit(principal.clientId, c.req.valid('json'), key),
      );
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
      if (!(await withRetryAfter(c, () => admission.cancel(task)))) {
        const now = await prisma.task.findUnique({ where: { id: task.id }, select: { status: true } });
        throw new ApiError(409, 'conflict', `task ${task.id} is already ${now?.status ?? task.status}`);
      }
      return c.json({ id: task.id, status: task.status, cancelRequested: true }, 202);
    });
}

/** Run `fn`; a Temporal outage becomes 503 with a `Retry-After` header. */
async function withRetryAfter<T>(c: Context, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TemporalUnavailableError) c.header('Retry-After', String(err.retryAfterSeconds));
    throw err;
  }
}
