import { taskEventsChannel } from '../activities/tasks.js';
import { taskIdFor } from '../api/tasks/ids.js';
import type { Store } from '../lib/redis/index.js';
import type { NodeAgent } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import { MODEL, seed, startInProcess, startNode } from '../tests/helpers/coordinator.js';
import { isTerminal, type TaskStatus } from '../workflows/task-status.js';
import {
  historyEvents,
  measure,
  type PhaseOptions,
  type PhaseResult,
  progress,
  round,
  spread,
} from './measure.js';
import { runPool } from './stats.js';

/** How the client learns that a task finished: the coordinator's task events, or polling its REST view. */
export type Observe = 'events' | 'poll';

export interface TaskPhaseOptions extends PhaseOptions {
  nodes: number;
  capacity: number;
  observe: Observe;
  pollMs: number;
}

export interface TaskPhaseResult extends PhaseResult {
  observe: Observe;
  /** REST requests the client made per task (submit, reads and polls): the observation's overhead. */
  requestsPerTask: number;
  attemptsPerTask: number;
  failed: number;
}

const TASK_TIMEOUT_MS = 60_000;

type TaskView = { status: TaskStatus; attempts: number };

/**
 * The real thing: api + worker in this process (as the tests run them), `nodes` simulated nodes (real
 * node agent, zero latency), tasks submitted over REST at `concurrency`. Latency is submit → the client
 * learns the task completed: with `events` from the task's event channel (subscribed before submitting,
 * then one `GET /api/tasks/:id` to read it), with `poll` from `GET /api/tasks/:id` every `pollMs`.
 */
export async function runTaskWorkflows(env: Record<string, string>, opts: TaskPhaseOptions) {
  const coordinator = await startInProcess(env);
  const agents: NodeAgent[] = [];
  try {
    const s = await seed(coordinator.url, env.ADMIN_API_KEY as string);
    for (let n = 1; n <= opts.nodes; n++) {
      const { key } = await s.registerNode(`bench-node-${n}`, opts.capacity);
      const backend = simulatedBackend({ latencyMs: 0 });
      agents.push(await startNode(coordinator.url, key, { capacity: opts.capacity, backend }));
    }
    progress(`task workflow: ${opts.nodes} simulated nodes connected (capacity ${opts.capacity} each)`);

    let requests = 0;
    let attempts = 0;
    let failed = 0;
    const get = async (taskId: string) => {
      requests++;
      const r = await s.clientA.get(`/api/tasks/${taskId}`);
      if (r.status !== 200) throw new Error(`GET task ${taskId}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.task as TaskView;
    };
    /** Latency then includes up to one poll interval, and every poll is a request the API serves. */
    const pollUntilFinished = async (taskId: string): Promise<TaskView> => {
      const deadline = Date.now() + TASK_TIMEOUT_MS;
      for (;;) {
        const task = await get(taskId);
        if (isTerminal(task.status)) return task;
        if (Date.now() > deadline) throw new Error(`task ${taskId} still ${task.status} after polling`);
        await new Promise((resolve) => setTimeout(resolve, opts.pollMs));
      }
    };
    const run = async (key: string): Promise<number> => {
      const taskId = taskIdFor(s.clientAId, key);
      const finished =
        opts.observe === 'events' ? await terminalEvent(coordinator.services.store, taskId) : undefined;
      const started = performance.now();
      requests++;
      const r = await s.clientA.post(
        '/api/tasks',
        { model: MODEL.name, input: { prompt: `benchmark ${key}` } },
        { 'Idempotency-Key': key },
      );
      if (r.status !== 202) throw new Error(`submit ${key}: ${r.status} ${JSON.stringify(r.body)}`);
      let task: TaskView | undefined;
      if (finished) await finished.status;
      else task = await pollUntilFinished(taskId);
      const latency = performance.now() - started;
      task ??= await get(taskId); // the client reads its result
      attempts += task.attempts;
      if (task.status !== 'completed') failed++;
      return latency;
    };

    progress(`task workflow: warm-up (${opts.warmup} tasks)`);
    await runPool(opts.warmup, opts.concurrency, (i) => run(`warmup-${i}`));
    [requests, attempts, failed] = [0, 0, 0];
    const measured = await measure('task workflow', opts.tasks, opts.concurrency, (i) => run(`task-${i}`));

    const { client } = coordinator.services.temporal;
    const ids = spread(opts.tasks, opts.historySample).map((i) => taskIdFor(s.clientAId, `task-${i}`));
    const events = await historyEvents(async (id) => {
      const handle = client.workflow.getHandle(id);
      await handle.result(); // the task is done for the client a moment before its workflow closes
      return handle.fetchHistory();
    }, ids);
    return {
      ...measured,
      eventsPerItem: events.mean,
      eventsSample: events.sample,
      eventsByType: events.byType,
      observe: opts.observe,
      requestsPerTask: round(requests / opts.tasks, 2),
      attemptsPerTask: round(attempts / opts.tasks, 2),
      failed,
    } satisfies TaskPhaseResult;
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await coordinator.close();
  }
}

/**
 * Subscribe to the task's events before it exists (its id is derived from the Idempotency-Key), so the
 * terminal event cannot be missed. `status` resolves with it, or rejects after {@link TASK_TIMEOUT_MS}.
 */
async function terminalEvent(store: Store, taskId: string): Promise<{ status: Promise<TaskStatus> }> {
  let settle: (status: TaskStatus) => void = () => {};
  const terminal = new Promise<TaskStatus>((resolve) => {
    settle = resolve;
  });
  const off = await store.pubsub.subscribe(taskEventsChannel(taskId), (message) => {
    const event = JSON.parse(message) as { status: TaskStatus };
    if (isTerminal(event.status)) settle(event.status);
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const error = new Error(`task ${taskId} did not finish within ${TASK_TIMEOUT_MS} ms`);
    timer = setTimeout(() => reject(error), TASK_TIMEOUT_MS);
  });
  const status = Promise.race([terminal, timeout]).finally(() => {
    clearTimeout(timer);
    void off();
  });
  status.catch(() => {}); // the caller awaits it after submitting; a failed submit must not leave it unhandled
  return { status };
}
