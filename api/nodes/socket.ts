import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { taskEventsChannel } from '../../activities/tasks.js';
import { recordHeartbeat } from '../../lib/nodes/heartbeat.js';
import type { Services } from '../../lib/services.js';
import {
  CLOSE_KEY_REVOKED,
  CLOSE_NO_HELLO,
  CLOSE_REPLACED,
  CLOSE_UNAUTHORIZED,
  type CoordinatorErrorCode,
  type CoordinatorFrame,
  type FrameRef,
  frameRef,
  type HelloFrame,
  MAX_FRAME_BYTES,
  NODE_SOCKET_PATH,
  type NodeFrame,
  nodeFrame,
  PROTOCOL_VERSION,
  parseAttemptId,
} from '../../protocol/frames.js';
import { isKeyRevoked, verifyApiKey } from '../auth/index.js';
import { KEY_REVOKED_CHANNEL } from '../auth/keys.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { describeZodError } from '../middleware/error-handler.js';
import { createReports } from './reports.js';
import { FrameLanes, type NodeSession, NodeSessions } from './sessions.js';

export type SocketDeps = Pick<Services, 'config' | 'log' | 'prisma' | 'store' | 'temporal'> & {
  hostId: string;
  metrics: NodeMetrics;
};

export interface NodeSocketServer {
  sessions: NodeSessions;
  close(): Promise<void>;
}

/** Reports on different attempts of one node handled at the same time (the rest wait their turn). */
const MAX_PARALLEL_REPORTS = 4;
/** A node with this many frames waiting is no longer read from until half of them are done. */
const MAX_QUEUED_FRAMES = 1_000;
/** How often an open socket's key is looked up again, in case a revocation broadcast was missed. */
const KEY_RECHECK_MS = 60_000;
/** Longest error-frame message: a validation message may quote the node's own (long) keys. */
const MAX_ERROR_MESSAGE = 500;

/** Which frame an error answers (error frames always say). */
export type FrameAbout = { ref: FrameRef; attemptId?: string };

/**
 * The node WebSocket endpoint on the API's HTTP server: authenticates the node key at connect, validates
 * every frame, keeps presence (node → this host) and heartbeats in the store, and relays a node's
 * answers on its attempts to the task workflows as signals. Closes a socket whose key is revoked.
 */
export function attachNodeSockets(server: Server, deps: SocketDeps): NodeSocketServer {
  const { config, log, prisma, store, hostId, metrics } = deps;
  const sessions = new NodeSessions();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const reports = createReports(deps, { sendError, ownsAttempt });

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
  const revocations = subscribeToRevocations();

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
      keyId: principal.keyId,
      socket: ws,
      assigned: new Set(),
      lanes: new FrameLanes(MAX_PARALLEL_REPORTS),
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
    // Revocations are broadcast at once; this catches one this process missed (e.g. Redis was down).
    const keyCheck = setInterval(() => {
      isKeyRevoked(deps, session.keyId)
        .then((revoked) => revoked && ws.close(CLOSE_KEY_REVOKED, 'key revoked'))
        .catch((err) => nodeLog.warn({ err }, 'could not check the node key'));
    }, KEY_RECHECK_MS);

    const onMessage = (data: RawData, isBinary: boolean) => {
      lastFrameAt = Date.now();
      receive(session, data, isBinary);
      // Backpressure: a node sending faster than its frames are handled waits, instead of queueing without end.
      if (session.lanes.pending >= MAX_QUEUED_FRAMES && !ws.isPaused) {
        nodeLog.warn({ queued: session.lanes.pending }, 'node floods frames; reading paused');
        ws.pause();
      }
    };
    ws.off('message', buffer);
    ws.on('message', onMessage);
    for (const [data, isBinary] of early) onMessage(data, isBinary);

    ws.on('close', () => {
      clearTimeout(helloTimer);
      clearInterval(liveness);
      clearInterval(keyCheck);
      if (!sessions.delete(session)) return; // replaced: the new session owns presence now
      metrics.connected.set(sessions.size);
      nodeLog.info('node disconnected');
      goOffline(session.nodeId).catch((err) => nodeLog.warn({ err }, 'could not mark the node offline'));
    });
  }

  /** Validate a frame as it arrives, then queue it on its lane (see FrameLanes). */
  function receive(session: NodeSession, data: RawData, isBinary: boolean) {
    const parsed = parse(data, isBinary);
    if ('problem' in parsed) {
      metrics.frames.inc({ type: parsed.about.ref, result: 'invalid' });
      return sendError(session, parsed.problem.code, parsed.problem.message, parsed.about);
    }
    const { frame, about } = parsed;
    // Until a hello is accepted every frame waits behind it; then heartbeats and hellos, progress, and
    // each attempt's reports have lanes of their own.
    const lane =
      !session.hello || frame.type === 'hello' || frame.type === 'heartbeat'
        ? 'control'
        : frame.type === 'progress'
          ? 'progress'
          : `attempt:${frame.attemptId}`;
    void session.lanes
      .run(lane, () => handle(session, frame, about), lane.startsWith('attempt:'))
      .then(() => {
        if (session.socket.isPaused && session.lanes.pending <= MAX_QUEUED_FRAMES / 2)
          session.socket.resume();
      });
  }

  async function handle(session: NodeSession, frame: NodeFrame, about: FrameAbout) {
    const ok = () => metrics.frames.inc({ type: frame.type, result: 'ok' });
    try {
      if (!session.hello && frame.type !== 'hello') {
        metrics.frames.inc({ type: frame.type, result: 'refused' });
        return sendError(session, 'hello_required', 'send hello first', about);
      }
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
          if (!(await ownsAttempt(session, frame))) return;
          const { taskId } = parseAttemptId(frame.attemptId);
          const { progress, message } = frame;
          await store.pubsub.publish(
            taskEventsChannel(taskId),
            JSON.stringify({ taskId, progress, message }),
          );
          ok();
          return;
        }
        default:
          if (await reports.handle(session, frame)) ok();
      }
    } catch (err) {
      // The frame may or may not have taken effect; every step is idempotent, so the node re-sends it.
      log.error({ err, nodeId: session.nodeId, type: frame.type }, 'frame handling failed');
      metrics.frames.inc({ type: frame.type, result: 'failed' });
      sendError(session, 'internal', 'the coordinator could not process the frame; send it again', about);
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
        { ref: 'hello' },
      );
      if (models.length === 0) return false;
    }
    const accepted = { models, capacity: Math.min(frame.capacity, node.capacity) };
    // Stored facts first, what makes the node dispatchable (presence, then session.hello) last, so a
    // failure part-way leaves a first hello with the node offline rather than half online.
    try {
      await prisma.node.update({
        where: { id: session.nodeId },
        data: { status: 'online', ...(frame.hardware ? { hardware: frame.hardware as object } : {}) },
      });
      // Store only (last seen is flushed to PostgreSQL later); no metric sample until a real heartbeat.
      await recordHeartbeat(
        deps,
        session.nodeId,
        { load: 0, inflight: 0 },
        { ...accepted, hostId },
        { sample: false },
      );
      await store.presence.set(session.nodeId, hostId, config.NODE_PRESENCE_TTL_MS);
    } catch (err) {
      if (!session.hello) await goOffline(session.nodeId).catch(() => undefined);
      throw err;
    }
    if (session.socket.readyState !== session.socket.OPEN) {
      // Closed meanwhile: its close handler may have run before presence was set.
      if (!sessions.get(session.nodeId)) await goOffline(session.nodeId);
      return false;
    }
    session.hello = accepted;
    session.send({
      v: PROTOCOL_VERSION,
      type: 'ack',
      of: 'hello',
      nodeId: session.nodeId,
      heartbeatIntervalMs: config.NODE_HEARTBEAT_INTERVAL_MS,
    });
    return true;
  }

  /** Drop this host's presence for the node; `offline` unless another api process holds it now. */
  async function goOffline(nodeId: string) {
    await store.presence.remove(nodeId, hostId);
    if ((await store.presence.get(nodeId)) !== null) return;
    await prisma.node.updateMany({ where: { id: nodeId, status: 'online' }, data: { status: 'offline' } });
  }

  /** A node may only speak for attempts assigned to it. */
  async function ownsAttempt(session: NodeSession, frame: { type: FrameRef; attemptId: string }) {
    if (session.assigned.has(frame.attemptId)) return true;
    const { taskId, attemptNo } = parseAttemptId(frame.attemptId);
    const attempt = await prisma.taskAttempt.findUnique({
      where: { taskId_attemptNo: { taskId, attemptNo } },
      select: { nodeId: true },
    });
    if (attempt?.nodeId === session.nodeId) return true;
    metrics.ignoredReports.inc({ reason: 'foreign' });
    metrics.frames.inc({ type: frame.type, result: 'refused' });
    sendError(session, 'not_your_attempt', `attempt ${frame.attemptId} is not assigned to this node`, {
      ref: frame.type,
      attemptId: frame.attemptId,
    });
    return false;
  }

  function sendError(session: NodeSession, code: CoordinatorErrorCode, message: string, about: FrameAbout) {
    session.send({
      v: PROTOCOL_VERSION,
      type: 'error',
      code,
      message: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE - 1)}…` : message,
      ref: about.ref,
      ...(about.attemptId ? { attemptId: about.attemptId } : {}),
    });
  }

  /** Every api process listens; the admin route publishes. Retried until subscribed (the store may be down). */
  function subscribeToRevocations() {
    let stopped = false;
    let retry: NodeJS.Timeout | undefined;
    let unsubscribe: (() => Promise<void>) | undefined;
    const onRevoked = (keyId: string) => {
      for (const session of sessions.withKey(keyId)) session.socket.close(CLOSE_KEY_REVOKED, 'key revoked');
    };
    const subscribe = () => {
      store.pubsub.subscribe(KEY_REVOKED_CHANNEL, onRevoked).then(
        (off) => {
          if (stopped) void off();
          else unsubscribe = off;
        },
        (err) => {
          if (stopped) return;
          log.warn({ err }, 'could not subscribe to key revocations; retrying');
          retry = setTimeout(subscribe, 1_000);
        },
      );
    };
    subscribe();
    return async () => {
      stopped = true;
      clearTimeout(retry);
      await unsubscribe?.();
    };
  }

  return {
    sessions,
    async close() {
      server.off('upgrade', onUpgrade);
      await revocations();
      for (const session of sessions.all()) session.socket.close(1001, 'coordinator shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

type Parsed =
  | { frame: NodeFrame; about: FrameAbout }
  | { problem: { code: 'malformed_frame' | 'unsupported_version'; message: string }; about: FrameAbout };

/**
 * JSON text → a valid frame, or what to answer. Either way `about` names the frame for error answers,
 * read from what arrived (not from the parsed frame, which drops the fields its type does not define).
 */
function parse(data: RawData, isBinary: boolean): Parsed {
  const notJson = { code: 'malformed_frame', message: 'frames must be JSON text' } as const;
  if (isBinary) return { problem: notJson, about: { ref: 'unknown' } };
  let json: unknown;
  try {
    json = JSON.parse(data.toString());
  } catch {
    return { problem: notJson, about: { ref: 'unknown' } };
  }
  const about = frameRef(json);
  if ((json as { v?: unknown } | null)?.v !== PROTOCOL_VERSION) {
    const message = `protocol version must be ${PROTOCOL_VERSION}`;
    return { problem: { code: 'unsupported_version', message }, about };
  }
  const parsed = nodeFrame.safeParse(json);
  if (!parsed.success) {
    return { problem: { code: 'malformed_frame', message: describeZodError(parsed.error) }, about };
  }
  return { frame: parsed.data, about };
}
