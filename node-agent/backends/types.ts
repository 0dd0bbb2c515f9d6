import type { TaskType, Usage } from '../../protocol/task-types.js';

/** One assigned attempt, as a backend sees it (the `assign` frame minus the protocol fields). */
export interface BackendTask {
  taskId: string;
  attemptId: string;
  model: { name: string; version: string; taskType: TaskType };
  /** Validated by the backend against the task type's input schema (protocol/task-types.ts). */
  input: unknown;
  params: Record<string, unknown>;
}

/** What a backend returns; the agent sends it as the `result` frame. */
export interface BackendResult {
  output: unknown;
  usage?: Usage;
}

/**
 * Runs inference for the agent. Implementations must reject promptly when `signal` aborts
 * (cancel from the coordinator, or agent shutdown), so the GPU is not kept busy for nothing.
 * @example const backend: Backend = openAiBackend({ baseUrl: 'http://127.0.0.1:8000' });
 */
export interface Backend {
  run(task: BackendTask, signal: AbortSignal): Promise<BackendResult>;
}
