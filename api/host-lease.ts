import type { Services } from '../lib/services.js';

export interface HostLease {
  /** Why the lease is not held right now (the last renewal failed), or undefined while it is. */
  readonly problem: string | undefined;
  /** Stop renewing, then drop the lease and this host's presence entries and mark its nodes offline. */
  close(): Promise<void>;
}

type Deps = Pick<Services, 'config' | 'log' | 'prisma' | 'store'>;

/**
 * Hold this api process's lease in the store (`store.presence.renewHost`), renewed every third of
 * `HOST_LEASE_TTL_MS`. Nodes count as online only while their host's lease lives, so a killed api's
 * nodes stop being selected within the TTL. Each renewal also clears the hosts whose lease expired and
 * marks their nodes offline in the database, so a node's row follows its presence too.
 *
 * Resolves once what an earlier process with this host id left behind is cleared (its presence entries
 * would otherwise count as online again under the new lease) and the lease is taken: call it before
 * accepting node sockets. Waits, retrying, while the store is unavailable.
 * @example const lease = await holdHostLease(services, () => connectedNodeIds());
 */
export async function holdHostLease(deps: Deps, localNodes: () => string[]): Promise<HostLease> {
  const { config, log, prisma, store } = deps;
  const hostId = config.hostId;
  const ttlMs = config.HOST_LEASE_TTL_MS;
  const lease = log.child({ part: 'host-lease', hostId });

  const markOffline = async (nodeIds: string[]) => {
    if (nodeIds.length === 0) return;
    await prisma.node.updateMany({
      where: { id: { in: nodeIds }, status: 'online' },
      data: { status: 'offline' },
    });
  };

  for (let attempt = 1; ; attempt++) {
    try {
      // The in-process store died with the previous process, and its list of nodes with it; that
      // process was the only host, so every node still marked online was left by it.
      if (store.kind === 'memory') {
        await prisma.node.updateMany({ where: { status: 'online' }, data: { status: 'offline' } });
      } else {
        const stale = await store.presence.clearHost(hostId);
        await markOffline(stale);
        if (stale.length > 0)
          lease.info({ nodes: stale.length }, 'cleared the nodes a previous process left');
      }
      await store.presence.renewHost(hostId, ttlMs);
      break;
    } catch (err) {
      if (attempt === 1 || attempt % 10 === 0) lease.warn({ err, attempt }, 'cannot take the host lease yet');
      await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * attempt)));
    }
  }

  let problem: string | undefined;
  /** Renew the lease; false when the store could not. */
  const renew = async (): Promise<boolean> => {
    try {
      if (!(await store.presence.renewHost(hostId, ttlMs))) {
        // It lapsed (a store outage or a stall longer than the TTL), so another api may have cleared
        // this host: put back the nodes whose sockets are still here.
        lease.warn('the host lease had lapsed; taken again');
        const nodes = localNodes();
        for (const nodeId of nodes) await store.presence.set(nodeId, hostId, config.NODE_PRESENCE_TTL_MS);
        await prisma.node.updateMany({
          where: { id: { in: nodes }, status: 'offline' },
          data: { status: 'online' },
        });
      }
      if (problem) lease.info('host lease renewed again');
      problem = undefined;
      return true;
    } catch (err) {
      if (!problem) lease.warn({ err }, 'could not renew the host lease');
      problem = `this api's host lease could not be renewed: ${(err as Error).message}`;
      return false;
    }
  };
  const clearExpired = async () => {
    try {
      for (const [host, nodes] of await store.presence.clearExpiredHosts()) {
        await markOffline(nodes);
        lease.info(
          { expiredHost: host, nodes: nodes.length },
          'cleared the nodes of an api whose lease expired',
        );
      }
    } catch (err) {
      lease.warn({ err }, 'could not clear expired hosts');
    }
  };

  // One renewal at a time: a slow store skips ticks rather than queueing them.
  let busy: Promise<void> | undefined = clearExpired().finally(() => {
    busy = undefined;
  });
  const timer = setInterval(
    () => {
      busy ??= (async () => {
        if (await renew()) await clearExpired();
      })().finally(() => {
        busy = undefined;
      });
    },
    Math.max(1, Math.floor(ttlMs / 3)),
  );
  timer.unref();

  return {
    get problem() {
      return problem;
    },
    async close() {
      clearInterval(timer);
      await busy;
      try {
        await markOffline(await store.presence.clearHost(hostId));
      } catch (err) {
        lease.warn({ err }, 'could not drop the host lease; it expires by itself');
      }
    },
  };
}
