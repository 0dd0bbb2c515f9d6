import { EventEmitter } from 'node:events';
import { prettifyError } from 'zod';
import {
  type CoordinatorFrame,
  coordinatorFrame,
  type HelloFrame,
  helloFrame,
  isReportType,
  type NodeFrame,
  nodeFrame,
  PROTOCOL_VERSION,
} from '../protocol/frames.js';
import { Attempts } from './attempts.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import { CoordinatorConnection } from './connection.js';
import { AGENT_NAME, type AgentLogger, raceTimeout, SILENT, socketUrl, truncate } from './internal.js';
import { createMetricsSampler } from './metrics.js';
import { Outbox } from './outbox.js';
import type { CoordinatorErrorFrame, NodeAgentEvents, NodeAgentOptions, NodeAgentStats } from './types.js';

export type { AgentLogger } from './internal.js';
export type {
  CoordinatorErrorFrame,
  NodeAgentEvents,
  NodeAgentOptions,
  NodeAgentStats,
  TestBehaviour,
} from './types.js';

type AckFrame = Extract<CoordinatorFrame, { type: 'ack' }>;

const DEFAULT_HEARTBEAT_MS = 10_000;
const MAX_OUTBOX = 1_000;
/** A report neither acked nor refused within this is sent again. */
const DEFAULT_REPORT_ACK_TIMEOUT_MS = 10_000;
const v = PROTOCOL_VERSION;

/**
 * The node side of the coordinator's WebSocket protocol: hello, heartbeats, accept/reject, run on a
 * backend, report, reconnect with backoff. The one implementation behind the `neurogrid-node` CLI, the
 * demo and the tests' simulated nodes.
 *
 * Reports (accept, reject, result, error) are kept until the coordinator acks them, and sent again
 * with backoff when it answers `internal` or not at all, and after every reconnect, so work done while
 * the coordinator or its Temporal was unreachable is not lost (see Outbox). With several coordinator
 * addresses it fails over between them.
 * @example
 * const agent = new NodeAgent({
 *   coordinatorUrl: 'http://127.0.0.1:3000',
 *   apiKey: process.env.NEUROGRID_NODE_KEY!,
 *   models: [{ name: 'llama-3.1-8b', version: '1' }],
 *   capacity: 2,
 *   backend: simulatedBackend({ latencyMs: [50, 200] }),
 * });
 * agent.on('completed', ({ attemptId }) => console.log('done', attemptId));
 * await agent.start(); // resolves once the coordinator acked the hello
 * await agent.stop({ drainTimeoutMs: 5_000 });
 */
export class NodeAgent extends EventEmitter<NodeAgentEvents> {
  private readonly connection: CoordinatorConnection;
  private readonly hello: HelloFrame;
  private readonly helloTimeoutMs: number;
  private readonly log: AgentLogger;
  private readonly sampleMetrics = createMetricsSampler();
  private readonly attempts: Attempts;
  private readonly outbox: Outbox;
  private state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  /** The coordinator acked our hello on the current socket. */
  private ready = false;
  private nodeId: string | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  private startWaiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private stopped: Promise<void> | undefined;

  constructor(options: NodeAgentOptions) {
    super();
    if (!options.apiKey) throw new TypeError('NodeAgent: apiKey is required');
    // The hello schema is the contract for models/capacity/hardware: fail at construction, not at connect.
    const hello = helloFrame.safeParse({
      v,
      type: 'hello',
      models: options.models,
      capacity: options.capacity,
      hardware: options.hardware,
      agent: AGENT_NAME,
    });
    if (!hello.success) throw new TypeError(`NodeAgent: invalid options: ${prettifyError(hello.error)}`);
    this.hello = hello.data;
    this.helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
    this.log = options.log ?? SILENT;
    this.outbox = new Outbox({
      max: MAX_OUTBOX,
      log: this.log,
      send: (text) => this.ready && this.connection.send(text),
      retry: { ...DEFAULT_BACKOFF, ...options.reports },
      ackTimeoutMs: options.reports?.ackTimeoutMs ?? DEFAULT_REPORT_ACK_TIMEOUT_MS,
    });
    this.attempts = new Attempts({
      options,
      hello: this.hello,
      outbox: this.outbox,
      log: this.log,
      running: () => this.state === 'running',
      emit: this.emit.bind(this),
    });
    const urls = [options.coordinatorUrl].flat();
    if (urls.length === 0) throw new TypeError('NodeAgent: coordinatorUrl names no coordinator');
    this.connection = new CoordinatorConnection({
      urls: urls.map(socketUrl),
      apiKey: options.apiKey,
      backoff: { ...DEFAULT_BACKOFF, ...options.reconnect },
      stableAfterMs: options.reconnect?.stableAfterMs ?? 10_000,
      handshakeTimeoutMs: this.helloTimeoutMs,
      log: this.log,
    });
    this.connection.on('open', () => this.onOpen());
    this.connection.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    this.connection.on('close', (info) => this.onClose(info));
    this.connection.on('refused', (err) => this.fail(err));
  }

  get stats(): NodeAgentStats {
    return {
      ...this.attempts.counters,
      connected: this.ready,
      nodeId: this.nodeId,
      inflight: this.attempts.tasks.size,
      reconnects: this.connection.redials,
      coordinatorUrl: this.connection.url,
    };
  }

  /** Connect; resolves when the first hello is acked, rejects if the key is refused or on stop(). */
  start(): Promise<void> {
    if (this.started) return this.started;
    if (this.state !== 'idle') return Promise.reject(new Error('node agent already stopped'));
    this.state = 'running';
    this.started = new Promise<void>((resolve, reject) => {
      this.startWaiter = { resolve, reject };
    });
    this.started.catch(() => {}); // the caller's own handler decides; never an unhandled rejection here
    this.connection.dial();
    return this.started;
  }

  /**
   * Stop taking work, let in-flight tasks finish for up to `drainTimeoutMs` (default 0), abort the rest
   * (reporting them as errors), close the socket and clear every timer. Resolves when closed.
   */
  stop(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.stopped ??= this.shutdown(options.drainTimeoutMs ?? 0);
    return this.stopped;
  }

  /** TEST-ONLY: send any text as-is (malformed-frame tests). False when not connected. */
  sendRaw(text: string): boolean {
    return this.connection.send(text);
  }

  /** TEST-ONLY: send any object as a frame, unvalidated (e.g. for a foreign attemptId). */
  sendFrame(frame: unknown): boolean {
    return this.connection.send(JSON.stringify(frame));
  }

  // connection

  private onOpen(): void {
    this.send(this.hello);
    this.helloTimer = setTimeout(() => {
      this.log.warn({ timeoutMs: this.helloTimeoutMs }, 'no hello ack from the coordinator; reconnecting');
      this.connection.drop();
    }, this.helloTimeoutMs);
  }

  private onClose({ opened, code, reason }: { opened: boolean; code: number; reason: string }): void {
    this.ready = false;
    clearTimeout(this.helloTimer);
    clearInterval(this.heartbeat);
    this.outbox.suspend();
    if (opened) this.emit('disconnected', { code, reason });
  }

  /** The key was refused: retrying cannot help, and nothing can be delivered any more. */
  private fail(err: Error): void {
    this.state = 'stopped';
    this.outbox.suspend();
    for (const entry of this.attempts.tasks.values()) {
      entry.cancelled = true;
      entry.controller.abort(err);
    }
    this.log.error({ err: err.message }, 'fatal');
    this.startWaiter?.reject(err);
    this.startWaiter = undefined;
    this.emit('fatal', err);
  }

  private async shutdown(drainTimeoutMs: number): Promise<void> {
    if (this.state === 'idle' || this.state === 'stopped') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    this.startWaiter?.reject(new Error('node agent stopped before the coordinator acked its hello'));
    this.startWaiter = undefined;
    const running = () => Promise.allSettled([...this.attempts.tasks.values()].map((t) => t.done));
    if (drainTimeoutMs > 0 && this.attempts.tasks.size > 0) {
      this.log.info(
        { inflight: this.attempts.tasks.size, drainTimeoutMs },
        'stopping: waiting for in-flight tasks',
      );
      await raceTimeout(running(), drainTimeoutMs);
    }
    for (const entry of this.attempts.tasks.values()) {
      entry.shutdown = true;
      entry.controller.abort(new Error('node shutting down'));
    }
    await raceTimeout(running(), 1_000); // their error frames are sent as they settle
    await this.connection.close();
    this.outbox.suspend();
    this.state = 'stopped';
    this.log.info('stopped');
  }

  // frames from the coordinator

  private onMessage(data: Buffer, isBinary: boolean): void {
    const parsed = isBinary ? { problem: 'binary frame' } : parseCoordinatorFrame(data.toString('utf8'));
    if (parsed.frame) {
      this.dispatch(parsed.frame);
      return;
    }
    const { problem } = parsed;
    this.log.warn({ problem }, 'ignoring an invalid frame from the coordinator');
    this.emit('invalid-frame', { problem });
  }

  private dispatch(frame: CoordinatorFrame): void {
    switch (frame.type) {
      case 'ack':
        this.onAck(frame);
        break;
      case 'assign':
        this.attempts.onAssign(frame);
        break;
      case 'cancel':
        this.attempts.onCancel(frame);
        break;
      case 'error':
        this.onCoordinatorError(frame);
        break;
    }
  }

  private onAck(frame: AckFrame): void {
    if (frame.of === 'hello') this.onHelloAck(frame);
    else if (frame.attemptId) this.outbox.settle(frame.attemptId, frame.of);
  }

  private onHelloAck(frame: AckFrame): void {
    if (this.ready) return;
    clearTimeout(this.helloTimer);
    this.ready = true;
    this.nodeId = frame.nodeId;
    const heartbeatIntervalMs = frame.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
    this.heartbeat = setInterval(() => this.sendHeartbeat(), heartbeatIntervalMs);
    this.connection.established(heartbeatIntervalMs);
    this.sendHeartbeat(); // the coordinator learns our load at once, e.g. tasks that ran through a reconnect
    this.outbox.flush();
    this.log.info({ nodeId: this.nodeId, heartbeatIntervalMs, url: this.connection.url }, 'connected');
    this.emit('connected', { nodeId: this.nodeId, heartbeatIntervalMs });
    this.startWaiter?.resolve();
    this.startWaiter = undefined;
  }

  private sendHeartbeat(): void {
    const inflight = this.attempts.tasks.size;
    const load = Math.min(1, inflight / this.hello.capacity);
    this.send({ v, type: 'heartbeat', load, inflight, metrics: this.sampleMetrics() });
  }

  /** Every error frame names the frame it answers (`ref`, and `attemptId` when that frame had one). */
  private onCoordinatorError(frame: CoordinatorErrorFrame): void {
    const { code, message, ref, attemptId } = frame;
    this.log.warn({ code, message, ref, attemptId }, 'the coordinator reported an error');
    this.emit('coordinator-error', frame);
    if (ref === 'hello' && code === 'internal' && !this.ready) {
      this.connection.drop(); // say hello again on a new connection, after a backoff
      return;
    }
    if (!attemptId || !isReportType(ref)) return;
    switch (code) {
      case 'internal':
        this.outbox.retryLater(attemptId, ref);
        break;
      case 'attempt_closed':
      case 'not_your_attempt':
      case 'malformed_frame':
        this.outbox.settle(attemptId, ref); // the same frame again would get the same answer
        // The attempt is over for the coordinator: stop spending the GPU on it. Not for a refused
        // accept: it may be a copy of one already taken (its ack lost); a closed attempt gets a cancel.
        if (code !== 'malformed_frame' && !(code === 'attempt_closed' && ref === 'accept')) {
          this.attempts.abortTask(attemptId, code);
        }
    }
  }

  // frames to the coordinator

  /** Validate, then send: a frame that breaks the contract is a bug here, not something to send. */
  private send(frame: NodeFrame): boolean {
    const checked = nodeFrame.safeParse(frame);
    if (!checked.success) {
      this.log.error(
        { type: frame.type, problem: prettifyError(checked.error) },
        'bug: invalid outgoing frame',
      );
      return false;
    }
    return this.connection.send(JSON.stringify(checked.data));
  }
}

function parseCoordinatorFrame(text: string): { frame?: CoordinatorFrame; problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  const parsed = coordinatorFrame.safeParse(json);
  return parsed.success
    ? { frame: parsed.data, problem: '' }
    : { problem: truncate(prettifyError(parsed.error), 500) };
}
