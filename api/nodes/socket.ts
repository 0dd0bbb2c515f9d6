import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WorkflowNotFoundError } from '@temporalio/client';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { taskEventsChannel } from '../../activities/tasks.js';
import { recordHeartbeat } from '../../lib/nodes/heartbeat.js';
import type { Services } from '../../lib/services.js';
import {
  CLOSE_NO_HELLO,
  CLOSE_REPLACED,
  CLOSE_UNAUTHORIZED,
  type CoordinatorErrorCode,
  type CoordinatorFrame,
  type HelloFrame,
  MAX_FRAME_BYTES,
  NODE_SOCKET_PATH,
  type NodeFrame,
  nodeFrame,
  PROTOCOL_VERSION,
  parseAttemptId,
} from '../../protocol/frames.js';
import { type NodeReport, nodeReportSignal } from '../../workflows/definitions.js';
import { OPEN_OUTCOMES } from '../../workflows/task-status.js';
import { verifyApiKey } from '../auth/index.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { describeZodError } from '../middleware/error-handler.js';
import { type NodeSession, NodeSessions } from './sessions.js';

type Deps = Pick<Services, 'config' | 'log' | 'prisma' | 'store' | 'temporal'> & {
  hostId: string;
  metrics: NodeMetrics;
};

export interface NodeSocketServer {
  sessions: NodeSessions;
  close(): Promise<void>;
}

/**
 * The node WebSocket endpoint on the API's HTTP server: authenticates the node key at connect, validates
 * every frame, keeps presence (node → this host) and heartbeats in the store, and relays a node's
 * answers on its attempts to the task workflows as signals.
 */
export function attachNodeSockets(server: Server, deps: Deps): NodeSocketServer {
  const { config, log, prisma, store, temporal, hostId, metrics } = deps;
  const sessions = new NodeSessions();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== NODE_SOCKET_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      connect(ws, req).catch((err) => {
        log.error({ err }, 'node connection failed');
        ws.close(1011, 'internal error');
      });
    });
  };
  server.on('upgrade', onUpgrade);

  async function connect(ws: WebSocket, req: IncomingMessage) {
    // Listen before the key check resolves: a node sends its hello as soon as the socket opens.
    const early: Array<[RawData, boolean]> = [];
    const buffer = (data: RawData, isBinary: boolean) => early.push([data, isBinary]);
    ws.on('message', buffer);
    ws.on('error', (err) => log.warn({ err }, 'node socket error'));

    const key = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    const principal = key ? await verifyApiKey(deps, key) : null;
    if (principal?.role !== 'node') {
      ws.close(
        CLOSE_UNAUTHORIZED,
        key ? 'invalid node key' : 'missing node key (Authorization: Bearer <key>)',
      );
      return;
    }
    if (ws.readyState !== ws.OPEN) return;
    const session: NodeSession = {
      nodeId: principal.nodeId,
      nodeOwnerId: principal.nodeOwnerId,
      socket: ws,
      assigned: new Set(),
      send(frame: CoordinatorFrame) {
        if (ws.readyState !== ws.OPEN) return false;
        ws.send(JSON.stringify(frame));
        return true;
      },
    };
    sessions.set(session)?.socket.close(CLOSE_REPLACED, 'replaced by a newer connection of this node');
    metrics.connected.set(sessions.size);
    const nodeLog = log.child({ nodeId: session.nodeId });
    nodeLog.info('node connected');

    let lastFrameAt = Date.now();
    const helloTimer = setTimeout(() => {
      if (!session.hello) ws.close(CLOSE_NO_HELLO, `no hello within ${config.NODE_HELLO_TIMEOUT_MS} ms`);
    }, config.NODE_HELLO_TIMEOUT_MS);
    // A half-open TCP connection never closes by itself: drop a node that went silent.
    const liveness = setInterval(() => {
      if (Date.now() - lastFrameAt > config.NODE_PRESENCE_TTL_MS) ws.terminate();
    }, config.NODE_HEARTBEAT_INTERVAL_MS);

    // Frames are handled one at a time per node, so a result never overtakes its accept.
    let queue = Promise.resolve();
    const onMessage = (data: RawData, isBinary: boolean) => {
      lastFrameAt = Date.now();
      queue = queue.then(() =>
        handleRaw(session, data, isBinary).catch((err) => {
          nodeLog.error({ err }, 'frame handling failed');
          sendError(session, 'internal', 'the coordinator could not process the frame');
        }),
      );
    };
    ws.off('message', buffer);
    ws.on('message', onMessage);
    for (const [data, isBinary] of early) onMessage(data, isBinary);

    ws.on('close', () => {
      clearTimeout(helloTimer);
      clearInterval(liveness);
      if (!sessions.delete(session)) return; // replaced: the new session owns presence now
      metrics.connected.set(sessions.size);
      nodeLog.info('node disconnected');
      void store.presence
        .remove(session.nodeId, hostId)
        .then((removed) =>
          removed
            ? prisma.node.update({ where: { id: session.nodeId }, data: { status: 'offline' } })
            : undefined,
        )
        .catch((err) => nodeLog.warn({ err }, 'could not mark the node offline'));
    });
  }

  async function handleRaw(session: NodeSession, data: RawData, isBinary: boolean) {
    let json: unknown;
    try {
      if (isBinary) throw new Error('binary frame');
      json = JSON.parse(data.toString());
    } catch {
      metrics.frames.inc({ type: 'unknown', result: 'invalid' });
      return sendError(session, 'malformed_frame', 'frames must be JSON text');
    }
    const version = (json as { v?: unknown })?.v;
    if (version !== PROTOCOL_VERSION) {
      metrics.frames.inc({ type: 'unknown', result: 'invalid' });
      return sendError(session, 'unsupported_version', `protocol version must be ${PROTOCOL_VERSION}`);
    }
    const parsed = nodeFrame.safeParse(json);
    const type = String((json as { type?: unknown }).type ?? 'unknown').slice(0, 16);
    if (!parsed.success) {
      metrics.frames.inc({ type: 'unknown', result: 'invalid' });
      return sendError(session, 'malformed_frame', describeZodError(parsed.error), type);
    }
    const frame = parsed.data;
    if (!session.hello && frame.type !== 'hello') {
      metrics.frames.inc({ type: frame.type, result: 'refused' });
      return sendError(session, 'hello_required', 'send hello first', frame.type);
    }
    await handleFrame(session, frame);
  }

  async function handleFrame(session: NodeSession, frame: NodeFrame) {
    const ok = () => metrics.frames.inc({ type: frame.type, result: 'ok' });
    switch (frame.type) {
      case 'hello':
        if (await hello(session, frame)) ok();
        return;
      case 'heartbeat':
        await store.presence.set(session.nodeId, hostId, config.NODE_PRESENCE_TTL_MS);
        await recordHeartbeat(deps, session.nodeId, frame, { hostId });
        ok();
        return void session.send({ v: PROTOCOL_VERSION, type: 'ack', of: 'heartbeat' });
      case 'progress': {
        if (!(await ownsAttempt(session, frame.attemptId, frame.type))) return;
        const { taskId } = parseAttemptId(frame.attemptId);
        const { progress, message } = frame;
        await store.pubsub.publish(taskEventsChannel(taskId), JSON.stringify({ taskId, progress, message }));
        ok();
        return;
      }
      default:
        if (await report(session, frame)) ok();
    }
  }

  async function hello(session: NodeSession, frame: HelloFrame): Promise<boolean> {
    const node = await prisma.node.findUnique({
      where: { id: session.nodeId },
      select: { capacity: true, status: true, models: { select: { modelName: true, modelVersion: true } } },
    });
    if (!node || node.status === 'disabled') {
      session.socket.close(CLOSE_UNAUTHORIZED, 'node is disabled');
      return false;
    }
    const registered = new Set(node.models.map((m) => `${m.modelName}:${m.modelVersion}`));
    const models = frame.models.filter((m) => registered.has(`${m.name}:${m.version}`));
    const unknown = frame.models.filter((m) => !registered.has(`${m.name}:${m.version}`));
    if (unknown.length > 0) {
      sendError(
        session,
        'unknown_model',
        `not registered for this node: ${unknown.map((m) => `${m.name}:${m.version}`).join(', ')}`,
        'hello',
      );
      if (models.length === 0) return false;
    }
    session.hello = { models, capacity: Math.min(frame.capacity, node.capacity) };
    await store.presence.set(session.nodeId, hostId, config.NODE_PRESENCE_TTL_MS);
    await recordHeartbeat(deps, session.nodeId, { load: 0, inflight: 0 }, { ...session.hello, hostId });
    await prisma.node.update({
      where: { id: session.nodeId },
      data: { status: 'online', ...(frame.hardware ? { hardware: frame.hardware as object } : {}) },
    });
    session.send({
      v: PROTOCOL_VERSION,
      type: 'ack',
      of: 'hello',
      nodeId: session.nodeId,
      heartbeatIntervalMs: config.NODE_HEARTBEAT_INTERVAL_MS,
    });
    return true;
  }

  /** accept / reject / result / error: record what the database must know, then signal the workflow. */
  async function report(session: NodeSession, frame: Extract<NodeFrame, { attemptId: string }>) {
    if (!(await ownsAttempt(session, frame.attemptId, frame.type))) return false;
    const { taskId, attemptNo } = parseAttemptId(frame.attemptId);
    const where = { taskId, attemptNo, nodeId: session.nodeId };
    const current = () =>
      prisma.taskAttempt.findUnique({
        where: { taskId_attemptNo: { taskId, attemptNo } },
        select: { outcome: true, outputHash: true },
      });
    let signal: NodeReport;
    if (frame.type === 'accept') {
      const { count } = await prisma.taskAttempt.updateMany({
        where: { ...where, outcome: 'pending' },
        data: { outcome: 'accepted', acceptedAt: new Date() },
      });
      // A repeated accept (e.g. after a re-sent assign) is acknowledged again, not refused.
      if (count === 0 && (await current())?.outcome !== 'accepted') return closed(session, frame);
      signal = { attemptNo, nodeId: session.nodeId, kind: 'accepted' };
    } else if (frame.type === 'result') {
      const outputJson = JSON.stringify(frame.output ?? null);
      const outputHash = createHash('sha256').update(outputJson).digest('hex');
      const { count } = await prisma.taskAttempt.updateMany({
        where: { ...where, outcome: { in: [...OPEN_OUTCOMES] }, outputHash: null },
        data: { output: JSON.parse(outputJson), outputHash, ...(frame.usage ? { usage: frame.usage } : {}) },
      });
      if (count === 0) {
        // The same result re-sent (its first signal may have failed) is signalled again: the workflow
        // takes it once. A different result for the same attempt, or one for a closed attempt, is refused.
        const stored = await current();
        const resend = stored?.outputHash === outputHash && OPEN_OUTCOMES.includes(stored.outcome);
        if (!resend) return closed(session, frame);
      }
      signal = { attemptNo, nodeId: session.nodeId, kind: 'result', outputHash };
    } else {
      const attempt = await current();
      if (!attempt || !OPEN_OUTCOMES.includes(attempt.outcome)) return closed(session, frame);
      // Rejecting after accepting is giving up on the attempt: the workflow treats it as an error.
      const kind = frame.type === 'reject' && attempt.outcome === 'pending' ? 'rejected' : 'error';
      const reason = frame.type === 'reject' ? frame.reason : frame.message;
      signal = {
        attemptNo,
        nodeId: session.nodeId,
        kind,
        reason: kind === 'error' && frame.type === 'reject' ? `rejected after accepting: ${reason}` : reason,
      };
    }
    try {
      await temporal.client.workflow.getHandle(taskId).signal(nodeReportSignal, signal);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return closed(session, frame);
      throw err;
    }
    if (frame.type === 'result' || frame.type === 'error' || frame.type === 'reject') {
      session.assigned.delete(frame.attemptId);
    }
    session.send({ v: PROTOCOL_VERSION, type: 'ack', of: frame.type, attemptId: frame.attemptId });
    return true;
  }

  /** A node may only speak for attempts assigned to it. */
  async function ownsAttempt(session: NodeSession, attemptId: string, type: string): Promise<boolean> {
    if (session.assigned.has(attemptId)) return true;
    const { taskId, attemptNo } = parseAttemptId(attemptId);
    const attempt = await prisma.taskAttempt.findUnique({
      where: { taskId_attemptNo: { taskId, attemptNo } },
      select: { nodeId: true },
    });
    if (attempt?.nodeId === session.nodeId) return true;
    metrics.ignoredReports.inc({ reason: 'foreign' });
    metrics.frames.inc({ type, result: 'refused' });
    sendError(
      session,
      'not_your_attempt',
      `attempt ${attemptId} is not assigned to this node`,
      type,
      attemptId,
    );
    return false;
  }

  function closed(session: NodeSession, frame: { type: string; attemptId: string }): false {
    metrics.ignoredReports.inc({ reason: 'late' });
    metrics.frames.inc({ type: frame.type, result: 'refused' });
    session.assigned.delete(frame.attemptId);
    sendError(
      session,
      'attempt_closed',
      `attempt ${frame.attemptId} is no longer open (timed out, answered, cancelled or reassigned)`,
      frame.type,
      frame.attemptId,
    );
    return false;
  }

  function sendError(
    session: NodeSession,
    code: CoordinatorErrorCode,
    message: string,
    ref?: string,
    attemptId?: string,
  ) {
    session.send({
      v: PROTOCOL_VERSION,
      type: 'error',
      code,
      message,
      ...(ref ? { ref } : {}),
      ...(attemptId ? { attemptId } : {}),
    });
  }

  return {
    sessions,
    async close() {
      server.off('upgrade', onUpgrade);
      for (const session of sessions.all()) session.socket.close(1001, 'coordinator shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
