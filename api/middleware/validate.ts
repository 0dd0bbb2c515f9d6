import type { Context, Env, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { jsonShapeProblem, UNSAFE_TEXT_MESSAGE, unsafeTextPath } from '../../protocol/text.js';
import { ApiError } from '../errors.js';

type Target = 'json' | 'query';

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * Parse the JSON body or the query string with `schema` and expose the result as
 * `c.req.valid(target)`. A failed parse throws the ZodError itself, which the error handler answers
 * with 400 `validation_failed`. Bodies: an empty body counts as `{}`; a non-JSON content type is 415;
 * nesting deeper than MAX_JSON_DEPTH is 400 `validation_failed` and more than MAX_JSON_NODES keys and
 * items 413 `payload_too_large`, both judged on the raw text before parsing; malformed JSON is 400
 * `bad_request`. Any string (key or value) of the body or the query holding NUL or a lone surrogate is
 * 400 `validation_failed` naming its path, before the schema runs. Give object schemas `.strict()` so
 * unknown fields are refused.
 * @example app.post('/models', validate('json', createModelBody), (c) => c.json(c.req.valid('json')));
 */
export function validate<T extends Target, S extends z.ZodType>(
  target: T,
  schema: S,
): MiddlewareHandler<Env, string, { in: { [K in T]: z.input<S> }; out: { [K in T]: z.output<S> } }> {
  return async (c, next) => {
    const raw = target === 'json' ? await readJson(c) : refuseUnsafeText(queryObject(c));
    c.req.addValidatedData(target, schema.parse(raw) as object);
    await next();
  };
}

/**
 * Guard a `:name` path parameter that must be a UUID. A malformed id names no resource, so it is the
 * same 404 as an unknown one (and as someone else's: callers answer those with this message too).
 * @example app.get('/:id', resourceId('node'), handler);
 */
export function resourceId(resource: string, name = 'id'): MiddlewareHandler {
  return async (c, next) => {
    if (!isUuid(c.req.param(name))) throw notFound(resource);
    await next();
  };
}

/** The one "not found" for a resource, whether it is missing, malformed or not the caller's. */
export function notFound(resource: string): ApiError {
  return new ApiError(404, 'not_found', `${resource} not found`);
}

const uuid = z.guid();
export function isUuid(value: string | undefined): value is string {
  return uuid.safeParse(value).success;
}

async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  const mediaType = (c.req.header('content-type') ?? '').split(';')[0]?.trim() ?? '';
  if (!JSON_MEDIA_TYPE.test(mediaType)) {
    throw new ApiError(415, 'unsupported_media_type', 'request body must be application/json');
  }
  // Judged on the text: after JSON.parse a deep document would overflow every recursive walker (zod,
  // the request hash, Prisma, the pg driver), and a huge one would cost them all its size.
  const shape = jsonShapeProblem(text);
  if (shape?.kind === 'depth') {
    throw new ApiError(
      400,
      'validation_failed',
      `request body: JSON nested deeper than ${shape.limit} levels`,
    );
  }
  if (shape?.kind === 'size') {
    throw new ApiError(
      413,
      'payload_too_large',
      `request body: more than ${shape.limit} JSON keys and items`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'bad_request', 'request body is not valid JSON');
  }
  // One walk over the whole body covers the JSON-valued fields (task input and params, node hardware)
  // that no string schema sees.
  return refuseUnsafeText(body);
}

/**
 * `value` itself, or 400 `validation_failed` naming the first string (key or value) in it that holds
 * NUL or a lone surrogate: PostgreSQL text and jsonb cannot store them.
 */
function refuseUnsafeText<T>(value: T): T {
  const path = unsafeTextPath(value);
  if (path) {
    const where = path.length > 0 ? path.join('.') : 'request body';
    throw new ApiError(400, 'validation_failed', `${where}: ${UNSAFE_TEXT_MESSAGE}`);
  }
  return value;
}

/**
 * A timestamp PostgreSQL can store and compare: years 1 to 9999 in UTC. A valid ISO string such as
 * `0000-01-01T00:00:00Z` is a JavaScript date but out of PostgreSQL's range.
 */
export function isStorableTime(d: Date): boolean {
  const year = d.getUTCFullYear();
  return !Number.isNaN(d.getTime()) && year >= 1 && year <= 9999;
}

/** A query-string instant: ISO 8601 with an offset, as a Date PostgreSQL can compare. */
export const instant = z.iso
  .datetime({ offset: true })
  .transform((s) => new Date(s))
  .refine(isStorableTime, 'must be between the years 0001 and 9999 (UTC)');

/** Repeated parameters become arrays, so a strict scalar schema refuses them instead of picking one. */
function queryObject(c: Context): Record<string, string | string[]> {
  return Object.fromEntries(
    Object.entries(c.req.queries()).map(([k, v]) => [k, v.length === 1 ? (v[0] as string) : v]),
  );
}
