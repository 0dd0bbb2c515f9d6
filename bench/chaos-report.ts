/** What the chaos run reports: the summary it prints and `bench/results/chaos-<label>.json`. */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ChaosAudit } from './chaos-audit.js';
import { type Cluster, KINDS } from './chaos-cluster.js';
import type { KillRecord } from './chaos-kills.js';
import type { startLoad } from './chaos-load.js';
import { KNOBS, type Knob, type Options, SETTINGS, type Setting } from './chaos-options.js';
import { progress, round } from './measure.js';
import { percentile } from './stats.js';

const RESULTS_DIR = path.join(import.meta.dirname, 'results');

/** The machine the run is on, taken when it starts. */
export function describeMachine() {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
  };
}

/** Prints the summary and writes the results file; returns the promises that were broken. */
export async function reportRun({
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
}: {
  opts: Options;
  startedAt: Date;
  machine: ReturnType<typeof describeMachine>;
  load: Pick<ReturnType<typeof startLoad>, 'records' | 'submitAnswers' | 'cancelAnswers'>;
  /** Ids of every task row in the database. */
  rowIds: Set<string>;
  audit: ChaosAudit;
  kills: KillRecord[];
  cluster: Cluster;
  loadSeconds: number;
  settleSeconds: number;
}) {
  const { records, submitAnswers, cancelAnswers } = load;
  const client = {
    submitted: records.length,
    accepted202: records.filter((r) => r.submit === 'accepted').length,
    gaveUp: records.filter((r) => r.submit === 'gave_up').length,
    gaveUpButAdmitted: records.filter((r) => r.submit === 'gave_up' && rowIds.has(r.id)).length,
    refused: records.filter((r) => r.submit === 'refused').length,
    retriedSubmissions: records.filter((r) => r.submitTries > 1).length,
    submitAnswers,
    cancelsSent: records.filter((r) => r.cancel).length,
    cancelOutcomes: countBy(records.flatMap((r) => (r.cancel ? [r.cancel.outcome] : []))),
    cancelAnswers,
    waitTimeouts: records.filter((r) => r.observed === 'timeout').length,
  };
  const recovery = recoverySummary(kills);
  const promises = {
    chargedWhileCancelled: audit.chargedWhileCancelled,
    completedButReleased: audit.completedButReleased,
    strandedHolds: audit.strandedHolds,
    settlementAmountMismatches: audit.settlementAmountMismatches,
    leakedAttempts: audit.leakedAttempts,
    statusMismatches: audit.statusMismatches,
    settlementAttributeMismatches: audit.settlementAttributeMismatches,
    ledgerNotOk: audit.ledger.ok ? 0 : 1,
    payoutMismatch: audit.payouts.equal ? 0 : 1,
  };
  const broken = Object.entries(promises).filter(([, n]) => n > 0);

  printSummary({ opts, audit, client, kills, recovery, promises, unexpected: cluster.unexpectedExits });

  const results = {
    label: opts.label,
    timestamp: startedAt.toISOString(),
    machine,
    parameters: {
      ...Object.fromEntries(Object.entries(KNOBS).map(([k]) => [k, opts[k as Knob]])),
      cancelRatio: opts.cancelRatio,
      kinds: opts.kinds,
      simLatencyMs: opts.simLatency,
      apis: 2,
      workers: 2,
      nodes: 4,
      coordinator: Object.fromEntries(
        Object.entries(SETTINGS).map(([flag, st]) => [st.env, opts[flag as Setting]]),
      ),
      services: 'Temporal dev server (SQLite), PostgreSQL (DATABASE_URL), Redis (REDIS_URL)',
    },
    seconds: { load: round(loadSeconds, 1), settle: round(settleSeconds, 1) },
    promises,
    promisesKept: broken.length === 0,
    tasks: audit.tasks,
    client,
    attempts: {
      outcomes: audit.attemptOutcomes,
      lost: audit.lostAttempts,
      tasksWithLostAttempts: audit.tasksWithLostAttempts,
      tasksExhaustedAttempts: audit.tasksExhaustedAttempts,
    },
    failureReasons: audit.failureReasons,
    workflowStatuses: audit.workflowStatuses,
    ledger: audit.ledger,
    payouts: audit.payouts,
    recovery,
    kills: kills.map(({ at, ...k }) => ({ ...k, at: new Date(at).toISOString() })),
    unexpectedExits: cluster.unexpectedExits.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
    findings: audit.findings,
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `chaos-${opts.label}.json`);
  await writeFile(`${file}.tmp`, `${JSON.stringify(results, bigintJson, 2)}\n`);
  await rename(`${file}.tmp`, file);
  progress(`results written to ${path.relative(process.cwd(), file)}`);
  return broken;
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

const bigintJson = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);

type Spread = { count: number; min: number; median: number; max: number } | { count: 0 };
function spreadOf(values: number[]): Spread {
  if (values.length === 0) return { count: 0 };
  return {
    count: values.length,
    min: Math.min(...values),
    median: percentile(values, 50),
    max: Math.max(...values),
  };
}

/** Per kind of component: restart (spawn → ready), outage (kill → ready) and recovery (kill → next completion). */
function recoverySummary(kills: KillRecord[]) {
  const out: Record<
    string,
    { kills: number; failedRestarts: number; restartMs: Spread; outageMs: Spread; recoveryMs: Spread }
  > = {};
  for (const kind of KINDS) {
    const ks = kills.filter((k) => k.kind === kind);
    if (ks.length === 0) continue;
    const values = (f: (k: KillRecord) => number | null) => ks.map(f).filter((v): v is number => v !== null);
    out[kind] = {
      kills: ks.length,
      failedRestarts: ks.filter((k) => k.error).length,
      restartMs: spreadOf(values((k) => k.restartMs)),
      outageMs: spreadOf(values((k) => k.outageMs)),
      recoveryMs: spreadOf(values((k) => k.recoveryMs)),
    };
  }
  return out;
}

function printSummary(r: {
  opts: Options;
  audit: ChaosAudit;
  client: Record<string, unknown> & { submitted: number; accepted202: number; gaveUp: number };
  kills: KillRecord[];
  recovery: ReturnType<typeof recoverySummary>;
  promises: Record<string, number>;
  unexpected: Cluster['unexpectedExits'];
}) {
  const { audit } = r;
  const line = (name: string, value: unknown, note = '') =>
    `  ${name.padEnd(34)} ${String(value).padStart(8)}${note ? `  ${note}` : ''}`;
  const spread = (s: Spread) => ('min' in s ? `${s.min} / ${s.median} / ${s.max}` : '-');
  const out = [
    '',
    `Chaos run: ${r.client.submitted} tasks, ${r.kills.length} kills (${r.opts.kinds.join(', ')}), ${r.unexpected.length} unexpected exits`,
    '',
    'Tasks',
    line('completed', audit.tasks.completed),
    line('failed', audit.tasks.failed),
    line('cancelled', audit.tasks.cancelled),
    line('still unfinished', audit.tasks.unfinished),
    line('never admitted', audit.tasks.neverAdmitted, 'no 202 and no row'),
    line('submissions answered 202', r.client.accepted202),
    line('submissions given up', r.client.gaveUp, `of which admitted anyway: ${r.client.gaveUpButAdmitted}`),
    line('cancels sent', r.client.cancelsSent, JSON.stringify(r.client.cancelOutcomes)),
    '',
    'Attempts',
    line('lost attempts', audit.lostAttempts, `on ${audit.tasksWithLostAttempts} task(s)`),
    line('tasks that used all attempts', audit.tasksExhaustedAttempts),
    line('outcomes', JSON.stringify(audit.attemptOutcomes)),
    '',
    'Promises (must all be 0)',
    line('charged while cancelled/failed', r.promises.chargedWhileCancelled),
    line('completed but released', r.promises.completedButReleased),
    line('stranded holds', r.promises.strandedHolds),
    line('settlement ≠ hold amount', r.promises.settlementAmountMismatches),
    line('leaked attempts', r.promises.leakedAttempts),
    line('row ≠ workflow status', r.promises.statusMismatches),
    line('TaskSettlement ≠ ledger', r.promises.settlementAttributeMismatches),
    line('ledger verify', audit.ledger.ok ? 'ok' : 'FAILED', audit.ledger.problems.slice(0, 3).join('; ')),
    line(
      'node payouts = completed rewards',
      audit.payouts.equal ? 'yes' : 'NO',
      `${audit.payouts.nodeBalances} vs ${audit.payouts.completedRewards}`,
    ),
    '',
    'Recovery per component, ms (min / median / max)',
    `  ${'kind'.padEnd(9)} ${'kills'.padStart(5)}  ${'restart → ready'.padEnd(22)} ${'kill → ready'.padEnd(22)} kill → next completion`,
    ...Object.entries(r.recovery).map(
      ([kind, v]) =>
        `  ${kind.padEnd(9)} ${String(v.kills).padStart(5)}  ${spread(v.restartMs).padEnd(22)} ${spread(v.outageMs).padEnd(22)} ${spread(v.recoveryMs)}${v.failedRestarts ? `  (${v.failedRestarts} failed restarts)` : ''}`,
    ),
  ];
  if (audit.findings.length > 0) {
    out.push('', `Findings (first ${Math.min(10, audit.findings.length)})`);
    for (const f of audit.findings.slice(0, 10)) out.push(`  ${f.taskId}: ${f.problem}`);
  }
  if (r.unexpected.length > 0) {
    out.push('', 'Unexpected exits');
    for (const e of r.unexpected.slice(0, 10)) {
      out.push(`  ${e.component} at ${new Date(e.at).toISOString()}: ${e.signal ?? `code ${e.code}`}`);
    }
  }
  console.log(`${out.join('\n')}\n`);
}
