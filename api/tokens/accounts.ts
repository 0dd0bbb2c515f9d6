import type { PrismaClient } from '../../generated/prisma/client.js';
import type { AccountRef } from '../../lib/ledger/types.js';
import type { Principal } from '../auth/principal.js';
import { isUuid, notFound } from '../middleware/validate.js';

/**
 * An account as the tokens API names it (`accountId`):
 * - `client:<client id>` — a client's balance (available) and its funds held for tasks (held);
 * - `node:<node id>` — a node's earnings (available) and its withdrawals being paid out (held);
 * - `platform` — the platform's fee income (admins only).
 */
export type AccountName = { kind: 'client' | 'node'; ownerId: string } | { kind: 'platform' };

/** `client:<uuid>`, `node:<uuid>` or `platform`; anything else names no account. */
export function parseAccountId(raw: string): AccountName | null {
  if (raw === 'platform') return { kind: 'platform' };
  const [kind, ownerId, ...rest] = raw.split(':');
  if (rest.length > 0 || (kind !== 'client' && kind !== 'node') || !isUuid(ownerId)) return null;
  return { kind, ownerId: ownerId.toLowerCase() };
}

export function formatAccountId(account: AccountName): string {
  return account.kind === 'platform' ? 'platform' : `${account.kind}:${account.ownerId}`;
}

/** The ledger account behind a name (its hold or pending account is reported with it as `held`). */
export function ledgerAccount(account: AccountName): AccountRef {
  return account.kind === 'platform' ? { kind: 'platform_fees' } : account;
}

/**
 * The account `raw` names, if it exists and the caller may see it: a client its own, a node itself, a
 * node owner its nodes, an admin every one. Anything else is the same 404, so ids do not leak.
 */
export async function visibleAccount(
  prisma: PrismaClient,
  principal: Principal,
  raw: string,
): Promise<AccountName> {
  const account = parseAccountId(raw);
  if (!account) throw notFound('account');
  if (account.kind === 'platform') {
    if (principal.role === 'admin') return account;
    throw notFound('account');
  }
  const { kind, ownerId } = account;
  let visible: boolean;
  switch (principal.role) {
    case 'admin':
      visible =
        kind === 'client'
          ? (await prisma.client.count({ where: { id: ownerId } })) > 0
          : (await prisma.node.count({ where: { id: ownerId } })) > 0;
      break;
    case 'client':
      visible = kind === 'client' && ownerId === principal.clientId;
      break;
    case 'node':
      visible = kind === 'node' && ownerId === principal.nodeId;
      break;
    case 'node_owner':
      visible =
        kind === 'node' &&
        (await prisma.node.count({ where: { id: ownerId, ownerId: principal.nodeOwnerId } })) > 0;
      break;
  }
  if (!visible) throw notFound('account');
  return account;
}
