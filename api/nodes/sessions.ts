import type WebSocket from 'ws';
import type { CoordinatorFrame } from '../../protocol/frames.js';

/** A node connected to this api process. */
export interface NodeSession {
  nodeId: string;
  nodeOwnerId: string;
  socket: WebSocket;
  /** Set once the hello is accepted; frames other than hello are refused before. */
  hello?: { models: Array<{ name: string; version: string }>; capacity: number };
  /** Attempts delivered over this socket: the fast path of "may this node report on it?". */
  assigned: Set<string>;
  send(frame: CoordinatorFrame): boolean;
}

/** The sockets this process holds, by node id; what the host-queue activities deliver through. */
export class NodeSessions {
  readonly #byNode = new Map<string, NodeSession>();

  get(nodeId: string): NodeSession | undefined {
    return this.#byNode.get(nodeId);
  }

  /** Register a session, returning the one it replaces (the same node connecting again). */
  set(session: NodeSession): NodeSession | undefined {
    const previous = this.#byNode.get(session.nodeId);
    this.#byNode.set(session.nodeId, session);
    return previous;
  }

  /** Remove the session only if it is still the registered one (a replacement may have taken over). */
  delete(session: NodeSession): boolean {
    if (this.#byNode.get(session.nodeId) !== session) return false;
    return this.#byNode.delete(session.nodeId);
  }

  get size(): number {
    return this.#byNode.size;
  }

  all(): IterableIterator<NodeSession> {
    return this.#byNode.values();
  }
}
