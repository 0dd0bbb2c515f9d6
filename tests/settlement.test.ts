import { describe, expect, it } from 'vitest';
import { createSettlementActivities } from '../activities/settlement.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import { apiClient, MODEL, useCoordinator, waitForStatus } from './helpers/coordinator.js';

// Tokens through the task workflow: held at admission, captured once on verified success, released in
// full on failure, never paid twice.
describe('task settlement', () => {
  const suite = useCoordinator();
  const ledger = () => createLedger(suite.coordinator.services.prisma);
  const clientBalance = async (clientId: string) => ledger().balance({ kind: 'client', ownerId: clientId });

  it('holds the price cap, then pays the node its reward and the platform its fee, refunding the rest', async () => {
    const { nodeId } = await suite.node('earner');
    const before = await clientBalance(suite.s.clientAId);
    const r = await suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'pay me' } });
    expect(r.status).toBe(202);
    const held = BigInt(r.body.task.tokens.held);
    expect(held).toBeGreaterThan(0n);

    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    const { price, reward, fee } = task.tokens;
    expect(BigInt(reward) + BigInt(fee)).toBe(BigInt(price));
    expect(BigInt(price)).toBeLessThanOrEqual(held);

    const after = await clientBalance(suite.s.clientAId);
    expect(after.available).toBe(before.available - BigInt(price));
    expect(after.held).toBe(before.held);
    expect((await ledger().balance({ kind: 'node', ownerId: nodeId })).available).toBe(BigInt(reward));
    const description = await suite.temporal.workflow.getHandle(task.id).describe();
    expect((description.searchAttributes as Record<string, unknown[]>).TaskSettlement).toEqual(['captured']);
    const stats = (await suite.s.admin.get('/api/stats')).body.tokens;
    expect(BigInt(stats.volume)).toBeGreaterThanOrEqual(BigInt(price));
    expect(BigInt(stats.fees)).toBeGreaterThanOrEqual(BigInt(fee));
    expect(stats.feeBalance).toBe(stats.fees); // every fee so far sits in the platform account
    expect(BigInt(stats.topups)).toBeGreaterThan(0n);
    expect(await ledger().verify()).toEqual({ ok: true, problems: [] });
  });

  it('pays once however often the settle activity runs, also concurrently', async () => {
    const { nodeId } = await suite.node('paid-once');
    const r = await suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'once' } });
    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed']);
    const node = () => ledger().balance({ kind: 'node', ownerId: nodeId });
    const paid = (await node()).available;
    expect(paid).toBe(BigInt(task.tokens.reward));

    // As after a worker killed between the posting and the activity's completion: the activity runs again.
    const { settleTask } = createSettlementActivities(suite.coordinator.services);
    const again = await Promise.all([1, 2, 3].map(() => settleTask({ taskId: task.id, attemptNo: 1 })));
    for (const s of again) expect(s).toMatchObject({ posted: false, reward: task.tokens.reward });
    expect((await node()).available).toBe(paid);
    expect(await ledger().verify()).toEqual({ ok: true, problems: [] });
  });

  it('releases the whole hold when the task fails', async () => {
    await suite.node('always-fails', { backend: simulatedBackend({ failureRate: 1 }) });
    const before = await clientBalance(suite.s.clientBId);
    const r = await suite.s.clientB.post('/api/tasks', {
      model: MODEL.name,
      input: { prompt: 'doomed' },
      queueTimeoutMs: 1_500,
    });
    expect(r.status).toBe(202);
    expect((await clientBalance(suite.s.clientBId)).held).toBe(before.held + BigInt(r.body.task.tokens.held));
    const task = await waitForStatus(suite.s.clientB, r.body.task.id, ['failed']);
    expect(task.tokens.price).toBeNull();
    await expect.poll(() => clientBalance(suite.s.clientBId)).toEqual(before);
  });

  it('refuses a task the client cannot afford with 402, starting no workflow', async () => {
    const poor = await suite.s.admin.post('/api/admin/clients', { name: 'Poor' });
    const client = apiClient(suite.coordinator.url, poor.body.apiKey);
    const key = `poor-${Date.now()}`;
    const r = await client.post(
      '/api/tasks',
      { model: MODEL.name, input: { prompt: 'x' } },
      { 'Idempotency-Key': key },
    );
    expect(r.status).toBe(402);
    expect(r.body.error).toEqual({
      code: 'payment_required',
      message: expect.stringMatching(
        /^insufficient balance: this task holds up to \d+ tokens and 0 are available$/,
      ),
    });
    expect(
      await suite.coordinator.services.prisma.task.count({ where: { clientId: poor.body.client.id } }),
    ).toBe(0);
    const runs = [];
    for await (const wf of suite.temporal.workflow.list({ query: `TaskClient = '${poor.body.client.id}'` }))
      runs.push(wf);
    expect(runs).toEqual([]);
  });

  it('caps the hold at the client’s maxPrice and never charges more', async () => {
    await suite.node('capped');
    const r = await suite.s.clientA.post('/api/tasks', {
      model: MODEL.name,
      input: { prompt: 'cheap' },
      maxPrice: '5',
    });
    expect(r.status).toBe(202);
    expect(r.body.task.tokens.held).toBe('5'); // the worst case (10) is above the cap
    const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed']);
    expect(task.tokens.price).toBe('5');
  });
});
