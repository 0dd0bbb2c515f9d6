/** The documented REST API, as the demo calls it. */
import { DemoError, sleep } from './demo-support.js';

interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses that count as success; default 200, 201, 202. */
  ok?: number[];
  /** Safe to repeat after a 503 (a 429 is always retried: it was refused before any work was done). */
  idempotent?: boolean;
}

/**
 * The documented REST API at `apiBase`: `call(what, key, 'POST /api/tasks', { body })`. Anything but an
 * `ok` status is a DemoError naming `what`, the status and the API's error code and message.
 */
export function restClient(apiBase: string) {
  return async function call<T = unknown>(
    what: string,
    key: string,
    route: string,
    { body, headers = {}, ok = [200, 201, 202], idempotent = route.startsWith('GET ') }: CallOptions = {},
  ): Promise<T> {
    const [method, url] = route.split(' ') as [string, string];
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${apiBase}${url}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }).catch((err: Error) => {
        const cause = (err.cause as Error | undefined)?.message ?? err.message;
        throw new DemoError(`${what}: ${apiBase} did not answer (${cause})`);
      });
      const json = parseJson(await res.text());
      if (ok.includes(res.status)) return json as T;
      if ((res.status === 429 || (res.status === 503 && idempotent)) && attempt < 10) {
        await sleep(Math.min(60, Number(res.headers.get('retry-after')) || 1) * 1000);
        continue;
      }
      const error = (json as { error?: { code: string; message: string } } | undefined)?.error;
      throw new DemoError(`${what}: HTTP ${res.status}${error ? ` ${error.code}: ${error.message}` : ''}`);
    }
  };
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}
export type Call = ReturnType<typeof restClient>;
