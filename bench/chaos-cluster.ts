import { setTimeout as sleep } from 'node:timers/promises';
import { type DevServer, startDevServer } from '../lib/temporal/dev-server.js';
import { type Spawned, spawnEntry } from '../tests/helpers/processes.js';

/**
 * The parts of a coordinator deployment the chaos run kills and restarts, each one a real process:
 * api and worker entry points, `neurogrid-node` agents, and the Temporal dev server.
 */
export type Kind = 'api' | 'worker' | 'node' | 'temporal';
export const KINDS: readonly Kind[] = ['api', 'worker', 'node', 'temporal'];

/** Output lines kept per process (for failure messages); older lines are dropped. */
const KEEP_LINES = 200;
const READY_TIMEOUT_MS = 90_000;

export interface UnexpectedExit {
  component: string;
  at: number;
  code: number | null;
  signal: string | null;
  lastLines: string[];
}

export interface Component {
  name: string;
  kind: Kind;
  /** Spawn it and resolve once it is ready (api: health 200; worker: "worker running"; node: connected). */
  start(): Promise<void>;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Stop it for good (end of the run). */
  stop(): Promise<void>;
  /** The live process ids, for the last-resort exit handler. */
  pids(): number[];
  running(): boolean;
  /** Started, ready, and not exited since. */
  ready(): boolean;
  /** Drop all but the last lines of the process's output (a long run logs a lot). */
  trimOutput(): void;
}

/** Shared by every component: who is stopping, who exited on its own, and how to say so. */
export class Cluster {
  readonly components: Component[] = [];
  readonly unexpectedExits: UnexpectedExit[] = [];
  stopping = false;
  /** Components being restarted (by the chaos loop or after an unexpected exit): never killed then. */
  readonly busy = new Set<string>();

  constructor(private readonly say: (line: string) => void) {}

  add(component: Component): Component {
    this.components.push(component);
    return component;
  }

  /** A process that died without being killed by us: record it and bring it back (a supervisor's job). */
  exitedOnItsOwn(component: Component, exit: Omit<UnexpectedExit, 'component' | 'at'>) {
    if (this.stopping) return;
    this.unexpectedExits.push({ component: component.name, at: Date.now(), ...exit });
    this.say(
      `${component.name} exited on its own (${exit.signal ?? `code ${exit.code}`}); restarting it. Last output:\n  ${exit.lastLines.slice(-5).join('\n  ')}`,
    );
    if (this.busy.has(component.name)) return;
    this.busy.add(component.name);
    void (async () => {
      try {
        await sleep(1_000);
        if (!this.stopping) await startWithRetries(component, this.say, () => this.stopping);
      } catch (err) {
        this.say(`${component.name} could not be restarted: ${(err as Error).message.split('\n')[0]}`);
      } finally {
        this.busy.delete(component.name);
      }
    })();
  }

  /** Stop every component (nodes first, Temporal last). */
  async stopAll() {
    this.stopping = true;
    const order: Kind[] = ['node', 'api', 'worker', 'temporal'];
    for (const kind of order) {
      await Promise.all(
        this.components.filter((c) => c.kind === kind).map((c) => c.stop().catch(() => undefined)),
      );
    }
  }

  /** Synchronous last resort (process 'exit'): SIGKILL whatever is still running. */
  killAllNow() {
    for (const c of this.components) {
      for (const pid of c.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
}

/** Start, retrying a start that fails (e.g. the process exits because a dependency is still down). */
export async function startWithRetries(
  component: Component,
  say: (line: string) => void,
  stopping: () => boolean,
  tries = 5,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await component.start();
      return;
    } catch (err) {
      if (attempt >= tries || stopping()) throw err;
      say(`${component.name} failed to start (try ${attempt}): ${(err as Error).message.split('\n')[0]}`);
      await component.kill().catch(() => undefined);
      await sleep(1_000 * attempt);
    }
  }
}

/** A process component built on a spawn function; watches for exits it did not cause. */
function processComponent(
  cluster: Cluster,
  name: string,
  kind: Kind,
  launch: (track: (proc: Spawned) => void) => Promise<void>,
): Component {
  let current: Spawned | undefined;
  let ready = false;
  const expected = new WeakSet<Spawned>();
  const component: Component = {
    name,
    kind,
    async start() {
      ready = false;
      let proc: Spawned | undefined;
      try {
        await launch((p) => {
          proc = p;
          current = p;
        });
      } catch (err) {
        if (proc) {
          expected.add(proc);
          await proc.kill('SIGKILL');
        }
        throw err;
      }
      if (!proc) throw new Error(`${name}: nothing was spawned`);
      const started = proc;
      ready = true;
      void started.exited.then(() => {
        if (expected.has(started)) return;
        const { exitCode: code, signalCode: signal } = started.child;
        cluster.exitedOnItsOwn(component, { code, signal, lastLines: started.lines.slice(-20) });
      });
    },
    async kill() {
      const proc = current;
      if (!proc) return;
      expected.add(proc);
      await proc.kill('SIGKILL');
    },
    async stop() {
      const proc = current;
      if (!proc) return;
      expected.add(proc);
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5_000);
        await proc.kill('SIGTERM');
        clearTimeout(timer);
      }
    },
    pids: () => (current?.child.pid && component.running() ? [current.child.pid] : []),
    running: () => !!current && current.child.exitCode === null && current.child.signalCode === null,
    ready: () => ready && component.running(),
    trimOutput() {
      // Past the ready line only failure messages read the output: keep the tail.
      if (current) current.lines.splice(0, Math.max(0, current.lines.length - KEEP_LINES));
    },
  };
  return component;
}

/** An api process (api/main.ts) on a fixed port and HOST_ID; ready once `GET /api/health` answers 200. */
export function apiComponent(cluster: Cluster, name: string, env: Record<string, string>, url: string) {
  return processComponent(cluster, name, 'api', async (track) => {
    const proc = spawnEntry('api/main.ts', { ...env, LOG_LEVEL: 'info' });
    track(proc);
    await proc.waitFor((l) => l.includes('"api listening"'), READY_TIMEOUT_MS);
    await waitHealthy(url, READY_TIMEOUT_MS, proc);
  });
}

/** A worker process (worker/main.ts); ready once it logs "worker running". */
export function workerComponent(cluster: Cluster, name: string, env: Record<string, string>) {
  return processComponent(cluster, name, 'worker', async (track) => {
    const proc = spawnEntry('worker/main.ts', { ...env, LOG_LEVEL: 'info' });
    track(proc);
    await proc.waitFor((l) => l.includes('"worker running"'), READY_TIMEOUT_MS);
  });
}

/** `neurogrid-node` (node-agent/cli.ts) with its flags; ready once it logs that it connected. */
export function nodeComponent(cluster: Cluster, name: string, args: string[], env: Record<string, string>) {
  return processComponent(cluster, name, 'node', async (track) => {
    const proc = spawnCli('node-agent/cli.ts', args, env);
    track(proc);
    await proc.waitFor((l) => l.includes('"connected to the coordinator"'), READY_TIMEOUT_MS);
  });
}

/** The Temporal dev server on a SQLite file and a fixed port, so a restart finds its state. */
export function temporalComponent(options: {
  cliPath: string;
  namespace: string;
  port: number;
  dbFile: string;
}): Component & { address: string } {
  let server: DevServer | undefined;
  const gone = async (pid: number) => {
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await sleep(50);
    }
  };
  return {
    name: 'temporal',
    kind: 'temporal',
    address: `127.0.0.1:${options.port}`,
    async start() {
      server = await startDevServer({
        cliPath: options.cliPath,
        namespace: options.namespace,
        port: options.port,
        uiPort: 0,
        headless: true,
        dbFile: options.dbFile,
      });
    },
    async kill() {
      const pid = server?.pid;
      server = undefined;
      if (!pid) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
      await gone(pid);
    },
    async stop() {
      await server?.stop();
      server = undefined;
    },
    pids: () => (server?.pid ? [server.pid] : []),
    running: () => server !== undefined,
    ready: () => server !== undefined,
    trimOutput() {},
  };
}

/** Poll `GET /api/health` until it answers 200. */
async function waitHealthy(url: string, timeoutMs: number, proc: Spawned) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`exited before it was healthy; output:\n${proc.lines.slice(-10).join('\n')}`);
    }
    try {
      const r = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(5_000) });
      if (r.status === 200) return;
      last = `${r.status} ${(await r.text()).slice(0, 300)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`not healthy after ${timeoutMs} ms: ${last}`);
}

/** An entry point as a child process, keeping only its recent output. */
export function spawnCli(entry: string, args: string[], env: Record<string, string>): Spawned {
  return spawnEntry(entry, { HOME: process.env.HOME, ...env }, { args, keepLines: KEEP_LINES });
}
