import type { Prisma } from '../generated/prisma/client.js';
import type { Services } from '../lib/services.js';
import { lockOpenTask, reserveAttempt } from '../lib/tasks/attempts.js';
import { OPEN_OUTCOMES } from '../workflows/task-status.js';

export interface SelectNodeInput {
  model: { name: string; version: string };
  /** Nodes already tried for this task. */
  exclude: string[];
  /** When given, the chosen node is reserved for this attempt in the same locked transaction. */
  taskId?: string;
  attemptNo?: number;
}

export interface SelectedNode {
  nodeId: string;
  /** The api process holding the node's socket: where the assignment is delivered. */
  hostId: string;
}

/** What the socket handler keeps in a node's heartbeat record about its live session. */
export interface SessionInfo {
  models?: Array<{ name: string; version: string }>;
  capacity?: number;
  load?: number;
}

type Deps = Pick<Services, 'prisma' | 'store'>;
type Db = Prisma.TransactionClient;

export function createSelectionActivities({ prisma, store }: Deps) {
  return {
    /**
     * The best node for the model: registered for it, online (has a socket), advertising it in this
     * session, under its concurrency cap, not tried before; least loaded first. Null when none is.
     */
    async selectNode(input: SelectNodeInput): Promise<SelectedNode | null> {
      const { taskId, attemptNo } = input;
      if (taskId === undefined || attemptNo === undefined) return choose(prisma, input);
      // Choosing and reserving are one step under a per-model lock, so tasks selecting at the same
      // moment see each other's reservations and spread over the nodes instead of piling onto one.
      return prisma.$transaction(async (tx) => {
        // A task that finished meanwhile (cancelled while this ran) gets no new attempt.
        if (!(await lockOpenTask(tx, taskId))) return null;
        const reserved = await tx.taskAttempt.findUnique({
          where: { taskId_attemptNo: { taskId, attemptNo } },
          select: { nodeId: true },
        });
        if (reserved) {
          // A retry after the reservation committed: the same node, wherever it is connected now.
          // If it has gone, delivery to its old queue fails and the attempt closes as lost.
          const hostId = await store.presence.get(reserved.nodeId);
          return { nodeId: reserved.nodeId, hostId: hostId ?? 'offline' };
        }
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`ng-select:${input.model.name}:${input.model.version}`}))`;
        const chosen = await choose(tx, input);
        if (chosen) await reserveAttempt(tx, { taskId, attemptNo, nodeId: chosen.nodeId });
        return chosen;
      });
    },
  };

  async function choose(db: Db, { model, exclude }: SelectNodeInput): Promise<SelectedNode | null> {
    const registered = await db.nodeModel.findMany({
      where: {
        modelName: model.name,
        modelVersion: model.version,
        nodeId: { notIn: exclude },
        node: { status: { not: 'disabled' } },
      },
      select: { nodeId: true, node: { select: { capacity: true } } },
    });
    if (registered.length === 0) return null;
    const online = await store.presence.online(registered.map((r) => r.nodeId));
    if (online.size === 0) return null;

    const onlineIds = [...online.keys()];
    const [sessions, open] = await Promise.all([
      store.heartbeats.getMany<SessionInfo>(onlineIds),
      db.taskAttempt.groupBy({
        by: ['nodeId'],
        where: { nodeId: { in: onlineIds }, outcome: { in: [...OPEN_OUTCOMES] } },
        _count: { _all: true },
      }),
    ]);
    const inflight = new Map(open.map((o) => [o.nodeId, o._count._all]));

    let best: { nodeId: string; hostId: string; score: number; load: number } | undefined;
    for (const { nodeId, node } of registered) {
      const hostId = online.get(nodeId);
      if (!hostId) continue;
      const session = sessions.get(nodeId);
      if (
        session?.models &&
        !session.models.some((m) => m.name === model.name && m.version === model.version)
      ) {
        continue;
      }
      const capacity = Math.min(node.capacity, session?.capacity ?? node.capacity);
      const busy = inflight.get(nodeId) ?? 0;
      if (busy >= capacity) continue;
      const score = busy / capacity;
      const load = session?.load ?? 0;
      if (!best || score < best.score || (score === best.score && load < best.load)) {
        best = { nodeId, hostId, score, load };
      }
    }
    return best ? { nodeId: best.nodeId, hostId: best.hostId } : null;
  }
}
