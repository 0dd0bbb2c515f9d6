import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search-attributes.js';
import { stopChild } from '../process.js';

/**
 * Dynamic config the embedded dev server runs with. Temporal's defaults pace dispatch for a shared
 * cluster: measured on the dev server, a one-activity workflow took ~150 ms and a chain of 10 activities
 * ~1,050 ms with them, ~44 ms and ~160 ms with these. Production clusters take the same keys in their
 * dynamic config file (README, "Temporal dispatch settings").
 */
export const DEV_SERVER_DYNAMIC_CONFIG: ReadonlyArray<{ key: string; value: unknown; why: string }> = [
  {
    key: 'history.transferProcessorMaxPollRPS',
    value: 10_000,
    why: 'the shard-wide rate of reading transfer tasks (tasks to matching): the default paces each dispatch',
  },
  {
    key: 'history.transferProcessorMaxPollHostRPS',
    value: 10_000,
    why: 'the same limit summed over the shards of one history host; the lower of the two applies',
  },
  {
    key: 'system.enableActivityEagerExecution',
    value: true,
    why: 'an activity on the workflow task queue goes straight back to the worker that completed the workflow task',
  },
  {
    key: 'history.timerProcessorMaxTimeShift',
    value: '10ms',
    why: 'timers fire within ~10 ms of due, not up to 1 s late (a 100 ms sleep took ~1,020 ms)',
  },
];

/** `--dynamic-config-value` flags for `temporal server start-dev` (values are JSON). */
export function dynamicConfigArgs(config = DEV_SERVER_DYNAMIC_CONFIG): string[] {
  return config.flatMap(({ key, value }) => ['--dynamic-config-value', `${key}=${JSON.stringify(value)}`]);
}

export interface DevServerOptions {
  cliPath: string;
  namespace: string;
  /** SQLite file; omitted → in memory (tests). */
  dbFile?: string;
  /** Where the child's pid is kept, so a start after a kill -9 can stop the orphan first. */
  pidFile?: string;
  ip?: string;
  port: number;
  uiPort: number;
  headless?: boolean;
  /** Run with Temporal's own dispatch pacing instead of DEV_SERVER_DYNAMIC_CONFIG (benchmark comparison). */
  temporalDefaults?: boolean;
  readyTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface DevServer {
  address: string;
  uiUrl: string | undefined;
  pid: number | undefined;
  stop(): Promise<void>;
}

/**
 * Start `temporal server start-dev` as a child process and wait until the namespace answers.
 * The search attributes are registered at start, so a fresh server is ready for task workflows.
 * @example const server = await startDevServer({ cliPath, namespace: 'neurogrid', port: 7233, uiPort: 8233 });
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  if (opts.pidFile) await stopOrphan(opts.pidFile, log);

  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(opts.port),
    '--namespace',
    opts.namespace,
    '--log-level',
    'error',
    ...SEARCH_ATTRIBUTE_KEYS.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]),
    ...(opts.temporalDefaults ? [] : dynamicConfigArgs()),
  ];
  if (opts.dbFile) {
    // WAL is persistent and ~1.6x faster than SQLite's default journal on small machines.
    args.push('--db-filename', opts.dbFile, '--sqlite-pragma', 'journal_mode=wal');
    args.push('--sqlite-pragma', 'synchronous=normal');
  }
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort), '--ui-ip', ip);

  const child = spawn(opts.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      output.push(line);
      if (output.length > 50) output.shift();
      log(line);
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  if (opts.pidFile && child.pid) await writeFile(opts.pidFile, `${child.pid}\n`);

  const address = `${ip}:${opts.port}`;
  try {
    await waitReady(child, address, opts.namespace, opts.readyTimeoutMs ?? 60_000);
  } catch (err) {
    await stopChild(child);
    const detail = output.slice(-10).join('\n');
    throw new Error(`${(err as Error).message}${detail ? `\nTemporal server output:\n${detail}` : ''}`);
  }

  return {
    address,
    uiUrl: opts.headless ? undefined : `http://${ip}:${opts.uiPort}`,
    pid: child.pid,
    async stop() {
      await stopChild(child);
      if (opts.pidFile) await rm(opts.pidFile, { force: true });
    },
  };
}

async function waitReady(child: ChildProcess, address: string, namespace: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `Temporal dev server exited during start-up (code ${child.exitCode ?? child.signalCode})`,
      );
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`Temporal dev server not ready at ${address} after ${timeoutMs} ms: ${String(lastError)}`);
}

/** A previous run killed with SIGKILL leaves its dev server running and holding the ports and database. */
async function stopOrphan(pidFile: string, log: (line: string) => void): Promise<void> {
  const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('start-dev')) return; // not ours (or gone): the pid may have been reused
  log(`stopping the Temporal dev server left over from a previous run (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && (await alive(pid)); i++) await new Promise((r) => setTimeout(r, 100));
  if (await alive(pid)) process.kill(pid, 'SIGKILL');
  await rm(pidFile, { force: true });
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z/.test(stat); // zombies count as gone
}
