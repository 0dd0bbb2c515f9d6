import { Hono } from 'hono';
import { type DependencyCheck, runChecks } from './checks.js';

/**
 * `GET /api/health`: 200 when Temporal, the database and Redis all answer; otherwise 503 naming
 * each dependency that is down. Every check reports its latency.
 */
export function healthRoutes(checks: readonly DependencyCheck[]) {
  return new Hono().get('/health', async (c) => {
    const results = await runChecks(checks);
    const down = Object.entries(results)
      .filter(([, r]) => !r.ok)
      .map(([name]) => name);
    if (down.length === 0) return c.json({ status: 'ok', checks: results }, 200);
    return c.json(
      {
        status: 'unavailable',
        error: { code: 'unavailable', message: `unavailable: ${down.join(', ')} not answering` },
        down,
        checks: results,
      },
      503,
    );
  });
}
