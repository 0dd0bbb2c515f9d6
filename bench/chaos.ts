/**
 * `npm run chaos [-- --tasks 300 --concurrency 12 --cancel-ratio 0.25 --kill-every-ms 6000 …]`
 *
 * The coordinator as operators run it (2 api processes, 2 workers, 4 `neurogrid-node` agents with the
 * simulated backend, a Temporal dev server on SQLite, PostgreSQL and Redis), with one random part
 * SIGKILLed and restarted every few seconds while tasks run and some are cancelled. At the end every
 * task is audited against the row, its workflow and the ledger, and the counts we promise about are
 * printed and written to `bench/results/chaos-<label>.json`. Exit 1 when a promise is broken.
 *
 * Needs DATABASE_URL (a server where a fresh database can be created) and REDIS_URL.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { isTerminal, type TaskStatus } from '../workflows/task-status.js';
import { auditChaosRun } from './chaos-audit.js';
import { Cluster } from './chaos-cluster.js';
import { type Held, seedAndStartNodes, startServices } from './chaos-deploy.js';
import { measureRecovery, startChaos } from './chaos-kills.js';
import { startLoad } from './chaos-load.js';
import { NAMESPACE, parseCommandLine } from './chaos-options.js';
import { describeMachine, reportRun } from './chaos-report.js';
import { progress } from './measure.js';

async function main() {
  const opts = parseCommandLine();
  if (!process.env.DATABASE_URL || !process.env.REDIS_URL) {
    console.error(
      'chaos: DATABASE_URL (a PostgreSQL server where a fresh database can be created) and REDIS_URL must be set;\n' +
        'the run kills processes that share state through them, so the embedded stand-ins cannot be used.',
    );
    process.exit(2);
  }
  const startedAt = new Date();
  const machine = describeMachine();

  const dir = await mkdtemp(path.join(os.tmpdir(), 'ng-chaos-'));
  const cluster = new Cluster((line) => progress(line));
  const held: Held = {};
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    cluster.stopping = true;
    await held.connection?.close().catch(() => undefined);
    await held.prisma?.$disconnect().catch(() => undefined);
    await cluster.stopAll();
    const { db } = held;
    if (db && !opts.keepDb) await db.drop().catch((err) => progress(`dropping the database: ${err}`));
    else if (db) progress(`database kept: ${db.url}`);
    await rm(dir, { recursive: true, force: true });
  };
  process.on('exit', () => cluster.killAllNow());
  process.once('SIGINT', () => {
    progress('interrupted: stopping every process');
    cluster.stopping = true;
    void cleanup().finally(() => process.exit(130));
  });

  try {
    // --- Services -------------------------------------------------------------------------------
    const { temporal, prisma, run, adminKey, apiUrls } = await startServices(
      opts,
      cluster,
      dir,
      process.env.REDIS_URL,
      held,
    );

    // --- Accounts, model, nodes (through the admin API, as an operator would) --------------------
    const { clients, nodeIds } = await seedAndStartNodes(opts, cluster, apiUrls, adminKey);

    // --- Load, cancels and chaos ------------------------------------------------------------------
    const loadStart = Date.now();
    const since = () => ((Date.now() - loadStart) / 1000).toFixed(0);
    const load = startLoad({ opts, cluster, prisma, run, apiUrls, clients });
    const { records } = load;
    const { kills, stop: stopChaos } = startChaos(opts, cluster, loadStart);

    const statusCounts = async () => {
      const groups = await prisma.task.groupBy({ by: ['status'], _count: { _all: true } });
      return Object.fromEntries(groups.map((g) => [g.status, g._count._all])) as Record<string, number>;
    };
    const describeCounts = (counts: Record<string, number>) =>
      Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    const ticker = setInterval(() => {
      void statusCounts()
        .then((counts) => {
          const accepted = records.filter((r) => r.submit === 'accepted').length;
          const gaveUp = records.filter((r) => r.submit === 'gave_up').length;
          progress(
            `t=${since()}s submitted ${records.length}/${opts.tasks} (202: ${accepted}, gave up: ${gaveUp}); ` +
              `rows: ${describeCounts(counts) || 'none'}; kills ${kills.length}`,
          );
          for (const c of cluster.components) c.trimOutput();
        })
        .catch(() => undefined);
    }, 5_000);

    progress(
      `load: ${opts.tasks} tasks at concurrency ${opts.concurrency}, ~${Math.round(opts.cancelRatio * 100)} % cancelled; ` +
        `killing one of [${opts.kinds.join(', ')}] every ~${opts['kill-every-ms']} ms`,
    );
    await load.lanes;
    const loadSeconds = (Date.now() - loadStart) / 1000;
    progress(
      `all ${opts.tasks} tasks submitted and waited for (${loadSeconds.toFixed(0)} s); stopping the chaos`,
    );
    await stopChaos();
    // Whatever exited on its own is restarted by the cluster: wait for that too.
    await waitFor(() => cluster.busy.size === 0, 120_000);
    await load.stopPoller();

    // --- Settle: every admitted task must reach a terminal status ---------------------------------
    const waitStart = Date.now();
    let unfinished = 0;
    for (;;) {
      const counts = await statusCounts();
      unfinished = Object.entries(counts)
        .filter(([st]) => !isTerminal(st as TaskStatus))
        .reduce((n, [, c]) => n + c, 0);
      if (unfinished === 0) break;
      if (Date.now() - waitStart > opts['final-wait-ms']) {
        progress(`${unfinished} task(s) still unfinished after ${opts['final-wait-ms']} ms`);
        break;
      }
      progress(`waiting for ${unfinished} unfinished task(s): ${describeCounts(counts)}`);
      await sleep(5_000);
    }
    clearInterval(ticker);
    const settleSeconds = (Date.now() - waitStart) / 1000;

    // --- Recovery: from each kill to the next completed task --------------------------------------
    await measureRecovery(prisma, kills);

    // --- Audit -------------------------------------------------------------------------------------
    progress('auditing every task (database, ledger, Temporal)');
    held.connection = await Connection.connect({ address: temporal.address });
    const temporalClient = new Client({ connection: held.connection, namespace: NAMESPACE });
    const rowIds = new Set((await prisma.task.findMany({ select: { id: true } })).map((r) => r.id));
    const neverAdmitted = records.filter((r) => !rowIds.has(r.id));
    const audit = await auditChaosRun({
      prisma,
      temporal: temporalClient,
      neverAdmitted: neverAdmitted.length,
      nodeIds,
      say: progress,
    });

    const broken = await reportRun({
      opts,
      startedAt,
      machine,
      load,
      rowIds,
      audit,
      kills,
      cluster,
      loadSeconds,
      settleSeconds,
    });
    if (broken.length > 0) {
      throw new Error(`promises broken: ${broken.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    }
  } finally {
    await cleanup();
  }
}

async function waitFor(check: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await sleep(200);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(`\nchaos: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
