/** The chaos loop: every few seconds one random component is SIGKILLed and, after a pause, restarted. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PrismaClient } from '../generated/prisma/client.js';
import { type Cluster, type Kind, startWithRetries } from './chaos-cluster.js';
import { type Options, pick, rand } from './chaos-options.js';
import { progress, round } from './measure.js';

export interface KillRecord {
  no: number;
  component: string;
  kind: Kind;
  /** Epoch ms of the SIGKILL. */
  at: number;
  /** Seconds since the load started. */
  atS: number;
  /** How long it stayed down before the restart began. */
  downMs: number;
  /** Restart until ready again (api: health 200; worker: "worker running"; node: connected; Temporal: namespace answers). */
  restartMs: number | null;
  /** Kill until ready again. */
  outageMs: number | null;
  /** Kill until the next task completion anywhere (from the tasks' completedAt). */
  recoveryMs: number | null;
  error?: string;
}

/** Starts killing; `stop()` ends the loop after the restart in progress, if any. */
export function startChaos(opts: Options, cluster: Cluster, loadStart: number) {
  const kills: KillRecord[] = [];
  let chaosOn = true;
  const candidates = (kind: Kind) =>
    cluster.components.filter((c) => c.kind === kind && !cluster.busy.has(c.name));
  const chaos = (async () => {
    while (chaosOn && !cluster.stopping) {
      await sleep(opts['kill-every-ms'] * rand(0.5, 1.5));
      if (!chaosOn || cluster.stopping) break;
      const kinds = opts.kinds.filter((k) => candidates(k).length > 0);
      if (kinds.length === 0) continue;
      const victim = pick(candidates(pick(kinds)));
      cluster.busy.add(victim.name);
      const kill: KillRecord = {
        no: kills.length + 1,
        component: victim.name,
        kind: victim.kind,
        at: Date.now(),
        atS: round((Date.now() - loadStart) / 1000, 1),
        downMs: Math.round(rand(opts['restart-min-ms'], opts['restart-max-ms'])),
        restartMs: null,
        outageMs: null,
        recoveryMs: null,
      };
      kills.push(kill);
      try {
        await victim.kill();
        progress(`kill #${kill.no}: ${victim.name} (SIGKILL), restarting in ${kill.downMs} ms`);
        await sleep(kill.downMs);
        const restartAt = Date.now();
        await startWithRetries(victim, progress, () => cluster.stopping);
        kill.restartMs = Date.now() - restartAt;
        kill.outageMs = Date.now() - kill.at;
        progress(`kill #${kill.no}: ${victim.name} ready again after ${kill.restartMs} ms`);
      } catch (err) {
        kill.error = (err as Error).message.split('\n')[0];
        progress(`kill #${kill.no}: ${victim.name} did not come back: ${kill.error}`);
      } finally {
        cluster.busy.delete(victim.name);
      }
    }
  })();
  return {
    kills,
    stop: async () => {
      chaosOn = false;
      await chaos;
    },
  };
}

/** Recovery: from each kill to the next completed task. */
export async function measureRecovery(prisma: PrismaClient, kills: KillRecord[]) {
  const completions = (
    await prisma.task.findMany({ where: { status: 'completed' }, select: { completedAt: true } })
  )
    .map((t) => t.completedAt?.getTime() ?? 0)
    .sort((a, b) => a - b);
  for (const k of kills) {
    const next = completions.find((t) => t > k.at);
    k.recoveryMs = next === undefined ? null : next - k.at;
  }
}
