import type WebSocket from 'ws';
import type { CoordinatorFrame } from '../../protocol/frames.js';

/** A node connected to this api process. */
export interface NodeSession {
  nodeId: string;
  nodeOwnerId: string;
  /** The API key the socket authenticated with: revoking it closes the socket. */
  keyId: string;
  socket: WebSocket;
  /** Set once the hello is accepted; frames other than hello are refused before. */
  hello?: { models: Array<{ name: string; version: string }>; capacity: number };
  /** Attempts delivered over this socket: the fast path of "may this node report on it?". */
  assigned: Set<string>;
  /** Where this node's frames wait for their turn. */
  lanes: FrameLanes;
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

  /** The sessions authenticated with `keyId` (one, unless a replaced socket is still closing). */
  withKey(keyId: string): NodeSession[] {
    return [...this.#byNode.values()].filter((s) => s.keyId === keyId);
  }
}

/**
 * One node's frames in flight. Each lane runs its jobs one at a time in arrival order, and lanes run
 * side by side: a report stuck in retries (one lane per attempt) never holds up the node's heartbeats
 * (their own lane), while an attempt's accept is still handled before its result. Attempt lanes share
 * `maxParallel` slots, so one node cannot take the whole database pool with reports on many attempts.
 * @example lanes.run('control', () => heartbeat(frame)); lanes.run(`attempt:${id}`, () => report(frame), true);
 */
export class FrameLanes {
  readonly #tails = new Map<string, Promise<void>>();
  readonly #waiting: Array<() => void> = [];
  #running = 0;
  #pending = 0;

  constructor(private readonly maxParallel: number) {}

  /** Jobs queued or running, over all lanes. */
  get pending(): number {
    return this.#pending;
  }

  /** Queue `job` behind the lane's earlier jobs; the promise settles as the job does. */
  run(lane: string, job: () => Promise<void>, limited = false): Promise<void> {
    this.#pending++;
    const previous = this.#tails.get(lane) ?? Promise.resolve();
    const done = previous
      .then(() => (limited ? this.#limited(job) : job()))
      .finally(() => {
        this.#pending--;
        if (this.#tails.get(lane) === tail) this.#tails.delete(lane);
      });
    // The lane goes on after a job that failed.
    const tail = done.catch(() => undefined);
    this.#tails.set(lane, tail);
    return done;
  }

  async #limited(job: () => Promise<void>): Promise<void> {
    // A finishing job hands its slot straight to the first waiter, so no newcomer can slip in between.
    if (this.#running < this.maxParallel) this.#running++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      await job();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
