import type { Context, Env, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { ApiError } from '../errors.js';

type Target = 'json' | 'query';

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * Parse the JSON body or the query string with `schema` and expose the result as
 * `c.req.valid(target)`. A failed parse throws the ZodError itself, which the error handler answers
 * with 400 `validation_failed`. Bodies: an empty body counts as `{}`; a non-JSON content type is 415;
 * malformed JSON is 400 `bad_request`. Give object schemas `.strict()` so unknown fields are refused.
 * @example app.post('/models', validate('json', createModelBody), (c) => c.json(c.req.valid('json')));
 */
export function validate<T extends Target, S extends z.ZodType>(
  target: T,
  schema: S,
): MiddlewareHandler<Env, string, { in: { [K in T]: z.input<S> }; out: { [K in T]: z.output<S> } }> {
  return async (c, next) => {
    const raw = target === 'json' ? await readJson(c) : queryObject(c);
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
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'bad_request', 'request body is not valid JSON');
  }
}

/** Repeated parameters become arrays, so a strict scalar schema refuses them instead of picking one. */
function queryObject(c: Context): Record<string, string | string[]> {
  return Object.fromEntries(
    Object.entries(c.req.queries()).map(([k, v]) => [k, v.length === 1 ? (v[0] as string) : v]),
  );
}
