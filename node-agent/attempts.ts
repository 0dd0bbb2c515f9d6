/** The node agent's attempts: taking or refusing assignments, running them, and reporting back. */
import type { EventEmitter } from 'node:events';
import {
  type AssignFrame,
  type CancelFrame,
  type HelloFrame,
  PROTOCOL_VERSION,
  type ReportFrame,
} from '../protocol/frames.js';
import { usage as usageSchema } from '../protocol/task-types.js';
import type { BackendResult, BackendTask } from './backends/types.js';
import { type AgentLogger, truncate } from './internal.js';
import type { Outbox } from './outbox.js';
import type { NodeAgentEvents, NodeAgentOptions } from './types.js';

export interface Running {
  controller: AbortController;
  done: Promise<void>;
  /** Cancelled by the coordinator: it wants nothing back. */
  cancelled: boolean;
  /** Aborted by stop(): tell the coordinator, so the task moves on without waiting for its deadline. */
  shutdown: boolean;
  /** After this, a queued result is of no use to anyone (the attempt's deadline, plus slack). */
  expiresAt: number;
}

/** How long past an attempt's deadline its unanswered report is still sent. */
const REPORT_SLACK_MS = 60_000;
const v = PROTOCOL_VERSION;

/**
 * The agent's attempts: whether to take an assignment, running it on the backend, and queueing its
 * reports (accept, reject, result, error) in the outbox. The {@link NodeAgent} owns the connection and
 * passes the coordinator's assign and cancel frames here.
 */
export class Attempts {
  readonly tasks = new Map<string, Running>();
  readonly counters = {
    assigned: 0,
    accepted: 0,
    rejected: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
  };

  constructor(
    private readonly deps: {
      options: NodeAgentOptions;
      hello: HelloFrame;
      outbox: Outbox;
      log: AgentLogger;
      /** The agent is started and not stopping: otherwise an assignment is refused. */
      running: () => boolean;
      emit: EventEmitter<NodeAgentEvents>['emit'];
    },
  ) {}

  onAssign(frame: AssignFrame): void {
    const id = frame.attemptId;
    // Dispatch is at-least-once: the same assignment again gets its unanswered report again (an answered
    // one needs nothing more) and runs once.
    if (this.deps.outbox.has(id) || this.tasks.has(id)) {
      this.deps.outbox.resend(id);
      return;
    }
    const expiresAt = Date.now() + frame.acceptTimeoutMs + REPORT_SLACK_MS;

    this.counters.assigned++;
    this.deps.emit('assigned', frame);
    const decision = this.deps.options.behaviour?.onAssign?.(frame) ?? 'accept';
    if (decision === 'ignore') return;
    const reason = this.rejection(frame, decision);
    if (reason) {
      this.deps.outbox.add(id, { v, type: 'reject', attemptId: id, reason }, expiresAt);
      this.counters.rejected++;
      this.deps.emit('rejected', { attemptId: id, reason });
      return;
    }
    this.deps.outbox.add(id, { v, type: 'accept', attemptId: id }, expiresAt);
    this.counters.accepted++;
    this.deps.emit('accepted', { attemptId: id });
    this.run(frame);
  }

  private rejection(frame: AssignFrame, decision: 'accept' | 'reject'): string | undefined {
    const { name, version } = frame.model;
    if (decision === 'reject') return 'rejected by test behaviour';
    if (!this.deps.running()) return 'node shutting down';
    if (!this.deps.hello.models.some((m) => m.name === name && m.version === version)) {
      return truncate(`model not served: ${name}:${version}`, 500);
    }
    if (this.tasks.size >= this.deps.hello.capacity) return 'at capacity';
    return undefined;
  }

  onCancel(frame: CancelFrame): void {
    this.deps.outbox.drop(frame.attemptId);
    this.abortTask(frame.attemptId, frame.reason);
  }

  abortTask(attemptId: string, reason: string): void {
    const entry = this.tasks.get(attemptId);
    if (!entry || entry.cancelled) return;
    entry.cancelled = true;
    entry.controller.abort(new Error(`cancelled by the coordinator: ${reason}`));
    this.counters.cancelled++;
    this.deps.emit('cancelled', { attemptId, reason });
  }

  // running tasks

  private run(frame: AssignFrame): void {
    const { taskId, attemptId, model, input, params } = frame;
    const controller = new AbortController();
    const { signal } = controller;
    const task: BackendTask = { taskId, attemptId, model, input, params };
    const startedAt = performance.now();
    const work =
      this.deps.options.behaviour?.afterAccept === 'hang'
        ? new Promise<BackendResult>((_, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason)),
          )
        : Promise.resolve().then(() => this.deps.options.backend.run(task, signal));
    const entry: Running = {
      controller,
      cancelled: false,
      shutdown: false,
      expiresAt: Date.now() + frame.resultTimeoutMs + REPORT_SLACK_MS,
      done: work
        .then(
          (result) => this.finish(attemptId, entry, startedAt, { ok: true, result }),
          (error: unknown) => this.finish(attemptId, entry, startedAt, { ok: false, error }),
        )
        .catch((err: unknown) => this.deps.log.error({ err, attemptId }, 'bug while reporting a task')),
    };
    this.tasks.set(attemptId, entry);
  }

  private finish(
    attemptId: string,
    entry: Running,
    startedAt: number,
    outcome: { ok: true; result: BackendResult } | { ok: false; error: unknown },
  ): void {
    this.tasks.delete(attemptId);
    if (entry.cancelled) return;
    if (outcome.ok) {
      const usage = usageSchema.safeParse(outcome.result.usage);
      if (outcome.result.usage !== undefined && !usage.success) {
        this.deps.log.warn({ attemptId }, 'backend reported invalid usage; leaving it out');
      }
      const frame: ReportFrame = { v, type: 'result', attemptId, output: outcome.result.output };
      if (usage.success) frame.usage = usage.data;
      this.deps.outbox.add(attemptId, frame, entry.expiresAt);
      this.counters.completed++;
      const durationMs = Math.round(performance.now() - startedAt);
      this.deps.emit('completed', { attemptId, durationMs, ...(usage.success ? { usage: usage.data } : {}) });
      return;
    }
    const err = outcome.error;
    const message = truncate(
      entry.shutdown ? 'node shutting down' : err instanceof Error ? err.message : String(err),
      2_000,
    );
    this.deps.log.warn({ attemptId, message }, 'task failed');
    this.deps.outbox.add(attemptId, { v, type: 'error', attemptId, message }, entry.expiresAt);
    this.counters.failed++;
    this.deps.emit('failed', { attemptId, message });
  }
}
