import type { Node, NodeModel, Prisma } from '../../generated/prisma/client.js';
import type { HeartbeatRecord } from '../../lib/nodes/heartbeat.js';
import type { Store } from '../../lib/redis/index.js';
import type { Principal } from '../auth/principal.js';

/** The node rows a principal may see; anything else is answered as if it did not exist. */
export function visibleNodes(p: Principal): Prisma.NodeWhereInput {
  switch (p.role) {
    case 'admin':
      return {};
    case 'node_owner':
      return { ownerId: p.nodeOwnerId };
    case 'node':
      return { id: p.nodeId };
    case 'client':
      return { id: { in: [] } };
  }
}

type NodeRow = Node & { models: Pick<NodeModel, 'modelName' | 'modelVersion'>[] };

/**
 * Nodes as the API shows them, with `online` (a socket holds them) and their latest heartbeat.
 * `lastSeenAt` is the later of the row's (written in batches, up to `NODE_FLUSH_INTERVAL_MS` behind)
 * and the stored heartbeat's time, so it is current while the heartbeat lives and the row's after.
 */
export async function nodeViews(store: Store, rows: NodeRow[]) {
  const ids = rows.map((n) => n.id);
  const [online, heartbeats] = await Promise.all([
    store.presence.online(ids),
    store.heartbeats.getMany<HeartbeatRecord>(ids),
  ]);
  return rows.map((n) => {
    const latest = heartbeats.get(n.id);
    const { sampledAt: _internal, ...heartbeat } = latest ?? {};
    return {
      id: n.id,
      ownerId: n.ownerId,
      name: n.name,
      capacity: n.capacity,
      hardware: n.hardware,
      status: n.status,
      models: n.models.map((m) => ({ name: m.modelName, version: m.modelVersion })),
      online: online.has(n.id),
      heartbeat: heartbeats.has(n.id) ? heartbeat : null,
      lastSeenAt: later(n.lastSeenAt, latest?.at),
      createdAt: n.createdAt,
    };
  });
}

/** The later of a row's time and a stored ISO time (either may be missing; an unreadable one is ignored). */
function later(row: Date | null, stored: string | undefined): Date | null {
  const t = stored === undefined ? Number.NaN : Date.parse(stored);
  return Number.isNaN(t) || (row && row.getTime() >= t) ? row : new Date(t);
}
