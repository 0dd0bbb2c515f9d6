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

/** Nodes as the API shows them, with `online` (a socket holds them) and their latest heartbeat. */
export async function nodeViews(store: Store, rows: NodeRow[]) {
  const ids = rows.map((n) => n.id);
  const [online, heartbeats] = await Promise.all([
    store.presence.online(ids),
    store.heartbeats.getMany<HeartbeatRecord>(ids),
  ]);
  return rows.map((n) => {
    const { sampledAt: _internal, ...heartbeat } = heartbeats.get(n.id) ?? {};
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
      lastSeenAt: n.lastSeenAt,
      createdAt: n.createdAt,
    };
  });
}
