import { createHmac } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { FailureType } from '../../workflows/policies.js';
import type { PayoutAdapter, PayoutRequest } from './types.js';

/** One request's budget; the PAYOUT policy retries after it (well inside its start-to-close timeout). */
const REQUEST_TIMEOUT_MS = 10_000;
/** 4xx answers that mean "not now" rather than "never": retried like a 5xx. */
const RETRYABLE_CLIENT_ERRORS = new Set([408, 409, 425, 429]);
const MAX_REFERENCE_LENGTH = 200;
const MAX_REASON_LENGTH = 200;

export interface WebhookPayoutOptions {
  url: string;
  /** HMAC-SHA256 key of `X-NeuroGrid-Signature`. */
  secret: string;
  fetch?: typeof fetch;
}

/**
 * The signature a payout provider checks: `sha256=` + hex HMAC-SHA256 of the raw request body.
 * @example signPayload(secret, rawBody) === req.headers['x-neurogrid-signature']
 */
export function signPayload(secret: string, rawBody: string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/**
 * Payouts through a provider's webhook: a signed JSON POST per try, with the withdrawal's idempotency
 * key in the `Idempotency-Key` header and in the signed body. 2xx pays (the reference is the answer's
 * `reference`, else the key); 4xx refuses for good (`PayoutRejected`), except 408/409/425/429; 5xx,
 * other answers and network errors are retried.
 */
export function webhookPayoutAdapter(options: WebhookPayoutOptions): PayoutAdapter {
  if (!URL.canParse(options.url)) throw new Error('webhook payout adapter: url must be an absolute URL');
  if (options.secret.length < 32) throw new Error('webhook payout adapter: secret must be ≥ 32 characters');
  const doFetch = options.fetch ?? fetch;

  return {
    async pay(request: PayoutRequest) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      // The timestamp and key ride in the signed body too, since the signature covers only the body.
      const body = JSON.stringify({ ...request, timestamp });
      let res: Response;
      try {
        res = await doFetch(options.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-neurogrid-signature': signPayload(options.secret, body),
            'x-neurogrid-timestamp': timestamp,
            'idempotency-key': request.idempotencyKey,
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
      } catch (err) {
        throw new Error(`payout provider unreachable: ${(err as Error).message}`);
      }
      const text = await res.text().catch(() => '');
      if (res.ok) return { reference: referenceIn(text) ?? request.idempotencyKey };
      if (res.status >= 400 && res.status < 500 && !RETRYABLE_CLIENT_ERRORS.has(res.status)) {
        const why = reasonIn(text);
        throw ApplicationFailure.create({
          type: FailureType.PayoutRejected,
          message: `payout provider refused the payout (HTTP ${res.status})${why ? `: ${why}` : ''}`,
          nonRetryable: true,
        });
      }
      throw new Error(`payout provider answered HTTP ${res.status}`);
    },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function referenceIn(text: string): string | undefined {
  const ref = (parseJson(text) as { reference?: unknown } | undefined)?.reference;
  return typeof ref === 'string' && ref.length > 0 && ref.length <= MAX_REFERENCE_LENGTH ? ref : undefined;
}

/** The provider's own explanation (`error`, `error.message` or `message`), short and on one line. */
function reasonIn(text: string): string | undefined {
  const json = parseJson(text) as { error?: string | { message?: unknown }; message?: unknown } | undefined;
  const raw =
    typeof json?.error === 'string'
      ? json.error
      : typeof json?.error?.message === 'string'
        ? json.error.message
        : typeof json?.message === 'string'
          ? json.message
          : undefined;
  return raw?.replace(/\s+/g, ' ').trim().slice(0, MAX_REASON_LENGTH) || undefined;
}
