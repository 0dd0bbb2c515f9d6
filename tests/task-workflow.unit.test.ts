import { fileURLToPath } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import proto from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliverAssignmentInput } from '../activities/host.js';
import type { Activities } from '../activities/index.js';
import type { SelectedNode } from '../activities/selection.js';
import type { Verification } from '../activities/verification.js';
import type { FinishResult } from '../lib/tasks/attempts.js';
import {
  hostTaskQueue,
  type NodeReport,
  nodeReportSignal,
  stateQuery,
  type TaskOutcome,
  type TaskWorkflowInput,
} from '../workflows/definitions.js';
import { FailureType } from '../workflows/policies.js';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/search-attributes.js';
import type { taskWorkflow } from '../workflows/task.js';
import { locateTimeSkippingServer } from './helpers/test-server.js';

/**
 * The task workflow on its own: stub activities on a time-skipping test server, so every branch,
 * deadlines included, runs in milliseconds and without PostgreSQL, Redis or an api process.
 * The deadlines are long (minutes): a branch meant to reach one gets there by time skipping, and
 * one that is not can never race it.
 */

const MAIN_QUEUE = 'unit-tasks';
const HOSTS = ['h1', 'h2'] as const;
const N1: SelectedNode = { nodeId: 'n1', hostId: 'h1' };
const N2: SelectedNode = { nodeId: 'n2', hostId: 'h2' };
const N3: SelectedNode = { nodeId: 'n3', hostId: 'h1' };
const VERDICT = { checks: ['format'], quality: 1 };

type Act<K extends keyof Activities> = Parameters<Activities[K]>[0];
type Report = Pick<NodeReport, 'kind' | 'reason' | 'outputHash'>;

/** What one test's stubs answer. Everything not given behaves like a healthy coordinator. */
interface Script {
  /** selectNode's answers in order (null: no node available); past the end, null. */
  nodes: Array<SelectedNode | null>;
  /**
   * The node's side of an assignment: the reports it sends (signalled before deliverAssignment returns,
   * so no deadline can pass in between), or a throw (the dispatch failed).
   */
  onAssign?: (a: DeliverAssignmentInput, send: (r: Report) => Promise<void>) => Promise<void>;
  finishAttempt?: (input: Act<'finishAttempt'>) => FinishResult;
  verifyResult?: (input: Act<'verifyResult'>) => Verification | Promise<Verification>;
}

interface Call {
  name: string;
  input: Record<string, unknown>;
}

/** One workflow run's script and the activity calls its stubs saw. */
class Run {
  readonly calls: Call[] = [];
  selections = 0;
  private waiters: Array<{ match: (c: Call) => boolean; resolve: (c: Call) => void }> = [];

  constructor(readonly script: Script) {}

  record(name: string, input: object) {
    const call = { name, input: input as Record<string, unknown> };
    this.calls.push(call);
    const ready = this.waiters.filter((w) => w.match(call));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve(call);
  }

  /** Resolves at the `nth` call (past or future) named `name` whose input has the fields of `fields`. */
  waitFor(name: string, fields: Record<string, unknown> = {}, nth = 1): Promise<Call> {
    const matches = (c: Call) =>
      c.name === name && Object.entries(fields).every(([k, v]) => c.input[k] === v);
    let seen = this.calls.filter(matches).length;
    if (seen >= nth) return Promise.resolve(this.calls.filter(matches)[nth - 1] as Call);
    const match = (c: Call) => matches(c) && ++seen === nth;
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  count(name: string, fields: Record<string, unknown> = {}): number {
    return this.calls.filter(
      (c) => c.name === name && Object.entries(fields).every(([k, v]) => c.input[k] === v),
    ).length;
  }

  names(): string[] {
    return this.calls.map((c) => c.name);
  }

  inputs(name: string): Array<Record<string, unknown>> {
    return this.calls.filter((c) => c.name === name).map((c) => c.input);
  }
}

let env: TestWorkflowEnvironment;
let workers: Worker[] = [];
let running: Promise<void>[] = [];
const runs = new Map<string, Run>();
let seq = 0;

const runOf = (taskId: string): Run => {
  const run = runs.get(taskId);
  if (!run) throw new Error(`no script for task ${taskId}`);
  return run;
};

function mainActivities() {
  const rec = <T extends { taskId: string }>(name: string, input: T) => {
    const run = runOf(input.taskId);
    run.record(name, input);
    return run;
  };
  return {
    async selectNode(input: Act<'selectNode'>) {
      const run = rec('selectNode', input as Act<'selectNode'> & { taskId: string });
      return run.script.nodes[run.selections++] ?? null;
    },
    async startAttempt(input: Act<'startAttempt'>) {
      rec('startAttempt', input);
    },
    async recordTaskStatus(input: Act<'recordTaskStatus'>) {
      rec('recordTaskStatus', input);
    },
    async finishAttempt(input: Act<'finishAttempt'>): Promise<FinishResult> {
      return rec('finishAttempt', input).script.finishAttempt?.(input) ?? { closed: true };
    },
    async verifyResult(input: Act<'verifyResult'>): Promise<Verification> {
      const run = rec('verifyResult', input);
      return (await run.script.verifyResult?.(input)) ?? { ok: true, verdict: VERDICT };
    },
    async settleTask(input: Act<'settleTask'>) {
      rec('settleTask', input);
      return { price: '1', reward: '1', fee: '0', refund: '0', posted: true, captured: true };
    },
    async completeTask(input: Act<'completeTask'>) {
      rec('completeTask', input);
    },
    async finishTask(input: Act<'finishTask'>) {
      rec('finishTask', input);
    },
    async releaseTask(input: Act<'releaseTask'>) {
      rec('releaseTask', input);
      return true;
    },
  };
}

function hostActivities(hostId: string) {
  return {
    async deliverAssignment(input: DeliverAssignmentInput) {
      const run = runOf(input.taskId);
      run.record('deliverAssignment', { ...input, hostId });
      const send = (r: Report) =>
        env.client.workflow
          .getHandle(input.taskId)
          .signal(nodeReportSignal, { attemptNo: input.attemptNo, nodeId: input.nodeId, ...r });
      await run.script.onAssign?.(input, send);
    },
    async deliverCancel(input: { taskId: string; attemptNo: number; nodeId: string; reason: string }) {
      runOf(input.taskId).record('deliverCancel', { ...input, hostId });
    },
  };
}

const notConnected = (nodeId: string) =>
  ApplicationFailure.create({
    type: FailureType.NodeNotConnected,
    message: `node ${nodeId} is not connected`,
    nonRetryable: true,
  });

/** Node behaviours for `onAssign`, keyed by node id. */
const nodes =
  (behaviour: Record<string, 'complete' | 'accept-only' | 'silent' | 'reject' | 'error' | 'gone'>) =>
  async (a: DeliverAssignmentInput, send: (r: Report) => Promise<void>) => {
    const run = runOf(a.taskId);
    // Accept, then report only once the workflow has seen the accept (status `running`): two signals
    // in a row may or may not reach the workflow in one activation, and the test wants one path.
    const accept = async () => {
      const running = run.count('recordTaskStatus', { status: 'running' });
      await send({ kind: 'accepted' });
      await run.waitFor('recordTaskStatus', { status: 'running' }, running + 1);
    };
    switch (behaviour[a.nodeId] ?? 'complete') {
      case 'complete':
        await accept();
        await send({ kind: 'result', outputHash: `hash-${a.nodeId}` });
        return;
      case 'accept-only':
        await accept();
        return;
      case 'silent':
        return;
      case 'reject':
        await send({ kind: 'rejected', reason: 'busy' });
        return;
      case 'error':
        await accept();
        await send({ kind: 'error', reason: 'out of memory' });
        return;
      case 'gone':
        throw notConnected(a.nodeId);
    }
  };

async function start(script: Script, overrides: Partial<TaskWorkflowInput> = {}) {
  const taskId = `task-${++seq}`;
  const run = new Run(script);
  runs.set(taskId, run);
  const now = await env.currentTimeMs(); // the server's clock, moved on by earlier tests' skipping
  const input: TaskWorkflowInput = {
    taskId,
    clientId: 'client-1',
    model: { id: 'model-1', name: 'llama-test', version: '1', taskType: 'text_generation' },
    queueDeadline: now + 10 * 60_000,
    limits: { maxAttempts: 3, acceptTimeoutMs: 60_000, resultTimeoutMs: 5 * 60_000, noNodeRetryMs: 20_000 },
    ...overrides,
  };
  const handle = await env.client.workflow.start<typeof taskWorkflow>('taskWorkflow', {
    taskQueue: MAIN_QUEUE,
    workflowId: taskId,
    args: [input],
  });
  return { taskId, run, handle };
}

const { EventType } = proto.temporal.api.enums.v1;

/**
 * Resolves once the workflow is blocked with nothing in flight: its last workflow task completed and
 * every activity it scheduled has closed. A cancel sent then cannot meet an activity completion in the
 * same workflow task, which the test server mishandles (the task stays started forever; sdk-java#2391).
 */
async function idle(handle: {
  fetchHistory(): Promise<{ events?: proto.temporal.api.history.v1.IHistoryEvent[] | null }>;
}) {
  for (;;) {
    const events = (await handle.fetchHistory()).events ?? [];
    const open = new Set<string>();
    let taskOpen = false;
    for (const e of events) {
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) open.add(String(e.eventId));
      const closed =
        e.activityTaskCompletedEventAttributes ??
        e.activityTaskFailedEventAttributes ??
        e.activityTaskTimedOutEventAttributes ??
        e.activityTaskCanceledEventAttributes;
      if (closed) open.delete(String(closed.scheduledEventId));
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) taskOpen = true;
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) taskOpen = false;
    }
    if (!taskOpen && open.size === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The workflow's failure cause, or a test failure when it did not fail. */
async function failureOf(result: Promise<unknown>) {
  const err = await result.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause;
}

function expectTaskFailed(cause: unknown, message: RegExp) {
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).type).toBe(FailureType.TaskFailed);
  expect((cause as ApplicationFailure).message).toMatch(message);
}

beforeAll(async () => {
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    // Core warns that the test server lacks a newer server's capabilities; nothing here needs them.
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
  });
  const [path, workflowBundle] = await Promise.all([
    locateTimeSkippingServer(),
    bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
    }) as Promise<WorkflowBundleWithSourceMap>,
  ]);
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path } },
  });
  // The workflow upserts them; the test server, like a real one, refuses keys it does not know.
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(
      SEARCH_ATTRIBUTE_KEYS.map((k) => [
        k.name,
        proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      ]),
    ),
  });
  const common = { connection: env.nativeConnection, namespace: env.namespace ?? 'default' };
  workers = await Promise.all([
    Worker.create({ ...common, taskQueue: MAIN_QUEUE, workflowBundle, activities: mainActivities() }),
    ...HOSTS.map((hostId) =>
      Worker.create({
        ...common,
        taskQueue: hostTaskQueue(MAIN_QUEUE, hostId),
        activities: hostActivities(hostId),
      }),
    ),
  ]);
  running = workers.map((w) => w.run());
}, 300_000); // the first run on a machine resolves the test server with Maven

afterAll(async () => {
  for (const w of workers) w.shutdown();
  await Promise.allSettled(running);
  await env?.teardown();
});

describe('task workflow (time-skipping, stub activities)', () => {
  it('happy path: select, dispatch, accept, result, verify, settle, complete', async () => {
    const { taskId, run, handle } = await start({ nodes: [N1], onAssign: nodes({}) });
    const outcome: TaskOutcome = await handle.result();

    expect(outcome).toEqual({ status: 'completed', attemptNo: 1, nodeId: 'n1' });
    expect(run.names()).toEqual([
      'selectNode',
      'startAttempt',
      'recordTaskStatus',
      'deliverAssignment',
      'recordTaskStatus',
      'recordTaskStatus',
      'verifyResult',
      'finishAttempt',
      'settleTask',
      'completeTask',
    ]);
    expect(run.inputs('selectNode')[0]).toMatchObject({ taskId, exclude: [], attemptNo: 1 });
    expect(run.inputs('deliverAssignment')[0]).toMatchObject({
      nodeId: 'n1',
      hostId: 'h1',
      attemptNo: 1,
      acceptTimeoutMs: 60_000,
      resultTimeoutMs: 300_000,
    });
    expect(run.inputs('recordTaskStatus').map((i) => i.status)).toEqual(['assigned', 'running', 'verifying']);
    expect(run.inputs('finishAttempt')).toEqual([{ taskId, attemptNo: 1, outcome: 'completed' }]);
    expect(run.inputs('settleTask')).toEqual([{ taskId, attemptNo: 1, quality: 1 }]);
    expect(run.inputs('completeTask')).toEqual([{ taskId, attemptNo: 1, verdict: VERDICT }]);
    expect(run.names()).not.toContain('releaseTask');
    expect((await handle.query(stateQuery)).status).toBe('completed');
  });

  it('no accept before the deadline: cancel on the node, attempt times out, next node completes', async () => {
    const { taskId, run, handle } = await start({ nodes: [N1, N2], onAssign: nodes({ n1: 'silent' }) });
    const outcome = await handle.result();

    expect(outcome).toEqual({ status: 'completed', attemptNo: 2, nodeId: 'n2' });
    // Sent without waiting for it (the host may be gone), so it may land after the workflow closed.
    await run.waitFor('deliverCancel');
    expect(run.inputs('deliverCancel')).toEqual([
      { taskId, attemptNo: 1, nodeId: 'n1', hostId: 'h1', reason: 'no accept within 60000 ms' },
    ]);
    expect(run.inputs('finishAttempt')[0]).toEqual({
      taskId,
      attemptNo: 1,
      outcome: 'timeout',
      error: 'no accept within 60000 ms',
    });
    expect(run.inputs('selectNode')[1]).toMatchObject({ exclude: ['n1'], attemptNo: 2 });
    expect(run.inputs('deliverAssignment').map((i) => i.hostId)).toEqual(['h1', 'h2']);
    expect((await handle.query(stateQuery)).attempts.map((a) => a.outcome)).toEqual(['timeout', 'completed']);
  });

  it('result deadline passes but the result was stored meanwhile: the late result counts', async () => {
    const { taskId, run, handle } = await start({
      nodes: [N1, N2],
      onAssign: nodes({ n1: 'accept-only' }),
      finishAttempt: (i) =>
        i.outcome === 'timeout' ? { closed: false, resultHash: 'late-hash' } : { closed: true },
    });
    const outcome = await handle.result();

    expect(outcome).toEqual({ status: 'completed', attemptNo: 1, nodeId: 'n1' });
    // Sent without waiting for it (the host may be gone), so it may land after the workflow closed.
    await run.waitFor('deliverCancel');
    expect(run.inputs('deliverCancel')).toEqual([
      { taskId, attemptNo: 1, nodeId: 'n1', hostId: 'h1', reason: 'no result within 300000 ms of accepting' },
    ]);
    expect(run.inputs('finishAttempt').map((i) => i.outcome)).toEqual(['timeout', 'completed']);
    expect(run.inputs('verifyResult')).toEqual([{ taskId, attemptNo: 1 }]);
    expect(run.inputs('completeTask')).toHaveLength(1);
    expect(run.inputs('selectNode')).toHaveLength(1); // no second node was needed
    expect(run.inputs('recordTaskStatus').map((i) => i.status)).toEqual(['assigned', 'running', 'verifying']);
  });

  it.each([
    ['reject', 'rejected', 'busy'],
    ['error', 'error', 'out of memory'],
  ] as const)(
    'a node that answers %s: attempt closed as %s, next node completes',
    async (behaviour, outcome, reason) => {
      const { taskId, run, handle } = await start({ nodes: [N1, N2], onAssign: nodes({ n1: behaviour }) });

      expect(await handle.result()).toEqual({ status: 'completed', attemptNo: 2, nodeId: 'n2' });
      expect(run.inputs('finishAttempt')[0]).toEqual({ taskId, attemptNo: 1, outcome, error: reason });
      expect(run.inputs('deliverCancel')).toEqual([]);
      expect(run.inputs('verifyResult')).toEqual([{ taskId, attemptNo: 2 }]);
    },
  );

  it('lost dispatch (host says NodeNotConnected) does not use up an attempt', async () => {
    const { taskId, run, handle } = await start(
      { nodes: [N1, N2], onAssign: nodes({ n1: 'gone' }) },
      {
        limits: { maxAttempts: 1, acceptTimeoutMs: 60_000, resultTimeoutMs: 300_000, noNodeRetryMs: 20_000 },
      },
    );

    expect(await handle.result()).toEqual({ status: 'completed', attemptNo: 2, nodeId: 'n2' });
    const lost = run.inputs('finishAttempt')[0];
    expect(lost).toMatchObject({ taskId, attemptNo: 1, outcome: 'lost' });
    expect(lost?.error).toMatch(/^dispatch failed: node n1 is not connected/);
    expect(run.inputs('deliverAssignment')).toHaveLength(2); // non-retryable: one try on the lost host
    expect(run.inputs('deliverCancel')).toEqual([]);
  });

  it('invalid result: attempt closed as invalid, nothing settled for it, next node completes', async () => {
    const { taskId, run, handle } = await start({
      nodes: [N1, N3],
      onAssign: nodes({}),
      verifyResult: (i) =>
        i.attemptNo === 1 ? { ok: false, reason: 'output is not text' } : { ok: true, verdict: VERDICT },
    });

    expect(await handle.result()).toEqual({ status: 'completed', attemptNo: 2, nodeId: 'n3' });
    expect(run.inputs('finishAttempt')).toEqual([
      { taskId, attemptNo: 1, outcome: 'invalid', error: 'output is not text' },
      { taskId, attemptNo: 2, outcome: 'completed' },
    ]);
    expect(run.inputs('settleTask')).toEqual([{ taskId, attemptNo: 2, quality: 1 }]);
    expect(run.inputs('completeTask').map((i) => i.attemptNo)).toEqual([2]);
  });

  it('every attempt fails: hold released, task failed, TaskFailed names each attempt', async () => {
    const { taskId, run, handle } = await start(
      { nodes: [N1, N2, N3], onAssign: nodes({ n1: 'reject', n2: 'error' }) },
      {
        limits: { maxAttempts: 2, acceptTimeoutMs: 60_000, resultTimeoutMs: 300_000, noNodeRetryMs: 20_000 },
      },
    );
    const cause = await failureOf(handle.result());

    expectTaskFailed(cause, /^all 2 attempts failed: #1 rejected \(busy\), #2 error \(out of memory\)$/);
    expect(run.inputs('deliverAssignment').map((i) => i.nodeId)).toEqual(['n1', 'n2']);
    expect(run.inputs('releaseTask')).toEqual([{ taskId }]);
    expect(run.inputs('finishTask')).toEqual([
      { taskId, status: 'failed', reason: (cause as ApplicationFailure).message },
    ]);
    expect(run.names().slice(-2)).toEqual(['releaseTask', 'finishTask']);
    expect(run.names()).not.toContain('settleTask');
  });

  it('no node before the queue deadline: retried every noNodeRetryMs, then TaskFailed with release', async () => {
    const { taskId, run, handle } = await start({ nodes: [] });
    const cause = await failureOf(handle.result());

    expectTaskFailed(cause, /^no node serving the model was available before the queue deadline$/);
    // 10 min of queue at one try per 20 s: the first try, 30 retries, and the one at the deadline.
    expect(run.inputs('selectNode').length).toBeGreaterThanOrEqual(30);
    expect(run.inputs('selectNode').length).toBeLessThanOrEqual(32);
    expect(run.names().filter((n) => n !== 'selectNode')).toEqual(['releaseTask', 'finishTask']);
    expect(run.inputs('finishTask')[0]).toMatchObject({ taskId, status: 'failed' });
  });

  it('cancel while waiting for a node: release and finish as cancelled, no node is told', async () => {
    const { taskId, run, handle } = await start({ nodes: [] });
    await run.waitFor('selectNode');
    await idle(handle); // asleep until the next selection
    await handle.cancel();
    const cause = await failureOf(handle.result());

    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(run.names().filter((n) => n !== 'selectNode')).toEqual(['releaseTask', 'finishTask']);
    expect(run.inputs('finishTask')).toEqual([
      { taskId, status: 'cancelled', reason: 'cancelled by client' },
    ]);
    expect((await handle.query(stateQuery)).status).toBe('cancelled');
  });

  it('cancel while the node is running: node told, attempt cancelled, hold released, task cancelled', async () => {
    const { taskId, run, handle } = await start({ nodes: [N1], onAssign: nodes({ n1: 'accept-only' }) });
    await run.waitFor('recordTaskStatus', { status: 'running' });
    await idle(handle); // waiting for the result
    await handle.cancel();
    const cause = await failureOf(handle.result());

    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(run.inputs('deliverCancel')).toEqual([
      { taskId, attemptNo: 1, nodeId: 'n1', hostId: 'h1', reason: 'cancelled by client' },
    ]);
    expect(run.inputs('finishAttempt')).toEqual([
      { taskId, attemptNo: 1, outcome: 'cancelled', error: 'cancelled by client' },
    ]);
    expect(run.names().slice(-3)).toEqual(['finishAttempt', 'releaseTask', 'finishTask']);
    expect(run.inputs('finishTask')).toEqual([
      { taskId, status: 'cancelled', reason: 'cancelled by client' },
    ]);
    expect(run.names()).not.toContain('verifyResult');
  });

  it('cancel after the result arrived: verified, settled and completed all the same', async () => {
    let cancelled!: () => void;
    const cancelSent = new Promise<void>((resolve) => {
      cancelled = resolve;
    });
    const { taskId, run, handle } = await start({
      nodes: [N1],
      onAssign: nodes({}),
      // Verification is in flight when the cancel arrives.
      verifyResult: async () => {
        await cancelSent;
        return { ok: true, verdict: VERDICT };
      },
    });
    await run.waitFor('verifyResult');
    await handle.cancel();
    cancelled();

    expect(await handle.result()).toEqual({ status: 'completed', attemptNo: 1, nodeId: 'n1' });
    expect(run.names().slice(-4)).toEqual(['verifyResult', 'finishAttempt', 'settleTask', 'completeTask']);
    expect(run.inputs('finishAttempt')).toEqual([{ taskId, attemptNo: 1, outcome: 'completed' }]);
    expect(run.names()).not.toContain('releaseTask');
    expect(run.names()).not.toContain('finishTask');
    expect(run.names()).not.toContain('deliverCancel');
  });

  it('abandon input (from the reaper): release and TaskFailed, no node selected', async () => {
    const { taskId, run, handle } = await start(
      { nodes: [N1] },
      { abandon: { reason: 'the api process died before starting the task' } },
    );
    const cause = await failureOf(handle.result());

    expectTaskFailed(cause, /^the api process died before starting the task$/);
    expect(run.names()).toEqual(['releaseTask', 'finishTask']);
    expect(run.inputs('finishTask')).toEqual([
      { taskId, status: 'failed', reason: 'the api process died before starting the task' },
    ]);
  });
});
