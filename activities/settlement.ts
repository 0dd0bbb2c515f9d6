import { ApplicationFailure } from '@temporalio/activity';
import { crashPoint, delayPoint } from '../lib/faults.js';
import { createLedger } from '../lib/ledger/ledger.js';
import { postRelease, settlementKey } from '../lib/ledger/task-postings.js';
import type { AccountRef, Leg } from '../lib/ledger/types.js';
import { settle } from '../lib/pricing.js';
import type { Services } from '../lib/services.js';
import { FailureType } from '../workflows/policies.js';

type Deps = Pick<Services, 'prisma' | 'config'>;

/** What a settled task paid, as decimal strings (workflow history carries no bigint). */
export interface SettlementSummary {
  price: string;
  reward: string;
  fee: string;
  refund: string;
  /** False when this run found the task already settled (a retried activity): nothing moved. */
  posted: boolean;
  /** True when the task's settlement is a capture (by this run or an earlier one), not a release. */
  captured: boolean;
}

const client = (ownerId: string): AccountRef => ({ kind: 'client', ownerId });
const clientHold = (ownerId: string): AccountRef => ({ kind: 'client_hold', ownerId });

export function createSettlementActivities({ prisma, config }: Deps) {
  const ledger = createLedger(prisma);

  return {
    /**
     * Capture a verified task's hold: the node's reward, the platform's fee, the rest back to the
     * client. Idempotent by `task:<id>:settle`: however often it runs, it pays once.
     */
    async settleTask(input: {
      taskId: string;
      attemptNo: number;
      /** The verdict's quality score, 0..1 (default 1). */
      quality?: number;
    }): Promise<SettlementSummary | null> {
      await delayPoint('before-settle');
      const task = await prisma.task.findUnique({
        where: { id: input.taskId },
        select: {
          clientId: true,
          input: true,
          params: true,
          priority: true,
          holdAmount: true,
          nodeShareBps: true,
          model: {
            select: {
              pricePerRequest: true,
              pricePerInputToken: true,
              pricePerOutputToken: true,
              maxOutputTokens: true,
            },
          },
          taskAttempts: {
            where: { attemptNo: input.attemptNo },
            select: { nodeId: true, output: true, usage: true },
          },
        },
      });
      const attempt = task?.taskAttempts[0];
      if (!task || !attempt) {
        throw ApplicationFailure.create({
          type: FailureType.TaskNotFound,
          message: `attempt ${input.attemptNo} of task ${input.taskId} not found`,
          nonRetryable: true,
        });
      }
      // Tasks admitted before the ledger (or free ones) hold nothing and settle nothing.
      if (!task.holdAmount || task.holdAmount <= 0n) return null;

      const usage = (attempt.usage ?? {}) as { inputTokens?: number; outputTokens?: number };
      const maxTokens =
        (task.params as { maxTokens?: number } | null)?.maxTokens ?? task.model.maxOutputTokens;
      const s = settle(
        task.model,
        {
          hold: task.holdAmount,
          inputBytes: Buffer.byteLength(JSON.stringify(task.input)),
          maxOutputTokens: maxTokens,
          priority: task.priority,
        },
        { ...usage, outputBytes: Buffer.byteLength(JSON.stringify(attempt.output ?? null)) },
        // Reputation is not tracked yet: every node counts as fully trusted (the upper bound).
        { qualityBps: Math.round((input.quality ?? 1) * 10_000), reputationBps: 10_000 },
        {
          prioritySurchargeBps: config.PRIORITY_SURCHARGE_BPS,
          nodeShareBps: task.nodeShareBps ?? config.NODE_SHARE_BPS,
        },
      );
      const all: Leg[] = [
        { from: clientHold(task.clientId), to: { kind: 'node', ownerId: attempt.nodeId }, amount: s.reward },
        { from: clientHold(task.clientId), to: { kind: 'platform_fees' }, amount: s.fee },
        { from: clientHold(task.clientId), to: client(task.clientId), amount: s.refund },
      ];
      const legs = all.filter((l) => l.amount > 0n);
      const { created } = await ledger.post({
        idempotencyKey: settlementKey(input.taskId),
        type: 'capture',
        reference: input.taskId,
        legs,
        metadata: { attemptNo: input.attemptNo, nodeId: attempt.nodeId },
      });
      crashPoint('after-settlement-posting');
      // A retry after a crash between the posting and this update finds the capture already posted.
      const captured =
        created || (await ledger.findTransaction(settlementKey(input.taskId)))?.type === 'capture';
      if (captured) {
        await prisma.task.update({
          where: { id: input.taskId },
          data: { price: s.price, reward: s.reward, fee: s.fee },
        });
      }
      return {
        price: s.price.toString(),
        reward: s.reward.toString(),
        fee: s.fee.toString(),
        refund: s.refund.toString(),
        posted: created,
        captured,
      };
    },

    /**
     * Give a failed or cancelled task's whole hold back to the client (same key as capture). True when
     * the task's settlement is a release, posted by this run or an earlier one (a retried activity).
     */
    async releaseTask(input: { taskId: string }): Promise<boolean> {
      const task = await prisma.task.findUnique({
        where: { id: input.taskId },
        select: { clientId: true, holdAmount: true },
      });
      if (!task?.holdAmount || task.holdAmount <= 0n) return false;
      const { created } = await postRelease(ledger, {
        taskId: input.taskId,
        clientId: task.clientId,
        amount: task.holdAmount,
      });
      return created || (await ledger.findTransaction(settlementKey(input.taskId)))?.type === 'release';
    },
  };
}
