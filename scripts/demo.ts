/**
 * `npm run demo -- [--tasks N] [--timeout SECONDS]`: NeuroGrid end to end, through the documented
 * REST API only. Uses the coordinator at `DEMO_API_URL` (default `http://127.0.0.1:$PORT`, PORT 3000)
 * or, when nothing answers its `/api/health`, starts `npm start` (data folder `DATA_DIR`, default
 * `.data`) and stops it at the end. Then: a client and a node owner (new names per run), the demo
 * models (`demo-llm:2`, `demo-embed:2`, created when missing), three registered nodes run by the real
 * node agent with simulated backends (one slower), N tasks (default 20, text and embedding mixed)
 * submitted with Idempotency-Keys, live progress, and this summary (format kept stable for the README):
 *
 * ```
 * Demo summary (20 tasks, 3 nodes, 3.5 s)
 *   tasks        completed 20/20 · failed 0 · cancelled 0 · unfinished 0
 *   attempts     20
 *   latency      p50 2557 ms · p99 3030 ms (submit → completed, coordinator clock)
 *   per node     fast-1 4 · fast-2 9 · slow 7
 *   tokens       paid 410 · nodes earned 320 · platform fees 90 (minor units)
 *   Temporal UI  http://127.0.0.1:8233/namespaces/neurogrid/workflows
 * ```
 *
 * The seconds run from the first submit to the last task finished; `attempts` is the sum of the tasks'
 * `attempts`; latency is `completedAt − createdAt` of the completed tasks as the coordinator recorded
 * them (no polling delay in it); `per node` counts completed tasks. `unfinished`: still running at
 * `--timeout`. Before the summary, one line per failed task (up to 5) gives its failure reason.
 *
 * Exit code 0 only when every task completed; 1 otherwise or on any error (with its reason); 2 for a
 * bad command line. The admin key is `ADMIN_API_KEY` or the dev key saved in `<DATA_DIR>/admin-api-key`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readDevAdminKey } from '../api/auth/bootstrap.js';
import { percentile, runPool } from '../bench/stats.js';
import { stopChild } from '../lib/process.js';
import { NodeAgent } from '../node-agent/agent.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import { isTerminal, TASK_STATUSES, type TaskStatus } from '../workflows/task-status.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const POLL_MS = 250;
const COORDINATOR_START_TIMEOUT_MS = 10 * 60_000; // a first start may build the Temporal CLI (3–5 min)
const TEXT_MODEL = { name: 'demo-llm', version: '2', taskType: 'text_generation' } as const;
/** Prices of the demo models (minor units) and the client's starting balance. */
const DEMO_PRICES = { pricePerRequest: 5, pricePerInputToken: 1, pricePerOutputToken: 2 };
const DEMO_FUNDS = '1000000';
const EMBED_MODEL = { name: 'demo-embed', version: '2', taskType: 'embedding' } as const;
const NODES: Array<{ label: string; latencyMs: [number, number] }> = [
  { label: 'fast-1', latencyMs: [50, 150] },
  { label: 'fast-2', latencyMs: [50, 150] },
  { label: 'slow', latencyMs: [200, 300] },
];
/** Room for all 20 default tasks at once, so the demo shows throughput rather than queueing. */
const NODE_CAPACITY = 8;

interface TaskView {
  id: string;
  status: TaskStatus;
  attempts: number;
  nodeId: string | null;
  failureReason: string | null;
  createdAt: string;
  completedAt: string | null;
  tokens: { held: string; price: string | null; reward: string | null; fee: string | null };
}

/** Thrown for anything that should end the demo with a readable message (no stack trace). */
class DemoError extends Error {}

const cleanups: Array<() => Promise<void>> = [];

async function main(): Promise<number> {
  const { tasks, timeoutMs } = parseCommandLine();
  const apiUrl = (process.env.DEMO_API_URL ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`).replace(
    /\/$/,
    '',
  );
  const dataDir = path.resolve(process.env.DATA_DIR ?? '.data');
  const runId = randomBytes(3).toString('hex');
  console.log(`NeuroGrid demo: ${tasks} tasks on ${NODES.length} simulated nodes (run ${runId})`);

  await ensureCoordinator(apiUrl, dataDir);
  const call = restClient(apiUrl);
  const { clientKey, ownerKey } = await setUpAccounts(call, dataDir, runId);
  const labels = await connectNodes(call, apiUrl, ownerKey, runId);
  console.log(`  nodes        ${NODES.map((n) => `${n.label} (${n.latencyMs.join('–')} ms)`).join(', ')}`);

  const submitted = performance.now();
  const ids = await runPool(tasks, 4, (i) => submitTask(call, clientKey, runId, i));
  console.log(
    `  submitted    ${tasks} tasks (${Math.ceil(tasks / 2)} text, ${Math.floor(tasks / 2)} embedding)`,
  );
  const views = await watch(call, clientKey, ids, timeoutMs);
  return report(tasks, views, labels, (performance.now() - submitted) / 1000);
}

/** Use the coordinator answering at `apiUrl`, or start one (locally) that {@link finish} stops. */
async function ensureCoordinator(apiUrl: string, dataDir: string): Promise<void> {
  if ((await healthStatus(apiUrl)) !== undefined) {
    await waitHealthy(apiUrl, 30_000);
    console.log(`  coordinator  ${apiUrl} (already running)`);
    return;
  }
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(apiUrl).hostname)) {
    throw new DemoError(
      `nothing answers at ${apiUrl}/api/health (the demo starts a coordinator only locally)`,
    );
  }
  const coordinator = await startCoordinator(apiUrl, dataDir);
  cleanups.push(coordinator.stop);
  console.log(`  coordinator  ${apiUrl} (started by the demo; data folder ${dataDir})`);
}

/** As the admin: this run's client and node owner, and the demo models unless they exist. */
async function setUpAccounts(call: Call, dataDir: string, runId: string) {
  const adminKey = process.env.ADMIN_API_KEY || (await readDevAdminKey(dataDir));
  if (!adminKey) {
    throw new DemoError(`no admin key: set ADMIN_API_KEY, or DATA_DIR to the coordinator's data folder`);
  }
  const client = await call<{ apiKey: string; client: { id: string } }>(
    'create the client',
    adminKey,
    'POST /api/admin/clients',
    { body: { name: `demo-client-${runId}` } },
  );
  await call('top up the client', adminKey, 'POST /api/tokens/topup', {
    body: { clientId: client.client.id, amount: DEMO_FUNDS, note: 'demo funds' },
    headers: { 'Idempotency-Key': `demo-topup-${runId}` },
  });
  const owner = await call<{ apiKey: string }>(
    'create the node owner',
    adminKey,
    'POST /api/admin/node-owners',
    {
      body: { name: `demo-owner-${runId}` },
    },
  );
  console.log(`  accounts     client demo-client-${runId}, node owner demo-owner-${runId}`);
  for (const model of [TEXT_MODEL, EMBED_MODEL]) {
    await call(`create the model ${model.name}:${model.version}`, adminKey, 'POST /api/models', {
      body: { ...model, maxInputBytes: 10_000, maxOutputTokens: 256, ...DEMO_PRICES },
      ok: [201, 409], // 409: it exists already (an earlier run)
    });
  }
  console.log(
    `  models       ${TEXT_MODEL.name}:${TEXT_MODEL.version} (text_generation), ${EMBED_MODEL.name}:${EMBED_MODEL.version} (embedding)`,
  );
  return { clientKey: client.apiKey, ownerKey: owner.apiKey };
}

class UsageError extends DemoError {}

function parseCommandLine(): { tasks: number; timeoutMs: number } {
  const usage = 'usage: npm run demo -- [--tasks N (≥ 1, default 20)] [--timeout SECONDS (default 120)]';
  let values: { tasks?: string; timeout?: string };
  try {
    ({ values } = parseArgs({
      options: { tasks: { type: 'string', default: '20' }, timeout: { type: 'string', default: '120' } },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${usage}`);
  }
  const tasks = Number(values.tasks);
  const timeout = Number(values.timeout);
  if (!Number.isInteger(tasks) || tasks < 1 || !(timeout > 0)) throw new UsageError(usage);
  return { tasks, timeoutMs: timeout * 1000 };
}

// coordinator

/** The HTTP status of `/api/health`, or undefined when nothing answers. */
async function healthStatus(apiUrl: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${apiUrl}/api/health`, { signal: AbortSignal.timeout(3_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined;
  }
}

async function waitHealthy(apiUrl: string, timeoutMs: number, exited?: () => string | undefined) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problem = exited?.();
    if (problem) throw new DemoError(problem);
    const status = await healthStatus(apiUrl);
    if (status === 200) return;
    if (Date.now() > deadline) {
      throw new DemoError(
        `${apiUrl}/api/health did not answer 200 within ${timeoutMs / 1000} s (last: ${status})`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** `npm start` as a child process, with a live line showing what it is doing while it comes up. */
async function startCoordinator(apiUrl: string, dataDir: string) {
  const port = new URL(apiUrl).port || '80';
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATA_DIR: dataDir, PORT: port },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let phase = 'starting';
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      output.push(line);
      if (output.length > 30) output.shift();
      const msg = logMessage(line);
      if (msg) phase = msg.length > 70 ? `${msg.slice(0, 69)}…` : msg;
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const stop = () => stopChild(child, 30_000);
  const exited = () =>
    child.exitCode !== null || child.signalCode !== null
      ? `the coordinator exited during start-up (${child.exitCode ?? child.signalCode}); its last output:\n${output.join('\n')}`
      : undefined;

  const line = statusLine();
  const t0 = performance.now();
  const ticker = setInterval(() => {
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    line.update(`  coordinator  starting (${seconds} s): ${phase}`, phase);
  }, POLL_MS);
  try {
    await waitHealthy(apiUrl, COORDINATOR_START_TIMEOUT_MS, exited);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearInterval(ticker);
    line.done();
  }
  return { stop };
}

/** The `msg` of a pino JSON line, undefined for anything else (banners, stray output). */
function logMessage(line: string): string | undefined {
  try {
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof msg === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}

// REST

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
function restClient(apiBase: string) {
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
type Call = ReturnType<typeof restClient>;

// nodes and tasks

/** Register and connect the demo's nodes; resolves with node id → label once every hello is acked. */
async function connectNodes(
  call: Call,
  apiUrl: string,
  ownerKey: string,
  runId: string,
): Promise<Map<string, string>> {
  const ids = await Promise.all(
    NODES.map(async ({ label, latencyMs }) => {
      const models = [TEXT_MODEL, EMBED_MODEL].map(({ name, version }) => ({ name, version }));
      const { node, nodeKey } = await call<{ node: { id: string }; nodeKey: string }>(
        `register node ${label}`,
        ownerKey,
        'POST /api/nodes/register',
        { body: { name: `demo-${label}-${runId}`, models, capacity: NODE_CAPACITY } },
      );
      const agent = new NodeAgent({
        coordinatorUrl: apiUrl,
        apiKey: nodeKey,
        models,
        capacity: NODE_CAPACITY,
        backend: simulatedBackend({ latencyMs }),
      });
      cleanups.push(() => agent.stop());
      await agent.start().catch((err: Error) => {
        throw new DemoError(`node ${label} could not connect: ${err.message}`);
      });
      return node.id;
    }),
  );
  return new Map(ids.map((id, i) => [id, NODES[i]?.label ?? id]));
}

/** Even tasks generate text, odd ones embed; the Idempotency-Key makes a retried submit the same task. */
async function submitTask(call: Call, clientKey: string, runId: string, i: number): Promise<string> {
  const body =
    i % 2 === 0
      ? {
          model: TEXT_MODEL.name,
          input: { prompt: `Demo task ${i}: one line on durable workflows` },
          params: { maxTokens: 64 },
        }
      : { model: EMBED_MODEL.name, input: { texts: [`demo task ${i}`, 'distributed inference'] } };
  const { task } = await call<{ task: { id: string } }>(`submit task ${i}`, clientKey, 'POST /api/tasks', {
    body,
    headers: { 'Idempotency-Key': `demo-${runId}-${i}` },
    ok: [202],
    idempotent: true,
  });
  return task.id;
}

/** Poll the client's task list until every task is finished or `timeoutMs` passed, showing progress. */
async function watch(
  call: Call,
  clientKey: string,
  ids: string[],
  timeoutMs: number,
): Promise<Map<string, TaskView>> {
  const wanted = new Set(ids);
  const seen = new Map<string, TaskView>();
  const line = statusLine();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      let cursor: string | null = null;
      do {
        const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const page: { tasks: TaskView[]; nextCursor: string | null } = await call(
          'list the tasks',
          clientKey,
          `GET /api/tasks?limit=100${query}`,
        );
        for (const t of page.tasks) if (wanted.has(t.id)) seen.set(t.id, t);
        cursor = page.nextCursor;
      } while (cursor);
      const text = progress(ids.map((id) => seen.get(id)?.status ?? 'queued'));
      line.update(text);
      if (ids.every((id) => isTerminal(seen.get(id)?.status ?? 'queued')) || Date.now() > deadline)
        return seen;
      await sleep(POLL_MS);
    }
  } finally {
    line.done();
  }
}

/** `  [######--------] 12/20  queued 2 · assigned 1 · running 5 · verifying 0 · completed 12 · …` */
function progress(statuses: TaskStatus[]): string {
  const count = (s: TaskStatus) => statuses.filter((x) => x === s).length;
  const done = statuses.filter(isTerminal).length;
  const width = 20;
  const filled = Math.round((done / statuses.length) * width);
  const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
  return `  [${bar}] ${done}/${statuses.length}  ${TASK_STATUSES.map((s) => `${s} ${count(s)}`).join(' · ')}`;
}

// summary

/** The summary documented at the top of this file; 0 when every task completed, else 1. */
function report(total: number, seen: Map<string, TaskView>, labels: Map<string, string>, seconds: number) {
  const views = [...seen.values()];
  const by = (s: TaskStatus) => views.filter((v) => v.status === s);
  const completed = by('completed');
  const failed = by('failed');
  const unfinished = total - views.filter((v) => isTerminal(v.status)).length;
  const latencies = completed.map((v) => Date.parse(v.completedAt as string) - Date.parse(v.createdAt));
  const perNode = [...labels].map(
    ([id, label]) => `${label} ${completed.filter((v) => v.nodeId === id).length}`,
  );
  const uiPort = process.env.TEMPORAL_UI_PORT ?? '8233';
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'neurogrid';

  for (const v of failed.slice(0, 5)) console.log(`  failed ${v.id}: ${v.failureReason}`);
  if (unfinished > 0)
    console.log(`  timed out with ${unfinished} task(s) unfinished (--timeout to wait longer)`);
  console.log(
    [
      '',
      `Demo summary (${total} tasks, ${labels.size} nodes, ${seconds.toFixed(1)} s)`,
      `  tasks        completed ${completed.length}/${total} · failed ${failed.length} · cancelled ${by('cancelled').length} · unfinished ${unfinished}`,
      `  attempts     ${views.reduce((n, v) => n + v.attempts, 0)}`,
      `  latency      p50 ${ms(percentile(latencies, 50))} · p99 ${ms(percentile(latencies, 99))} (submit → completed, coordinator clock)`,
      `  per node     ${perNode.join(' · ')}`,
      `  tokens       paid ${sum(completed, 'price')} · nodes earned ${sum(completed, 'reward')} · platform fees ${sum(completed, 'fee')} (minor units)`,
      `  Temporal UI  http://127.0.0.1:${uiPort}/namespaces/${namespace}/workflows`,
      '',
    ].join('\n'),
  );
  return completed.length === total ? 0 : 1;
}

const sum = (views: TaskView[], field: 'price' | 'reward' | 'fee') =>
  views.reduce((total, v) => total + BigInt(v.tokens?.[field] ?? 0), 0n).toString();

const ms = (n: number) => (Number.isNaN(n) ? 'n/a' : `${Math.round(n)} ms`);

// terminal

/** One live status line: rewritten in place on a terminal; elsewhere printed only when `key` changes. */
function statusLine() {
  const tty = process.stdout.isTTY;
  let last: string | undefined;
  return {
    update(text: string, key = text) {
      if (tty) process.stdout.write(`\r\x1b[K${text}`);
      else if (key !== last) process.stdout.write(`${text}\n`);
      last = key;
    },
    done() {
      if (tty && last !== undefined) process.stdout.write('\n');
      last = undefined;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// entry point

let finishing: Promise<never> | undefined;

/** Stop the agents and the coordinator this run started (newest first), then exit with `code`. */
function finish(code: number): Promise<never> {
  finishing ??= (async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    process.exit(code);
  })();
  return finishing;
}

process.once('SIGINT', () => {
  console.error('\ninterrupted: stopping…');
  void finish(130);
});

main().then(finish, (err: unknown) => {
  const message = err instanceof DemoError ? err.message : ((err as Error)?.stack ?? String(err));
  console.error(`\ndemo failed: ${message}`);
  void finish(err instanceof UsageError ? 2 : 1);
});
