import { afterEach, describe, expect, it } from 'vitest';
import { simulatedBackend } from '../node-agent/backends/simulated.js';
import { MODEL, useCoordinator, waitForStatus } from './helpers/coordinator.js';
import { auditFinishedTask, expectLedgerBalanced } from './helpers/invariants.js';

// The cancel rule (README, "Cancelling a task"): a cancel wins until a node's result has reached the
// task; from then on the result is verified, and a verified result completes the task and is paid.
// Whatever the moment, the row, the workflow, its search attributes and the ledger agree, and no
// attempt stays open. Each step after the result is held by a fault delay so the cancel lands in it.
describe('cancel at every point of the task path', () => {
  const suite = useCoordinator();

  afterEach(() => {
    delete process.env.NEUROGRID_FAULT_DELAYS;
  });

  const submit = async () => {
    const r = await suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'cancel me' } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.task.id as string;
  };
  const cancel = async (taskId: string) => {
    const r = await suite.s.clientA.post(`/api/tasks/${taskId}/cancel`);
    expect([202, 409], JSON.stringify(r.body)).toContain(r.status);
    return r;
  };
  const audit = (taskId: string) =>
    auditFinishedTask(suite.coordinator.services.prisma, suite.temporal, taskId);
  const balance = async () =>
    (await suite.s.clientA.get(`/api/tokens/balance/client:${suite.s.clientAId}`)).body;

  it('before selection (no node online): cancelled, whole hold released, no attempt', async () => {
    const before = await balance();
    const taskId = await submit();
    await cancel(taskId);
    const task = await waitForStatus(suite.s.clientA, taskId, ['cancelled', 'failed', 'completed']);
    expect(task.status).toBe('cancelled');
    expect(task.attemptHistory).toEqual([]);
    expect(await audit(taskId)).toEqual({ status: 'cancelled', settlement: 'released' });
    expect(await balance()).toEqual(before);
  });

  it('waiting for accept: cancelled, the attempt closed as cancelled, the node told', async () => {
    const n = await suite.node('no-accept', { behaviour: { onAssign: () => 'ignore' } });
    const cancelled: string[] = [];
    n.agent.on('cancelled', ({ attemptId }: { attemptId: string }) => cancelled.push(attemptId));
    const taskId = await submit();
    await waitForStatus(suite.s.clientA, taskId, ['assigned']);
    await cancel(taskId);
    const task = await waitForStatus(suite.s.clientA, taskId, ['cancelled', 'failed', 'completed']);
    expect(task.status).toBe('cancelled');
    expect(task.attemptHistory).toEqual([expect.objectContaining({ attemptNo: 1, outcome: 'cancelled' })]);
    expect(await audit(taskId)).toEqual({ status: 'cancelled', settlement: 'released' });
  });

  it('running: cancelled, released, and the node gets its slot back', async () => {
    const n = await suite.node('hangs', { capacity: 1, behaviour: { afterAccept: 'hang' } });
    const taskId = await submit();
    await waitForStatus(suite.s.clientA, taskId, ['running']);
    await cancel(taskId);
    await waitForStatus(suite.s.clientA, taskId, ['cancelled']);
    expect(await audit(taskId)).toEqual({ status: 'cancelled', settlement: 'released' });
    // Capacity 1: a leaked open attempt would leave this node unselectable for ever.
    await n.agent.stop();
    await suite.node('after-hang', { capacity: 1 });
    const next = await submit();
    expect((await waitForStatus(suite.s.clientA, next, ['completed', 'failed'])).status).toBe('completed');
  });

  it.each([
    ['between result and verification', 'before-verify'],
    ['during settlement', 'before-settle'],
    ['during completion', 'before-complete'],
  ])('%s: the verified result wins, the task completes and is paid once', async (_what, point) => {
    process.env.NEUROGRID_FAULT_DELAYS = `${point}=1500`;
    const n = await suite.node(`held-${point}`, { capacity: 1 });
    const taskId = await submit();
    await waitForStatus(suite.s.clientA, taskId, ['verifying']);
    if (point !== 'before-verify') {
      // The activity before this point has run: wait until the cancel can only land in the held step.
      await new Promise((r) => setTimeout(r, 300));
    }
    const r = await cancel(taskId);
    expect(r.status).toBe(202);
    const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'cancelled', 'failed']);
    expect(task.status).toBe('completed');
    expect(task.nodeId).toBe(n.nodeId);
    expect(await audit(taskId)).toEqual({ status: 'completed', settlement: 'captured' });
    const result = await suite.s.clientA.get(`/api/tasks/${taskId}/result`);
    expect(result.body.result).toEqual(expect.objectContaining({ text: expect.any(String) }));
    // Cancelling a finished task is refused.
    expect((await suite.s.clientA.post(`/api/tasks/${taskId}/cancel`)).status).toBe(409);
  });

  it('16 tasks cancelled 0-750 ms after the node answers: every one keeps the rule', async () => {
    // A node that answers at once, and a client that cancels at a random moment after the result.
    const n = await suite.node('instant', { capacity: 16, backend: simulatedBackend({ latencyMs: 0 }) });
    const outcomes = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const taskId = await submit();
        await new Promise<void>((resolve) => {
          const onDone = ({ attemptId }: { attemptId: string }) => {
            if (!attemptId.startsWith(`${taskId}:`)) return;
            n.agent.off('completed', onDone);
            resolve();
          };
          n.agent.on('completed', onDone);
        });
        await new Promise((r) => setTimeout(r, Math.random() * 750));
        await cancel(taskId);
        await waitForStatus(suite.s.clientA, taskId, ['completed', 'cancelled', 'failed']);
        return audit(taskId);
      }),
    );
    for (const o of outcomes) {
      expect(o.status === 'completed' ? 'captured' : 'released').toBe(o.settlement);
      expect(o.status).not.toBe('failed');
    }
    const openAttempts = await suite.coordinator.services.prisma.taskAttempt.count({
      where: { nodeId: n.nodeId, outcome: { in: ['pending', 'accepted'] } },
    });
    expect(openAttempts).toBe(0);
    await expectLedgerBalanced(suite.coordinator.services.prisma);
  });
});
