import { describe, expect, it } from 'vitest';
import { MODEL, startNode, useCoordinator, waitForStatus } from './helpers/coordinator.js';
import { auditFinishedTask } from './helpers/invariants.js';

// A dispatch to a host that is gone (the node never saw the task) does not use up one of the task's
// attempts: with TASK_MAX_ATTEMPTS=1 the task still reaches a live node after a lost attempt.
describe('lost dispatch', () => {
  const suite = useCoordinator({ TASK_MAX_ATTEMPTS: '1' });

  it('does not count against the attempts: the task completes on the next node', async () => {
    const { store } = suite.coordinator.services;
    // A node whose api process is still leased but no longer delivers anything: its host queue has
    // no worker, so the assignment cannot be delivered and the attempt ends as lost.
    const ghost = await suite.s.registerNode('ghost', 1);
    await store.presence.renewHost('ghost-host', 60_000);
    await store.presence.set(ghost.nodeId, 'ghost-host', 60_000);

    const r = await suite.s.clientA.post('/api/tasks', { model: MODEL.name, input: { prompt: 'lost' } });
    expect(r.status).toBe(202);
    const taskId = r.body.task.id as string;
    await waitForStatus(suite.s.clientA, taskId, ['assigned']);
    const live = await suite.s.registerNode('live', 1);
    const agent = await startNode(suite.coordinator.url, live.key, { capacity: 1 });
    try {
      const task = await waitForStatus(suite.s.clientA, taskId, ['completed', 'failed'], 45_000);
      expect(task.status, task.failureReason).toBe('completed');
      expect(task.nodeId).toBe(live.nodeId);
      expect(task.attemptHistory).toEqual([
        expect.objectContaining({ attemptNo: 1, nodeId: ghost.nodeId, outcome: 'lost' }),
        expect.objectContaining({ attemptNo: 2, nodeId: live.nodeId, outcome: 'completed' }),
      ]);
      expect(await auditFinishedTask(suite.coordinator.services.prisma, suite.temporal, taskId)).toEqual({
        status: 'completed',
        settlement: 'captured',
      });
    } finally {
      await store.presence.clearHost('ghost-host');
      await agent.stop();
    }
  });
});
