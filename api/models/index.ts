import { Hono } from 'hono';
import { Prisma } from '../../generated/prisma/client.js';
import { authenticate, requireRole } from '../auth/index.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { notFound, resourceId, validate } from '../middleware/validate.js';
import { pageArgs, pageOf } from '../pagination.js';
import { modelView } from './lookup.js';
import { createModelBody, listModelsQuery, updateModelBody } from './schemas.js';

/**
 * The model catalog, mounted at `/api/models`: every principal can read it, only admins change it.
 * - `POST /` → 201 `{ model }` (409 `conflict` when name + version exists)
 * - `GET /?active=&limit=&cursor=` → `{ models, nextCursor }`
 * - `GET /:id` → `{ model }`; `PATCH /:id` → `{ model }`
 */
export function modelRoutes(deps: Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store'>) {
  const { prisma } = deps;
  const admin = requireRole('admin');
  return new Hono()
    .use('*', authenticate(deps))
    .post('/', admin, validate('json', createModelBody), async (c) => {
      const body = c.req.valid('json');
      try {
        const model = await prisma.model.create({ data: body });
        return c.json({ model: modelView(model) }, 201);
      } catch (err) {
        if (isPrismaError(err, 'P2002')) {
          throw new ApiError(409, 'conflict', `model ${body.name} version ${body.version} already exists`);
        }
        throw err;
      }
    })
    .get('/', validate('query', listModelsQuery), async (c) => {
      const query = c.req.valid('query');
      const rows = await prisma.model.findMany({
        where: query.active === undefined ? {} : { active: query.active },
        ...pageArgs(query),
      });
      const { items, nextCursor } = pageOf(rows, query);
      return c.json({ models: items.map(modelView), nextCursor }, 200);
    })
    .get('/:id', resourceId('model'), async (c) => {
      const model = await prisma.model.findUnique({ where: { id: c.req.param('id') } });
      if (!model) throw notFound('model');
      return c.json({ model: modelView(model) }, 200);
    })
    .patch('/:id', admin, resourceId('model'), validate('json', updateModelBody), async (c) => {
      try {
        const model = await prisma.model.update({
          where: { id: c.req.param('id') },
          data: c.req.valid('json'),
        });
        return c.json({ model: modelView(model) }, 200);
      } catch (err) {
        if (isPrismaError(err, 'P2025')) throw notFound('model');
        throw err;
      }
    });
}

/** P2002: unique constraint violated; P2025: the row to update does not exist. */
function isPrismaError(err: unknown, code: 'P2002' | 'P2025'): boolean {
  return err instanceof Prisma.PrismaClientKnownRequestError && err.code === code;
}
