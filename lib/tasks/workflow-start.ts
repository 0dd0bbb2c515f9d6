import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { TaskType } from '../../protocol/task-types.js';
import type { TaskWorkflowInput } from '../../workflows/definitions.js';
import { TaskClientKey, TaskModelKey, TaskStatusKey } from '../../workflows/search-attributes.js';
import type { taskWorkflow } from '../../workflows/task.js';
import type { Config } from '../config.js';

/** What starting a task's workflow needs from its row. */
export interface StartableTask {
  id: string;
  clientId: string;
  deadlineAt: Date;
  model: { id: string; name: string; version: string; taskType: TaskType };
}

type StartConfig = Pick<
  Config,
  | 'TEMPORAL_TASK_QUEUE'
  | 'TASK_MAX_ATTEMPTS'
  | 'TASK_ACCEPT_TIMEOUT_MS'
  | 'TASK_RESULT_TIMEOUT_MS'
  | 'TASK_NO_NODE_RETRY_MS'
  | 'TASK_START_TIMEOUT_MS'
>;

/**
 * Start the task's workflow (workflow id = task id), waiting at most `TASK_START_TIMEOUT_MS` for
 * Temporal. Joins a workflow that is already running; a finished one is never started again.
 * `abandon` starts it only to release the hold and fail the task (the reaper's use).
 */
export async function startTaskWorkflow(
  client: Client,
  config: StartConfig,
  task: StartableTask,
  options: { abandon?: { reason: string } } = {},
): Promise<void> {
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
    ...(options.abandon ? { abandon: options.abandon } : {}),
  };
  try {
    await client.withDeadline(Date.now() + config.TASK_START_TIMEOUT_MS, () =>
      client.workflow.start<typeof taskWorkflow>('taskWorkflow', {
        workflowId: task.id,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: TaskStatusKey, value: 'queued' },
          { key: TaskModelKey, value: `${task.model.name}:${task.model.version}` },
          { key: TaskClientKey, value: task.clientId },
        ],
      }),
    );
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return;
    throw err;
  }
}
