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
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runPool } from '../bench/stats.js';
import { ensureCoordinator } from './demo-coordinator.js';
import { restClient } from './demo-rest.js';
import { report } from './demo-summary.js';
import { cleanups, DemoError, UsageError } from './demo-support.js';
import { connectNodes, NODES, setUpAccounts, submitTask, watch } from './demo-tasks.js';

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
