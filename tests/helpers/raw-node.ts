import { once } from 'node:events';
import WebSocket from 'ws';
import { type CoordinatorFrame, NODE_SOCKET_PATH } from '../../protocol/frames.js';
import { EMBEDDING_MODEL, MODEL } from './coordinator.js';

export type ErrorFrame = Extract<CoordinatorFrame, { type: 'error' }>;

/**
 * A node speaking docs/protocol.md over a plain `ws` socket: the outside view, with no agent logic in
 * between. Frames from the coordinator are kept in arrival order until a test takes them.
 * @example const n = await connectRawNode(url, key); await n.hello(); n.send({ v: 1, type: 'heartbeat', load: 0, inflight: 0 });
 */
export async function connectRawNode(baseUrl: string, key: string) {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${NODE_SOCKET_PATH}`, {
    headers: { authorization: `Bearer ${key}` },
  });
  const received: CoordinatorFrame[] = [];
  const unread: CoordinatorFrame[] = [];
  const waiters = new Set<() => void>();
  let heartbeats: NodeJS.Timeout | undefined;
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as CoordinatorFrame;
    received.push(frame);
    // The acks of keepAlive()'s heartbeats are nobody's business.
    if (heartbeats && frame.type === 'ack' && frame.of === 'heartbeat') return;
    unread.push(frame);
    for (const wake of [...waiters]) wake();
  });
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason), at: Date.now() })),
  );
  await Promise.race([once(ws, 'open'), closed]);
  ws.once('close', () => clearInterval(heartbeats));

  const node = {
    ws,
    /** Every frame received, in order. */
    received,
    closed,
    send(frame: unknown) {
      ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    /** The oldest frame not yet taken that matches, waiting up to `timeoutMs` for one to arrive. */
    take(match: (f: CoordinatorFrame) => boolean = () => true, timeoutMs = 5_000): Promise<CoordinatorFrame> {
      return new Promise((resolve, reject) => {
        const look = () => {
          const i = unread.findIndex(match);
          if (i < 0) return false;
          const [frame] = unread.splice(i, 1);
          waiters.delete(look);
          clearTimeout(timer);
          resolve(frame as CoordinatorFrame);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(look);
          reject(new Error(`no matching frame within ${timeoutMs} ms; unread: ${JSON.stringify(unread)}`));
        }, timeoutMs);
        if (!look()) waiters.add(look);
      });
    },
    /** The next error frame, or the next error frame answering `ref` (and `attemptId`). */
    error(ref?: string, attemptId?: string, timeoutMs?: number): Promise<ErrorFrame> {
      return node.take(
        (f) =>
          f.type === 'error' &&
          (ref === undefined || f.ref === ref) &&
          (attemptId === undefined || f.attemptId === attemptId),
        timeoutMs,
      ) as Promise<ErrorFrame>;
    },
    /** Say hello for the test models and wait for the ack. */
    async hello(extra: Record<string, unknown> = {}) {
      node.send({ v: 1, type: 'hello', models: [MODEL, EMBEDDING_MODEL], capacity: 2, ...extra });
      return node.take((f) => f.type === 'ack' && f.of === 'hello');
    },
    /** Heartbeat every `intervalMs` until closed, so the coordinator keeps the socket (acks dropped). */
    keepAlive(intervalMs = 300) {
      heartbeats = setInterval(() => {
        if (ws.readyState === ws.OPEN) node.send({ v: 1, type: 'heartbeat', load: 0, inflight: 0 });
      }, intervalMs);
    },
    async close() {
      clearInterval(heartbeats);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
        ws.close();
        await closed;
      }
    },
  };
  return node;
}

export type RawNode = Awaited<ReturnType<typeof connectRawNode>>;
