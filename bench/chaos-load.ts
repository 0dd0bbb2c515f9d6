/**
 * The chaos run's load: clients submitting tasks (retrying through outages, with an idempotency key),
 * cancelling some of them, and waiting for each admitted one to reach a terminal status.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { taskIdFor } from '../api/tasks/ids.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { isTerminal, type TaskStatus } from '../workflows/task-status.js';
import type { Cluster } from './chaos-cluster.js';
import { MODEL, type Options, pick, rand } from './chaos-options.js';
import { progress } from './measure.js';

/** One submitted task, as the client saw it. */
export interface TaskRecord {
  index: number;
  key: string;
  id: string;
  client: 'A' | 'B';
  submittedAt: number;
  /** accepted: 202; gave_up: network errors/503 every try; refused: any other answer. */
  submit: 'pending' | 'accepted' | 'gave_up' | 'refused';
  submitTries: number;
  submitAnswers: string[];
  cancel?: {
    delayMs: number;
    outcome: 'pending' | 'accepted' | 'conflict' | 'not_found' | 'gave_up' | 'refused';
    tries: number;
  };
  /** The terminal status the client waited for, or `timeout`. */
  observed?: string;
}

type Answer = { status: number; body: unknown; retryAfter: number | null } | { error: string };

/** One HTTP request with a timeout; a network failure is an answer too. */
async function request(url: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body ?? {}),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    const retryAfter = Number(res.headers.get('retry-after'));
    return {
      status: res.status,
      body: json,
      retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    } satisfies Answer;
  } catch (err) {
    return { error: (err as Error).name === 'TimeoutError' ? 'timeout' : 'network' } satisfies Answer;
  }
}
const answerName = (a: Answer) => ('error' in a ? a.error : String(a.status));
const retriable = (a: Answer) => 'error' in a || a.status === 503;

/** The paying clients the load submits as. */
export type Clients = Record<TaskRecord['client'], { id: string; key: string }>;

/** Submits `opts.tasks` tasks at `opts.concurrency`; `lanes` resolves once every one was waited for. */
export function startLoad(ctx: {
  opts: Options;
  cluster: Cluster;
  prisma: PrismaClient;
  run: string;
  apiUrls: string[];
  clients: Clients;
}) {
  const { opts, cluster, prisma, run, apiUrls, clients } = ctx;
  const records: TaskRecord[] = [];
  const waiters = new Map<string, (status: string) => void>();
  let pollerOn = true;
  const poller = (async () => {
    while (pollerOn) {
      await sleep(500);
      const ids = [...waiters.keys()];
      if (ids.length === 0) continue;
      try {
        const rows = await prisma.task.findMany({
          where: { id: { in: ids } },
          select: { id: true, status: true },
        });
        for (const r of rows) {
          if (isTerminal(r.status as TaskStatus)) waiters.get(r.id)?.(r.status);
        }
      } catch (err) {
        if (!cluster.stopping) progress(`poller: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  })();
  const waitTerminal = (id: string, timeoutMs: number) =>
    new Promise<string>((resolve) => {
      const timer = setTimeout(() => done('timeout'), timeoutMs);
      const done = (status: string) => {
        clearTimeout(timer);
        waiters.delete(id);
        resolve(status);
      };
      waiters.set(id, done);
    });

  const submitAnswers: Record<string, number> = {};
  const cancelAnswers: Record<string, number> = {};
  const tally = (into: Record<string, number>, a: Answer) => {
    into[answerName(a)] = (into[answerName(a)] ?? 0) + 1;
  };

  type CancelOutcome = NonNullable<TaskRecord['cancel']>['outcome'];
  const cancelTask = async (rec: TaskRecord, cancel: NonNullable<TaskRecord['cancel']>) => {
    await sleep(cancel.delayMs);
    cancel.outcome = await sendCancel(rec, cancel);
  };
  const sendCancel = async (
    rec: TaskRecord,
    cancel: NonNullable<TaskRecord['cancel']>,
  ): Promise<CancelOutcome> => {
    const key = clients[rec.client].key;
    let retries = 0;
    for (;;) {
      cancel.tries++;
      const a = await request(`${pick(apiUrls)}/api/tasks/${rec.id}/cancel`, key);
      tally(cancelAnswers, a);
      if (!('error' in a)) {
        if (a.status === 202) return 'accepted';
        if (a.status === 409) return 'conflict';
        if (a.status === 404) {
          // Not admitted yet: wait for the submission to settle, then ask once more.
          if (rec.submit === 'pending' && cancel.tries < 60) {
            await sleep(300);
            continue;
          }
          if (rec.submit === 'accepted' && retries++ < 1) continue;
          return 'not_found';
        }
      }
      if (!retriable(a)) return 'refused';
      if (++retries >= 5) return 'gave_up';
      const wait = 'retryAfter' in a && a.retryAfter ? a.retryAfter * 1000 : 500 * retries;
      await sleep(Math.min(2_000, wait));
    }
  };

  const perTaskWaitMs =
    opts['queue-timeout-ms'] + opts['result-timeout-ms'] + opts['accept-timeout-ms'] + 30_000;
  const runTask = async (index: number) => {
    const client = Math.random() < 0.5 ? 'A' : 'B';
    const key = `chaos-${run}-${index}`;
    const rec: TaskRecord = {
      index,
      key,
      id: taskIdFor(clients[client].id, key),
      client,
      submittedAt: Date.now(),
      submit: 'pending',
      submitTries: 0,
      submitAnswers: [],
    };
    records.push(rec);
    const body = {
      model: MODEL.name,
      input: { prompt: `chaos task ${index}: ${randomBytes(6).toString('hex')} tell me about the weather` },
      params: { maxTokens: 16 + Math.floor(Math.random() * 112) },
    };
    let cancelling: Promise<void> | undefined;
    if (Math.random() < opts.cancelRatio) {
      rec.cancel = { delayMs: Math.round(rand(0, opts['cancel-window-ms'])), outcome: 'pending', tries: 0 };
      cancelling = cancelTask(rec, rec.cancel);
    }
    for (;;) {
      rec.submitTries++;
      const a = await request(`${pick(apiUrls)}/api/tasks`, clients[client].key, body, {
        'Idempotency-Key': key,
      });
      tally(submitAnswers, a);
      rec.submitAnswers.push(answerName(a));
      if (!('error' in a) && a.status === 202) {
        rec.submit = 'accepted';
        break;
      }
      if (!retriable(a)) {
        rec.submit = 'refused';
        break;
      }
      if (rec.submitTries >= opts['submit-tries']) {
        rec.submit = 'gave_up';
        break;
      }
      const wait = 'retryAfter' in a && a.retryAfter ? a.retryAfter * 1000 : 500 * rec.submitTries;
      await sleep(Math.min(2_000, wait));
    }
    if (rec.submit === 'accepted') rec.observed = await waitTerminal(rec.id, perTaskWaitMs);
    await cancelling;
  };

  let nextIndex = 0;
  const lanes = Promise.all(
    Array.from({ length: Math.min(opts.concurrency, opts.tasks) }, async () => {
      while (nextIndex < opts.tasks) await runTask(nextIndex++);
    }),
  );

  return {
    records,
    submitAnswers,
    cancelAnswers,
    lanes,
    /** Stop watching for terminal statuses (after the lanes are done). */
    stopPoller: async () => {
      pollerOn = false;
      await poller;
    },
  };
}
