/**
 * The settlement bench's fixture (not timed): a priced model, one client topped up through the ledger,
 * nodes, and tasks inserted as completed and verified with their holds posted.
 */
import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.js';
import { postHold } from '../lib/ledger/task-postings.js';
import type { AccountRef, Ledger } from '../lib/ledger/types.js';
import { holdAmount, type PricingTerms, type Settlement, settle } from '../lib/pricing.js';
import { runPool } from './stats.js';

export const NODES = 4;
/** The README's worked example: 10 per request, 2 per input token, 5 per output token. */
export const MODEL = {
  name: 'bench-settle',
  version: '1',
  taskType: 'text_generation' as const,
  maxInputBytes: 10_000,
  maxOutputTokens: 512,
  pricePerRequest: 10n,
  pricePerInputToken: 2n,
  pricePerOutputToken: 5n,
};
const MAX_TOKENS = 100;

export interface FixtureTask {
  id: string;
  nodeId: string;
  hold: bigint;
  /** What settling it must pay, by the same pricing the activity uses. */
  expected: Settlement;
}

export interface Fixture {
  clientId: string;
  nodeIds: string[];
  tasks: FixtureTask[];
  initialTopup: bigint;
}

/**
 * A model, a client, nodes, and `count` tasks as the workflow leaves them just before settling:
 * completed, verified, one finished attempt with output and usage, the hold posted.
 */
export async function createFixture(
  prisma: PrismaClient,
  ledger: Ledger,
  terms: PricingTerms,
  count: number,
  concurrency: number,
): Promise<Fixture> {
  const model = await prisma.model.create({ data: MODEL });
  const client = await prisma.client.create({ data: { name: 'bench-settlement' } });
  const owner = await prisma.nodeOwner.create({ data: { name: 'bench-settlement' } });
  const nodeIds: string[] = [];
  for (let n = 0; n < NODES; n++) {
    const node = await prisma.node.create({
      data: { ownerId: owner.id, name: `bench-node-${n}`, capacity: 16, status: 'online' },
    });
    nodeIds.push(node.id);
  }

  const now = Date.now();
  const tasks: FixtureTask[] = [];
  const taskRows = [];
  const attemptRows = [];
  for (let i = 0; i < count; i++) {
    const id = `t_${randomUUID().replaceAll('-', '')}`;
    const nodeId = nodeIds[i % NODES] as string;
    const priority = i % 3;
    const input = { prompt: `Summarise benchmark document number ${i} in a few sentences.` };
    const params = { maxTokens: MAX_TOKENS };
    const words = 20 + (i % 40);
    const output = {
      text: Array.from({ length: words }, (_, w) => `word${w}`).join(' '),
      finishReason: 'stop',
    };
    const usage = { inputTokens: input.prompt.split(' ').length, outputTokens: words };
    const inputBytes = Buffer.byteLength(JSON.stringify(input));
    const hold = holdAmount(model, { inputBytes, maxOutputTokens: MAX_TOKENS, priority }, terms);
    const expected = settle(
      model,
      { hold, inputBytes, maxOutputTokens: MAX_TOKENS, priority },
      { ...usage, outputBytes: Buffer.byteLength(JSON.stringify(output)) },
      { qualityBps: 10_000, reputationBps: 10_000 },
      terms,
    );
    tasks.push({ id, nodeId, hold, expected });
    const assignedAt = new Date(now - 2_000);
    const finishedAt = new Date(now - 1_000);
    taskRows.push({
      id,
      clientId: client.id,
      modelId: model.id,
      holdAmount: hold,
      nodeShareBps: terms.nodeShareBps,
      input,
      params,
      priority,
      status: 'completed' as const,
      attempts: 1,
      nodeId,
      result: output,
      verdict: { checks: ['format', 'limits', 'usage'], quality: 1 },
      deadlineAt: new Date(now + 300_000),
      startedAt: assignedAt,
      completedAt: finishedAt,
    });
    attemptRows.push({
      taskId: id,
      attemptNo: 1,
      nodeId,
      outcome: 'completed' as const,
      assignedAt,
      acceptedAt: assignedAt,
      finishedAt,
      latencyMs: 1_000,
      output,
      usage,
    });
  }
  for (let i = 0; i < count; i += 250) {
    await prisma.task.createMany({ data: taskRows.slice(i, i + 250) });
    await prisma.taskAttempt.createMany({ data: attemptRows.slice(i, i + 250) });
  }

  const clientRef: AccountRef = { kind: 'client', ownerId: client.id };
  const initialTopup = tasks.reduce((sum, t) => sum + t.hold, 0n) + 1_000_000n;
  await ledger.post({
    idempotencyKey: 'bench:topup:initial',
    type: 'topup',
    legs: [{ from: { kind: 'external_topups' }, to: clientRef, amount: initialTopup }],
  });
  await runPool(count, concurrency, async (i) => {
    const t = tasks[i] as FixtureTask;
    await postHold(ledger, { taskId: t.id, clientId: client.id, amount: t.hold });
  });
  return { clientId: client.id, nodeIds, tasks, initialTopup };
}
