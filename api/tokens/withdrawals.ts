import { createHash } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { withdrawalKeys } from '../../activities/withdrawals.js';
import { Prisma, type Withdrawal } from '../../generated/prisma/client.js';
import { createLedger } from '../../lib/ledger/ledger.js';
import { type AccountRef, InsufficientFundsError } from '../../lib/ledger/types.js';
import {
  type WithdrawalWorkflowInput,
  type withdrawalWorkflow,
  withdrawalWorkflowId,
} from '../../workflows/withdrawal.js';
import type { Principal } from '../auth/principal.js';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { notFound } from '../middleware/validate.js';
import type { WithdrawBody } from './schemas.js';
import { creditedTo } from './views.js';

type Deps = Pick<AppDeps, 'prisma' | 'config' | 'log' | 'temporal'>;
type NodePrincipal = Extract<Principal, { role: 'node' }>;

/**
 * The withdrawal id: a UUID derived from the node and its Idempotency-Key, so a retried request names
 * the same withdrawal (and workflow) and can never reserve twice.
 */
export function withdrawalIdFor(nodeId: string, idempotencyKey: string): string {
  const h = createHash('sha256').update(`withdrawal\n${nodeId}\n${idempotencyKey}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x80; // version 8: custom (hash-based) UUID
  h[8] = ((h[8] as number) & 0x3f) | 0x80; // RFC 9562 variant
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** Withdrawals as the api sees them: accept (reserve at once, then start the payout), and look up. */
export function withdrawalService({ prisma, config, log, temporal }: Deps) {
  const ledger = createLedger(prisma);
  const minimum = BigInt(config.WITHDRAWAL_MIN_AMOUNT);

  /**
   * Reserve the amount (node → node_pending) in the request itself, so concurrent withdrawals can never
   * overdraw (402 when the balance does not cover it), record the withdrawal, start its workflow.
   * The same Idempotency-Key returns the same withdrawal; with another body it is 409.
   */
  async function request(principal: NodePrincipal, key: string, body: WithdrawBody): Promise<Withdrawal> {
    if (body.amount < minimum) {
      throw new ApiError(400, 'validation_failed', `amount: the minimum withdrawal is ${minimum}`);
    }
    const id = withdrawalIdFor(principal.nodeId, key);
    const row =
      (await prisma.withdrawal.findUnique({ where: { id } })) ?? (await reserve(principal, id, key, body));
    if (row.amount !== body.amount || row.destination !== body.destination) {
      throw new ApiError(409, 'conflict', 'Idempotency-Key was already used for a different withdrawal');
    }
    if (row.status === 'pending') await startWorkflow(row);
    return row;
  }

  async function reserve(
    principal: NodePrincipal,
    id: string,
    idempotencyKey: string,
    body: WithdrawBody,
  ): Promise<Withdrawal> {
    // Money first, row second: a crash in between leaves the amount parked in node_pending (shown as
    // held), never a withdrawal without funds; the same request retried replays the reserve and records it.
    const { nodeId } = principal;
    const node: AccountRef = { kind: 'node', ownerId: nodeId };
    const reserveKey = withdrawalKeys.reserve(id);
    let created: boolean;
    try {
      ({ created } = await ledger.post({
        idempotencyKey: reserveKey,
        type: 'withdrawal_reserve',
        legs: [{ from: node, to: { kind: 'node_pending', ownerId: nodeId }, amount: body.amount }],
        reference: id,
        metadata: { nodeId, keyId: principal.keyId },
      }));
    } catch (err) {
      if (!(err instanceof InsufficientFundsError)) throw err;
      throw new ApiError(
        402,
        'payment_required',
        `insufficient balance: ${err.available} tokens available, ${body.amount} requested`,
      );
    }
    if (!created) {
      // A concurrent or crashed request with this key reserved first: it must have been for this amount.
      const earlier = await ledger.findTransaction(reserveKey);
      if (earlier && creditedTo(earlier, 'node_pending') !== body.amount) {
        throw new ApiError(409, 'conflict', 'Idempotency-Key was already used for a different withdrawal');
      }
    }
    try {
      return await prisma.withdrawal.create({
        data: { id, nodeId, idempotencyKey, amount: body.amount, destination: body.destination },
      });
    } catch (err) {
      if (!(err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002')) throw err;
      return prisma.withdrawal.findUniqueOrThrow({ where: { id } });
    }
  }

  async function startWorkflow(w: Withdrawal): Promise<void> {
    const input: WithdrawalWorkflowInput = {
      withdrawalId: w.id,
      nodeId: w.nodeId,
      amount: w.amount.toString(),
    };
    try {
      await temporal.client.workflow.start<typeof withdrawalWorkflow>('withdrawalWorkflow', {
        workflowId: withdrawalWorkflowId(w.id),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [input],
        // A retried request joins the running workflow; a finished one is never started again.
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      log.error({ err, withdrawalId: w.id }, 'could not start the withdrawal workflow');
      // The amount stays reserved: a retry with the same key starts the payout.
      throw new ApiError(
        503,
        'unavailable',
        'the withdrawal is reserved but its payout could not be started now; retry with the same Idempotency-Key',
      );
    }
  }

  /** The withdrawal, if the caller may see it (the node, its owner, an admin); otherwise 404. */
  async function find(principal: Principal, id: string): Promise<Withdrawal> {
    const w = await prisma.withdrawal.findUnique({ where: { id } });
    const visible =
      w !== null &&
      (principal.role === 'admin' ||
        (principal.role === 'node' && w.nodeId === principal.nodeId) ||
        (principal.role === 'node_owner' &&
          (await prisma.node.count({ where: { id: w.nodeId, ownerId: principal.nodeOwnerId } })) > 0));
    if (!visible) throw notFound('withdrawal');
    return w;
  }

  return { request, find };
}
