/** What the settlement bench checks after timing: the activity's answers, the balances, the task rows. */
import type { SettlementSummary } from '../activities/settlement.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Ledger } from '../lib/ledger/types.js';
import type { Fixture, FixtureTask } from './settlement-fixture.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The activity's answer for a task: posted on the first run, not on a replay; the expected figures. */
export function summaryProblem(t: FixtureTask, s: SettlementSummary | null, posted: boolean): string | null {
  const want = {
    price: t.expected.price.toString(),
    reward: t.expected.reward.toString(),
    fee: t.expected.fee.toString(),
    refund: t.expected.refund.toString(),
    posted,
  };
  // Only these fields: the summary may carry more than this benchmark knows about.
  const same = s !== null && (Object.keys(want) as Array<keyof typeof want>).every((k) => s[k] === want[k]);
  return same ? null : `task ${t.id}: got ${JSON.stringify(s)}, want ${JSON.stringify(want)}`;
}

export async function checkBalances(
  prisma: PrismaClient,
  ledger: Ledger,
  fixture: Fixture,
  extraTopups: bigint,
): Promise<{ checks: Check[]; balances: Record<string, string> }> {
  const sum = (f: (t: FixtureTask) => bigint, tasks = fixture.tasks) => tasks.reduce((a, t) => a + f(t), 0n);
  const paid = sum((t) => t.expected.price);
  const fees = sum((t) => t.expected.fee);
  const topups = fixture.initialTopup + extraTopups;

  const client = await ledger.balance({ kind: 'client', ownerId: fixture.clientId });
  const platform = await ledger.balance({ kind: 'platform_fees' });
  const external = await ledger.balance({ kind: 'external_topups' });
  const nodes = await Promise.all(
    fixture.nodeIds.map(async (nodeId) => ({
      nodeId,
      balance: await ledger.balance({ kind: 'node', ownerId: nodeId }),
      expected: sum(
        (t) => t.expected.reward,
        fixture.tasks.filter((t) => t.nodeId === nodeId),
      ),
    })),
  );
  const nodeTotal = nodes.reduce((a, n) => a + n.balance.total, 0n);
  const rows = await prisma.task.findMany({
    where: { id: { in: fixture.tasks.map((t) => t.id) } },
    select: { id: true, price: true, reward: true, fee: true },
  });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const wrongRows = fixture.tasks.filter((t) => {
    const r = byId.get(t.id);
    return r?.price !== t.expected.price || r.reward !== t.expected.reward || r.fee !== t.expected.fee;
  });

  const check = (name: string, ok: boolean, detail: string): Check => ({ name, ok, detail });
  const checks = [
    check(
      'client',
      client.available === topups - paid && client.held === 0n,
      `available ${client.available} = top-ups ${topups} − paid ${paid}; held ${client.held} = 0`,
    ),
    check(
      'nodes',
      nodes.every((n) => n.balance.available === n.expected && n.balance.held === 0n),
      `${nodes.map((n) => n.balance.available).join(' + ')} = ${nodeTotal} = rewards ${sum((t) => t.expected.reward)}`,
    ),
    check('platform', platform.available === fees, `fees ${platform.available} = ${fees}`),
    check(
      'conservation',
      client.total + nodeTotal + platform.total === -external.total && external.total === -topups,
      `client ${client.total} + nodes ${nodeTotal} + platform ${platform.total} = top-ups ${-external.total}`,
    ),
    check(
      'task rows',
      wrongRows.length === 0,
      `${fixture.tasks.length - wrongRows.length}/${fixture.tasks.length} carry their price, reward and fee`,
    ),
  ];
  const balances = {
    client: client.available.toString(),
    clientHeld: client.held.toString(),
    nodes: nodeTotal.toString(),
    platformFees: platform.available.toString(),
    externalTopups: external.total.toString(),
  };
  return { checks, balances };
}
