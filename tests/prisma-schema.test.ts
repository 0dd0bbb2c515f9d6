import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LedgerAccountKind,
  LedgerTransactionType,
  NodeStatus,
  type PrismaClient,
} from '../generated/prisma/client.js';
import { createPrisma, pingDatabase } from '../lib/db/client.js';
import { ACCOUNT_KINDS, TRANSACTION_TYPES } from '../lib/ledger/types.js';
import { ATTEMPT_OUTCOMES, TASK_STATUSES } from '../workflows/task-status.js';
import { createTestDatabase, type TestDatabase, testBackends } from './helpers/database.js';

/**
 * Runs the generated client against the hand-written migration SQL: a column, type, enum value or
 * default that differs between prisma/schema.prisma and the migrations makes one of these queries fail.
 */
describe.each(testBackends)('Prisma schema on a migrated %s database', (backend) => {
  let db: TestDatabase;
  let prisma: PrismaClient;

  beforeAll(async () => {
    db = await createTestDatabase({ backend, migrated: true });
    prisma = createPrisma(db.url, { max: 2 });
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const uniq = () => Math.random().toString(36).slice(2, 10);

  async function seed() {
    const owner = await prisma.nodeOwner.create({ data: { name: 'Acme GPUs' } });
    const node = await prisma.node.create({
      data: {
        ownerId: owner.id,
        name: 'gpu-1',
        capacity: 4,
        hardware: { gpus: [{ model: 'A100', memoryMb: 81_920 }] },
        models: { create: [{ modelName: 'llama', modelVersion: '3.1-8b' }] },
      },
    });
    const client = await prisma.client.create({ data: { name: 'Tenant' } });
    const model = await prisma.model.create({
      data: {
        name: `llama-${uniq()}`,
        version: '3.1-8b',
        taskType: 'text_generation',
        maxInputBytes: 65_536,
        maxOutputTokens: 1_024,
        pricePerRequest: 10n,
        pricePerInputToken: 2n,
        pricePerOutputToken: 9_007_199_254_740_993n, // beyond Number.MAX_SAFE_INTEGER
      },
    });
    return { owner, node, client, model };
  }

  it('answers a ping', async () => {
    expect(await pingDatabase(prisma)).toBeGreaterThanOrEqual(0);
  });

  it('creates and reads every model with its defaults', async () => {
    const { owner, node, client, model } = await seed();
    const task = await prisma.task.create({
      data: {
        id: `task-${uniq()}`,
        clientId: client.id,
        modelId: model.id,
        idempotencyKey: 'key-1',
        input: { prompt: 'Hello' },
        deadlineAt: new Date(Date.now() + 60_000),
        nodeId: node.id,
      },
    });
    await prisma.taskAttempt.create({ data: { taskId: task.id, attemptNo: 1, nodeId: node.id } });
    await prisma.nodeMetricSample.create({
      data: { nodeId: node.id, load: 0.5, gpuUtil: 0.75, memUsedMb: 2_048, inflight: 1, payload: { t: 1 } },
    });
    await prisma.apiKey.create({
      data: { prefix: `ng_${uniq()}`, hash: 'a'.repeat(64), role: 'client', clientId: client.id },
    });
    await prisma.apiKey.create({
      data: {
        prefix: `ng_${uniq()}`,
        hash: 'b'.repeat(64),
        role: 'node_owner',
        nodeOwnerId: owner.id,
        label: 'ops',
      },
    });
    await prisma.apiKey.create({
      data: { prefix: `ng_${uniq()}`, hash: 'c'.repeat(64), role: 'node', nodeId: node.id },
    });
    await prisma.apiKey.create({ data: { prefix: `ng_${uniq()}`, hash: 'd'.repeat(64), role: 'admin' } });

    const read = await prisma.task.findUniqueOrThrow({
      where: { id: task.id },
      include: {
        client: { include: { apiKeys: true } },
        model: true,
        node: {
          include: {
            owner: { include: { apiKeys: true } },
            models: true,
            metricSamples: true,
            apiKeys: true,
          },
        },
        taskAttempts: true,
      },
    });
    expect(read).toMatchObject({
      status: 'queued',
      priority: 0,
      attempts: 0,
      params: {},
      input: { prompt: 'Hello' },
      result: null,
      verdict: null,
      failureReason: null,
      startedAt: null,
      completedAt: null,
      client: { status: 'active', apiKeys: [{ role: 'client', revokedAt: null, lastUsedAt: null }] },
      model: { active: true, pricePerRequest: 10n, pricePerOutputToken: 9_007_199_254_740_993n },
      node: {
        status: 'registered',
        lastSeenAt: null,
        hardware: { gpus: [{ model: 'A100', memoryMb: 81_920 }] },
        owner: { name: 'Acme GPUs', apiKeys: [{ role: 'node_owner', label: 'ops' }] },
        models: [{ modelName: 'llama', modelVersion: '3.1-8b' }],
        metricSamples: [{ load: 0.5, gpuUtil: 0.75, memUsedMb: 2_048, inflight: 1, payload: { t: 1 } }],
        apiKeys: [{ role: 'node' }],
      },
      taskAttempts: [{ attemptNo: 1, outcome: 'pending', error: null, acceptedAt: null, latencyMs: null }],
    });
    expect(read.createdAt).toBeInstanceOf(Date);
    expect(read.updatedAt).toBeInstanceOf(Date);
    expect(read.node?.metricSamples[0]?.id).toBeTypeOf('bigint');
    expect(read.id).toBe(task.id);
    expect(owner.id).toMatch(/^[0-9a-f-]{36}$/); // generated by the database (gen_random_uuid)
    expect(await prisma.apiKey.count({ where: { role: 'admin' } })).toBeGreaterThanOrEqual(1);
  });

  it('accepts every enum value the schema declares', async () => {
    const { node, client, model } = await seed();
    await prisma.client.update({ where: { id: client.id }, data: { status: 'suspended' } });
    await prisma.model.update({ where: { id: model.id }, data: { taskType: 'embedding', active: false } });
    for (const status of Object.values(NodeStatus)) {
      await prisma.node.update({ where: { id: node.id }, data: { status, lastSeenAt: new Date() } });
    }
    expect(Object.values(NodeStatus)).toHaveLength(4);
    const task = await prisma.task.create({
      data: {
        id: `task-${uniq()}`,
        clientId: client.id,
        modelId: model.id,
        input: {},
        deadlineAt: new Date(),
      },
    });
    // The domain's closed unions must all be storable: a value missing from the database enum fails here.
    const statuses = TASK_STATUSES.filter((st) => st !== 'queued');
    for (const status of statuses) {
      await prisma.task.update({
        where: { id: task.id },
        data: { status, attempts: { increment: 1 }, result: { text: 'ok' }, verdict: { ok: true } },
      });
    }
    const outcomes = ATTEMPT_OUTCOMES.filter((o) => o !== 'pending');
    for (const [i, outcome] of outcomes.entries()) {
      await prisma.taskAttempt.create({
        data: {
          taskId: task.id,
          attemptNo: i + 1,
          nodeId: node.id,
          outcome,
          finishedAt: new Date(),
          latencyMs: 5,
          output: { text: 'hi' },
          outputHash: 'ab'.repeat(32),
          usage: { inputTokens: 1, outputTokens: 2 },
        },
      });
    }
    expect(await prisma.taskAttempt.count({ where: { taskId: task.id } })).toBe(outcomes.length);
    expect((await prisma.task.findUniqueOrThrow({ where: { id: task.id } })).attempts).toBe(statuses.length);
  });

  it('raises P2002 on every unique constraint', async () => {
    const { node, client, model } = await seed();
    const task = await prisma.task.create({
      data: {
        id: `task-${uniq()}`,
        clientId: client.id,
        modelId: model.id,
        idempotencyKey: 'same',
        requestHash: 'cd'.repeat(32),
        input: {},
        deadlineAt: new Date(),
      },
    });
    await prisma.taskAttempt.create({ data: { taskId: task.id, attemptNo: 1, nodeId: node.id } });
    const key = await prisma.apiKey.create({
      data: { prefix: `ng_${uniq()}`, hash: 'e'.repeat(64), role: 'admin' },
    });

    const duplicates: Array<[string, () => Promise<unknown>]> = [
      ['task id', () => prisma.task.create({ data: { ...taskData(), id: task.id } })],
      ['task idempotency key', () => prisma.task.create({ data: { ...taskData(), idempotencyKey: 'same' } })],
      [
        'attempt number',
        () => prisma.taskAttempt.create({ data: { taskId: task.id, attemptNo: 1, nodeId: node.id } }),
      ],
      [
        'api key prefix',
        () => prisma.apiKey.create({ data: { prefix: key.prefix, hash: 'f', role: 'admin' } }),
      ],
      [
        'node model',
        () =>
          prisma.nodeModel.create({ data: { nodeId: node.id, modelName: 'llama', modelVersion: '3.1-8b' } }),
      ],
      [
        'model name and version',
        () =>
          prisma.model.create({
            data: {
              name: model.name,
              version: model.version,
              taskType: 'embedding',
              maxInputBytes: 1,
              maxOutputTokens: 1,
            },
          }),
      ],
    ];
    for (const [what, create] of duplicates) {
      await expect(create(), what).rejects.toMatchObject({ code: 'P2002' });
    }
    // NULL idempotency keys never collide.
    await prisma.task.create({ data: taskData() });
    await prisma.task.create({ data: taskData() });

    function taskData() {
      return {
        id: `task-${uniq()}`,
        clientId: client.id,
        modelId: model.id,
        input: {},
        deadlineAt: new Date(),
      };
    }
  });

  it('creates and reads the ledger models, with every kind and type', async () => {
    expect(Object.values(LedgerAccountKind)).toEqual([...ACCOUNT_KINDS]);
    expect(Object.values(LedgerTransactionType)).toEqual([...TRANSACTION_TYPES]);
    const ownerId = randomUUID();
    const accounts = await Promise.all(
      ACCOUNT_KINDS.map((kind) => {
        const system = kind.startsWith('platform') || kind.startsWith('external');
        const owner = system ? { ownerKey: '-' } : { ownerId, ownerKey: ownerId };
        return prisma.ledgerAccount.upsert({
          where: { kind_ownerKey: { kind, ownerKey: owner.ownerKey } },
          create: { kind, ...owner },
          update: {},
        });
      }),
    );
    const [client, , , , , topups] = accounts;
    const original = await prisma.ledgerTransaction.create({
      data: {
        idempotencyKey: `schema:${randomUUID()}`,
        type: 'topup',
        postings: {
          create: [
            {
              accountId: client?.id as string,
              amount: 9_007_199_254_740_993n,
              balanceAfter: 9_007_199_254_740_993n,
            },
            { accountId: topups?.id as string, amount: -9_007_199_254_740_993n, balanceAfter: -1n },
          ],
        },
      },
    });
    for (const type of TRANSACTION_TYPES) {
      await prisma.ledgerTransaction.create({
        data: {
          idempotencyKey: `schema:${randomUUID()}`,
          type,
          reference: `ref-${type}`,
          metadata: { type },
          ...(type === 'reversal' ? { reversesId: original.id } : {}),
        },
      });
    }

    const read = await prisma.ledgerTransaction.findUniqueOrThrow({
      where: { id: original.id },
      include: { postings: { include: { account: true }, orderBy: { id: 'asc' } }, reversedBy: true },
    });
    expect(read).toMatchObject({
      type: 'topup',
      reference: null,
      metadata: {},
      reversesId: null,
      reversedBy: { type: 'reversal', reference: 'ref-reversal', metadata: { type: 'reversal' } },
      postings: [
        {
          amount: 9_007_199_254_740_993n,
          account: { kind: 'client', ownerId, ownerKey: ownerId, balance: 0n },
        },
        {
          amount: -9_007_199_254_740_993n,
          balanceAfter: -1n,
          account: { kind: 'external_topups', ownerId: null },
        },
      ],
    });
    expect(read.createdAt).toBeInstanceOf(Date);
    expect(read.postings[0]?.id).toBeTypeOf('bigint');
    expect(read.postings[0]?.createdAt).toBeInstanceOf(Date);
    expect(client?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('raises P2002 on the ledger unique constraints, system accounts included', async () => {
    const ownerId = randomUUID();
    await prisma.ledgerAccount.create({ data: { kind: 'node', ownerId, ownerKey: ownerId } });
    await prisma.ledgerAccount.upsert({
      where: { kind_ownerKey: { kind: 'platform_fees', ownerKey: '-' } },
      create: { kind: 'platform_fees', ownerKey: '-' },
      update: {},
    });
    const original = await prisma.ledgerTransaction.create({
      data: { idempotencyKey: `dup:${ownerId}`, type: 'hold' },
    });
    await prisma.ledgerTransaction.create({
      data: { idempotencyKey: `rev:${ownerId}`, type: 'reversal', reversesId: original.id },
    });

    const duplicates: Array<[string, () => Promise<unknown>]> = [
      [
        'owned account',
        () => prisma.ledgerAccount.create({ data: { kind: 'node', ownerId, ownerKey: ownerId } }),
      ],
      [
        'system account',
        () => prisma.ledgerAccount.create({ data: { kind: 'platform_fees', ownerKey: '-' } }),
      ],
      [
        'idempotency key',
        () => prisma.ledgerTransaction.create({ data: { idempotencyKey: `dup:${ownerId}`, type: 'hold' } }),
      ],
      [
        'second reversal',
        () =>
          prisma.ledgerTransaction.create({
            data: { idempotencyKey: `rev2:${ownerId}`, type: 'reversal', reversesId: original.id },
          }),
      ],
    ];
    for (const [what, create] of duplicates) {
      await expect(create(), what).rejects.toMatchObject({ code: 'P2002' });
    }
  });
});
