/** A dependency the coordinator cannot serve without. */
export type DependencyName = 'temporal' | 'database' | 'redis';

/**
 * What the api process must have done, with its dependencies up, before it can start and deliver a task
 * (api/health/readiness.ts): hold its host lease, have the namespace and search attributes registered,
 * run its host-queue worker, and see a worker polling the main task queue.
 */
export type ReadinessName = 'host_lease' | 'namespace' | 'host_worker' | 'task_worker';

const DEPENDENCIES: readonly string[] = ['temporal', 'database', 'redis'] satisfies DependencyName[];
export const isDependency = (name: string): name is DependencyName => DEPENDENCIES.includes(name);

export interface DependencyCheck {
  name: DependencyName | ReadinessName;
  /**
   * Resolves when the dependency answers (or the step is done); rejects when it does not, with the
   * reason as the error's message. Stops work when `signal` aborts.
   */
  check(signal: AbortSignal): Promise<void>;
}

export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

export const HEALTH_CHECK_TIMEOUT_MS = 2_000;

/** Run every check at once, each bounded by a timeout, so one hung dependency can't hang the probe. */
export async function runChecks(
  checks: readonly DependencyCheck[],
  timeoutMs = HEALTH_CHECK_TIMEOUT_MS,
): Promise<Record<string, CheckResult>> {
  const results = await Promise.all(
    checks.map(async ({ name, check }) => {
      const started = performance.now();
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(controller.signal),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              reject(new Error(`no answer within ${timeoutMs} ms`));
              controller.abort(); // a retrying client must not go on probing after we answered
            }, timeoutMs);
          }),
        ]);
        return [name, { ok: true, latencyMs: elapsed(started) }] as const;
      } catch (err) {
        return [name, { ok: false, latencyMs: elapsed(started), error: redact(err) }] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return Object.fromEntries(results);
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 10) / 10;

/** Driver errors can quote connection strings; never let credentials reach the response. */
function redact(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\/\/[^@/\s]*@/g, '//[redacted]@').slice(0, 200);
}
