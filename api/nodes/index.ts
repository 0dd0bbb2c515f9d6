import { Hono } from 'hono';
import { recordHeartbeat } from '../../lib/nodes/heartbeat.js';
import { authenticate, requireRole } from '../auth/index.js';
import { issueApiKey } from '../auth/keys.js';
import type { Principal } from '../auth/principal.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { notFound, resourceId, validate } from '../middleware/validate.js';
import { pageArgs, pageOf } from '../pagination.js';
import {
  heartbeatBody,
  listNodesQuery,
  metricsQuery,
  type RegisterNodeBody,
  registerNodeBody,
} from './schemas.js';
import { nodeViews, visibleNodes } from './views.js';

type NodeDeps = Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store'>;

/**
 * Compute nodes over REST, mounted at `/api/nodes` (the WebSocket endpoint lives beside it). Guards
 * are per route, not `use('*')`, so they never wrap the socket path.
 * - `POST /register` (node_owner) → 201 `{ node, nodeKey, keyId }`: `keyId` names the key for
 *   `POST /api/admin/keys/:keyId/revoke`
 * - `GET /` → `{ nodes, nextCursor }`; `GET /:id` → `{ node }` (admin: all, owner: its own, node: itself)
 * - `POST /:id/heartbeat` (that node's key) → `{ ok: true, nextHeartbeatMs }`
 * - `GET /:id/metrics?since&limit` → `{ samples }`, newest first
 */
export function nodeRoutes(deps: NodeDeps) {
  const { prisma, store, config } = deps;
  const auth = authenticate(deps);
  const viewers = requireRole('admin', 'node_owner', 'node');

  /** The node if the principal may see it; someone else's is a 404 so that ids do not leak. */
  const findVisible = async (principal: Principal, id: string) => {
    const node = await prisma.node.findFirst({
      // AND, not a spread: a node's visibility filter is itself an `id` condition and would replace this one.
      where: { AND: [{ id }, visibleNodes(principal)] },
      include: { models: { select: { modelName: true, modelVersion: true } } },
    });
    if (!node) throw notFound('node');
    return node;
  };

  return new Hono()
    .post('/register', auth, requireRole('node_owner'), validate('json', registerNodeBody), async (c) => {
      const principal = c.var.principal;
      if (principal.role !== 'node_owner') throw new ApiError(403, 'forbidden', 'node owners only');
      const body = c.req.valid('json');
      const models = await catalogModels(deps, body.models);
      const { node, nodeKey, keyId } = await prisma.$transaction(async (tx) => {
        const node = await tx.node.create({
          data: {
            ownerId: principal.nodeOwnerId,
            name: body.name,
            capacity: body.capacity,
            hardware: (body.hardware ?? {}) as object,
            models: { create: models.map((m) => ({ modelName: m.name, modelVersion: m.version })) },
          },
          include: { models: { select: { modelName: true, modelVersion: true } } },
        });
        const owner = { role: 'node', nodeId: node.id, nodeOwnerId: principal.nodeOwnerId } as const;
        const { apiKey, keyId } = await issueApiKey(tx, owner, 'node');
        return { node, nodeKey: apiKey, keyId };
      });
      const [view] = await nodeViews(store, [node]);
      return c.json({ node: view, nodeKey, keyId }, 201);
    })
    .get('/', auth, viewers, validate('query', listNodesQuery), async (c) => {
      const query = c.req.valid('query');
      const rows = await prisma.node.findMany({
        where: visibleNodes(c.var.principal),
        include: { models: { select: { modelName: true, modelVersion: true } } },
        ...pageArgs(query),
      });
      const { items, nextCursor } = pageOf(rows, query);
      return c.json({ nodes: await nodeViews(store, items), nextCursor }, 200);
    })
    .get('/:id', auth, viewers, resourceId('node'), async (c) => {
      const node = await findVisible(c.var.principal, c.req.param('id'));
      const [view] = await nodeViews(store, [node]);
      return c.json({ node: view }, 200);
    })
    .post(
      '/:id/heartbeat',
      auth,
      requireRole('node'),
      resourceId('node'),
      validate('json', heartbeatBody),
      async (c) => {
        const principal = c.var.principal;
        const id = c.req.param('id');
        // A node reports only for itself; any other id is "not found", like an unknown one.
        if (principal.role !== 'node' || principal.nodeId !== id) throw notFound('node');
        await recordHeartbeat(deps, id, c.req.valid('json'));
        return c.json({ ok: true, nextHeartbeatMs: config.NODE_HEARTBEAT_INTERVAL_MS }, 200);
      },
    )
    .get('/:id/metrics', auth, viewers, resourceId('node'), validate('query', metricsQuery), async (c) => {
      const node = await findVisible(c.var.principal, c.req.param('id'));
      const { since, limit } = c.req.valid('query');
      const rows = await prisma.nodeMetricSample.findMany({
        where: { nodeId: node.id, ...(since ? { at: { gte: since } } : {}) },
        orderBy: [{ at: 'desc' }, { id: 'desc' }],
        take: limit,
      });
      const samples = rows.map((s) => ({
        at: s.at,
        load: s.load,
        inflight: s.inflight,
        gpuUtil: s.gpuUtil,
        memUsedMb: s.memUsedMb,
        metrics: s.payload,
      }));
      return c.json({ samples }, 200);
    });
}

/**
 * The distinct requested models, each of which must be in the catalog (active or not: a node may
 * serve a model before it is opened to clients). Otherwise 422 naming the unknown ones.
 */
async function catalogModels(deps: NodeDeps, requested: RegisterNodeBody['models']) {
  const unique = [...new Map(requested.map((m) => [`${m.name}\u0000${m.version}`, m])).values()];
  const found = await deps.prisma.model.findMany({
    where: { OR: unique.map((m) => ({ name: m.name, version: m.version })) },
    select: { name: true, version: true },
  });
  const known = new Set(found.map((m) => `${m.name}\u0000${m.version}`));
  const unknown = unique.filter((m) => !known.has(`${m.name}\u0000${m.version}`));
  if (unknown.length > 0) {
    const names = unknown.map((m) => `${m.name} ${m.version}`).join(', ');
    throw new ApiError(422, 'validation_failed', `unknown model(s), not in the catalog: ${names}`, {
      unknownModels: unknown.map(({ name, version }) => ({ name, version })),
    });
  }
  return unique;
}
