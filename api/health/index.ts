import { Hono } from 'hono';
import { type DependencyCheck, isDependency, runChecks } from './checks.js';

/**
 * `GET /api/health`: 200 when Temporal, the database and Redis all answer and every readiness step of
 * the api process is done; otherwise 503. A dependency that is down makes it `unavailable` (naming each
 * one in `down`); with every dependency up, a step not done yet makes it `not_ready` (naming each one in
 * `notReady`, with its reason in the message). Every check reports its latency.
 */
export function healthRoutes(checks: readonly DependencyCheck[]) {
  return new Hono().get('/health', async (c) => {
    const results = await runChecks(checks);
    const failed = Object.entries(results).filter(([, r]) => !r.ok);
    const down = failed.map(([name]) => name).filter(isDependency);
    const notReady = failed.filter(([name]) => !isDependency(name));
    if (failed.length === 0) return c.json({ status: 'ok', checks: results }, 200);
    const names = notReady.map(([name]) => name);
    if (down.length > 0) {
      return c.json(
        {
          status: 'unavailable',
          error: { code: 'unavailable', message: `unavailable: ${down.join(', ')} not answering` },
          down,
          ...(names.length > 0 ? { notReady: names } : {}),
          checks: results,
        },
        503,
      );
    }
    const reasons = notReady.map(([, r]) => r.error).join('; ');
    return c.json(
      {
        status: 'not_ready',
        error: { code: 'unavailable', message: `not ready: ${reasons}` },
        notReady: names,
        checks: results,
      },
      503,
    );
  });
}
