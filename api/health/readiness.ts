import { setTimeout as sleep } from 'node:timers/promises';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import type { Services } from '../../lib/services.js';
import { healthConnection } from '../../lib/temporal/connection.js';
import { ensureNamespace } from '../../lib/temporal/namespace.js';
import { type RunningWorker, startTemporalWorker } from '../../worker/worker.js';
import { hostTaskQueue } from '../../workflows/definitions.js';
import type { DependencyCheck } from './checks.js';

const { TaskQueueKind, TaskQueueType } = proto.temporal.api.enums.v1;

/**
 * A poller Temporal last saw longer ago than this counts as gone. An idle worker's long poll returns
 * empty after about a minute and is renewed at once; Temporal itself lists a dead worker for 5 minutes.
 */
export const POLLER_FRESH_MS = 90_000;

export interface ApiReadiness {
  /** For `/api/health`: `host_lease`, `namespace`, `host_worker`, `task_worker`, each failing with its reason. */
  checks: DependencyCheck[];
  /**
   * Register the namespace and search attributes, then start the host-queue worker with `hostActivities`,
   * retrying in the background while Temporal is unreachable. Resolves after the first try, done or not.
   */
  start(hostActivities: object): Promise<void>;
  close(): Promise<void>;
}

/**
 * Whether this api process can actually start and deliver a task, and the background work that gets it
 * there. The api registers the namespace and search attributes itself, as the worker does, so either
 * may start first; until a worker polls the main task queue, submitted tasks are accepted and wait.
 * @example const readiness = apiReadiness(services, lease); // checks go to createApp, start() after the sockets
 */
export function apiReadiness(
  services: Pick<Services, 'config' | 'log' | 'endpoints'>,
  lease: { readonly problem: string | undefined },
): ApiReadiness {
  const { config, log } = services;
  const namespace = config.TEMPORAL_NAMESPACE;
  const taskQueue = config.TEMPORAL_TASK_QUEUE;
  // No retry interceptor: the loop below does its own retrying, and a probe must answer within its limit.
  const connection = healthConnection(services.endpoints.temporalAddress);
  const stopping = new AbortController();
  let namespaceProblem: string | undefined = `registering namespace ${namespace} and its search attributes`;
  let hostWorkerProblem: string | undefined = "this api's host-queue worker is not running yet";
  let hostWorker: RunningWorker | undefined;
  let loop: Promise<void> | undefined;

  const fail = (problem: string | undefined) => {
    if (problem) throw new Error(problem);
  };
  const checks: DependencyCheck[] = [
    { name: 'host_lease', check: async () => fail(lease.problem) },
    { name: 'namespace', check: async () => fail(namespaceProblem) },
    { name: 'host_worker', check: async () => fail(hostWorkerProblem) },
    {
      name: 'task_worker',
      check: async (signal) => {
        fail(namespaceProblem && 'waiting for the namespace before looking for workers');
        const { pollers } = await connection.withAbortSignal(signal, () =>
          connection.workflowService.describeTaskQueue({
            namespace,
            taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          }),
        );
        const since = Date.now() - POLLER_FRESH_MS;
        if (!pollers?.some((p) => (optionalTsToMs(p.lastAccessTime) ?? 0) > since)) {
          throw new Error(`no worker polls task queue ${taskQueue}: submitted tasks wait until one does`);
        }
      },
    },
  ];

  async function prepare(hostActivities: object, tried: () => void) {
    for (let attempt = 1; !stopping.signal.aborted; attempt++) {
      try {
        if (namespaceProblem) {
          await connection.withAbortSignal(stopping.signal, () =>
            ensureNamespace(connection, namespace, log),
          );
          namespaceProblem = undefined;
        }
        hostWorker = await startTemporalWorker(services, {
          taskQueue: hostTaskQueue(taskQueue, config.hostId),
          activities: hostActivities,
        });
        hostWorkerProblem = undefined;
        return tried();
      } catch (err) {
        if (stopping.signal.aborted) return;
        const message = (err as Error).message;
        if (namespaceProblem) namespaceProblem = `cannot register namespace ${namespace} yet: ${message}`;
        else hostWorkerProblem = `this api's host-queue worker cannot start yet: ${message}`;
        if (attempt === 1 || attempt % 10 === 0) {
          log.warn({ err, attempt }, 'Temporal is not ready for this api yet; retrying in the background');
        }
        tried();
        await sleep(Math.min(5_000, 250 * attempt), undefined, { signal: stopping.signal }).catch(() => {});
      }
    }
  }

  return {
    checks,
    start(hostActivities) {
      return new Promise((tried) => {
        loop = prepare(hostActivities, tried).finally(tried);
      });
    },
    async close() {
      stopping.abort();
      await loop;
      await hostWorker?.close();
      await connection.close();
    },
  };
}
