import type { ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ZodError } from 'zod';
import { AmountOverflowError } from '../../lib/ledger/types.js';
import type { Logger } from '../../lib/logger.js';
import { ApiError, CODE_FOR_STATUS, type ErrorBody } from '../errors.js';

/** The one place that turns thrown errors into `{ error: { code, message } }` responses. */
export function errorHandler(log: Logger): ErrorHandler {
  return (err, c) => {
    let status: ContentfulStatusCode = 500;
    let body: ErrorBody;
    if (err instanceof ApiError) {
      status = err.status;
      body = { error: { code: err.code, message: err.message, details: err.details } };
    } else if (err instanceof ZodError) {
      status = 400;
      body = { error: { code: 'validation_failed', message: describeZodError(err), details: err.issues } };
    } else if (err instanceof AmountOverflowError) {
      // Amounts that fit BIGINT one by one but not together (a hold, a balance): the request is
      // well-formed but cannot be carried out, and nothing was posted.
      status = 422;
      body = { error: { code: 'validation_failed', message: err.message } };
    } else if (err instanceof HTTPException) {
      status = err.status;
      body = {
        error: { code: CODE_FOR_STATUS[status] ?? 'bad_request', message: err.message || 'Bad request' },
      };
    } else {
      // Unknown errors may carry internals (SQL, hosts): log them, answer a generic message.
      log.error({ err, requestId: c.get('requestId') }, 'unhandled error');
      body = { error: { code: 'internal', message: 'Internal server error' } };
    }
    if (status >= 500 && !(err instanceof ApiError)) status = 500;
    return c.json(body, status);
  };
}

export const notFoundHandler: NotFoundHandler = (c) =>
  c.json<ErrorBody>(
    { error: { code: 'not_found', message: `No route for ${c.req.method} ${new URL(c.req.url).pathname}` } },
    404,
  );

/** "input.model: Required; params.temperature: Expected number" — readable without the details. */
export function describeZodError(err: ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}
