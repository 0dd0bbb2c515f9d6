import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Spawned {
  child: ChildProcess;
  /** Every stdout/stderr line so far (for assertions and for failure messages). */
  lines: string[];
  /** Resolve with the first line matching, or reject after timeoutMs (or when the process exits). */
  waitFor(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Run one of the project's entry points as a child process, like an operator would, so tests can
 * kill it. `env` replaces nothing the child doesn't name: it starts from a clean environment plus PATH.
 * @example const api = spawnEntry('api/main.ts', { DATABASE_URL, TEMPORAL_ADDRESS, REDIS_URL, PORT: '0' });
 */
export function spawnEntry(
  entry: string,
  env: Record<string, string | undefined>,
  options: { args?: string[]; keepLines?: number } = {},
): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...(options.args ?? [])], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<(line: string) => void>();
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      lines.push(line);
      // Long runs (the chaos bench) keep only the recent output.
      if (options.keepLines && lines.length > options.keepLines * 2) lines.splice(0, options.keepLines);
      for (const w of waiters) w(line);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  return {
    child,
    lines,
    exited,
    waitFor(match, timeoutMs = 60_000) {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const done = (err?: Error, line?: string) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(line as string);
        };
        const check = (line: string) => match(line) && done(undefined, line);
        const timer = setTimeout(
          () => done(new Error(`timed out; last output:\n${lines.slice(-15).join('\n')}`)),
          timeoutMs,
        );
        waiters.add(check);
        exited.then((code) => done(new Error(`exited (${code}); output:\n${lines.slice(-15).join('\n')}`)));
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** Parse a pino JSON line, or undefined for other output. */
export function jsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(line);
    return typeof v === 'object' && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}
