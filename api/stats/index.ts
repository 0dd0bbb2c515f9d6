import { Hono } from 'hono';
import { AttemptOutcome, TaskStatus } from '../../generated/prisma/client.js';
import { createLedger } from '../../lib/ledger/ledger.js';
import { authenticate, requireRole } from '../auth/index.js';
import type { AppDeps } from '../deps.js';

/**
 * `GET /api/stats` (admin): tasks by status, attempts by outcome, nodes total and online, models
 * total and active, token volume, fees, payouts and top-ups. Every status and outcome is present (0 when none), so dashboards need no defaults.
 */
export function statsRoutes(deps: Pick<AppDeps, 'prisma' | 'config' | 'log' | 'store'>) {
  const { prisma, store } = deps;
  const ledger = createLedger(prisma);
  return new Hono().get('/stats', authenticate(deps), requireRole('admin'), async (c) => {
    const [tasks, attempts, nodesTotal, modelsTotal, modelsActive, online, settled, fees, payouts, topups] =
      await Promise.all([
        prisma.task.groupBy({ by: ['status'], _count: { _all: true } }),
        prisma.taskAttempt.groupBy({ by: ['outcome'], _count: { _all: true } }),
        prisma.node.count(),
        prisma.model.count(),
        prisma.model.count({ where: { active: true } }),
        store.presence.list(),
        prisma.task.aggregate({
          _sum: { price: true, reward: true, fee: true },
          where: { price: { not: null } },
        }),
        ledger.balance({ kind: 'platform_fees' }),
        ledger.balance({ kind: 'external_payouts' }),
        ledger.balance({ kind: 'external_topups' }),
      ]);
    const tasksByStatus = countBy(
      Object.values(TaskStatus),
      tasks.map((t) => [t.status, t._count._all]),
    );
    const attemptsByOutcome = countBy(
      Object.values(AttemptOutcome),
      attempts.map((a) => [a.outcome, a._count._all]),
    );
    return c.json(
      {
        tasks: { total: sum(tasksByStatus), byStatus: tasksByStatus },
        attempts: { total: sum(attemptsByOutcome), byOutcome: attemptsByOutcome },
        nodes: { total: nodesTotal, online: online.size },
        models: { total: modelsTotal, active: modelsActive },
        // Minor units as decimal strings: settled task volume, fee income, paid-out withdrawals, top-ups.
        tokens: {
          volume: (settled._sum.price ?? 0n).toString(),
          nodeRewards: (settled._sum.reward ?? 0n).toString(),
          fees: (settled._sum.fee ?? 0n).toString(),
          feeBalance: fees.available.toString(),
          payouts: payouts.available.toString(),
          topups: (-topups.available).toString(),
        },
      },
      200,
    );
  });
}

function countBy<K extends string>(keys: K[], counts: [K, number][]): Record<K, number> {
  const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  for (const [k, n] of counts) out[k] = n;
  return out;
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
