/** The demo's summary (its format is documented at the top of `scripts/demo.ts`). */
import { percentile } from '../bench/stats.js';
import { isTerminal, type TaskStatus } from '../workflows/task-status.js';
import type { TaskView } from './demo-tasks.js';

/** The summary documented at the top of `scripts/demo.ts`; 0 when every task completed, else 1. */
export function report(
  total: number,
  seen: Map<string, TaskView>,
  labels: Map<string, string>,
  seconds: number,
) {
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
