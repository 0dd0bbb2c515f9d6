/** The settlement bench's printed table. */
import type { Check } from './settlement-checks.js';
import type { Kind, Phase } from './settlement-timing.js';

export type Runs = Record<Kind, Phase>;
export type Ratios = Record<
  'settleOverSelect1' | 'settleOverTopup' | 'replayOverSettle',
  { p50: number; p99: number }
>;

export function printTable(
  runs: { sequential: Runs; concurrent: Runs },
  ratios: { sequential: Ratios; concurrent: Ratios },
  statements: Record<Kind, number[]>,
  checks: Check[],
  describe: { database: string; pool: number },
  n: number,
) {
  const row = (cells: Array<string | number>) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(20) : String(c).padStart(9))).join(' ');
  const ms = (v: number) => v.toFixed(2);
  const names: Record<keyof Runs, string> = {
    select1: 'SELECT 1',
    topup: 'ledger top-up',
    settle: 'settleTask',
    replay: 'settleTask (replay)',
  };
  const lines = (r: Runs) =>
    (Object.keys(names) as Array<keyof Runs>).map((k) => {
      const p = r[k];
      const l = p.latencyMs;
      return row([
        names[k],
        statements[k].at(-1) ?? '',
        p.concurrency,
        p.perSecond,
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.mean),
        ms(l.max),
      ]);
    });
  const ratioLines = (label: string, r: Ratios) => [
    `  ${label}: settleTask ÷ SELECT 1  p50 ×${r.settleOverSelect1.p50}  p99 ×${r.settleOverSelect1.p99}`,
    `  ${' '.repeat(label.length)}  settleTask ÷ top-up    p50 ×${r.settleOverTopup.p50}  p99 ×${r.settleOverTopup.p99}`,
    `  ${' '.repeat(label.length)}  replay ÷ settleTask    p50 ×${r.replayOverSettle.p50}  p99 ×${r.replayOverSettle.p99}`,
  ];
  const c = runs.concurrent.settle.concurrency;
  console.log(
    [
      '',
      `Settlement overhead (database: ${describe.database}; pool ${describe.pool}; ${n} calls per row)`,
      row(['', 'stmts', 'conc.', 'per s', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'max ms']),
      ...lines(runs.sequential),
      ...lines(runs.concurrent),
      ...ratioLines('sequential     ', ratios.sequential),
      ...ratioLines(`concurrency ${String(c).padEnd(3)}`, ratios.concurrent),
      '  stmts: statements (round trips, BEGIN/COMMIT included) one call sends, counted untimed',
      '',
      ...checks.map((k) => `  ${k.ok ? 'ok  ' : 'FAIL'} ${k.name.padEnd(17)} ${k.detail}`),
      '',
    ].join('\n'),
  );
}
