/**
 * Obtaining the Temporal CLI when no usable binary exists: the official release archive, or `go install`
 * from the Go module proxy, each produced into the cache under a lock and checked before it is trusted.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { checkBinary, describe, errorCode, findOnPath, TEMPORAL_CLI_VERSION } from './cli-binary.js';

/** Fetches `url` into the file `dest`; rejects on any network or HTTP error. */
export type Download = (url: string, dest: string) => Promise<void>;

/** Builds the pinned CLI into the folder `gobin`, reporting each output line. */
export type GoInstall = (
  gobin: string,
  io: { env: NodeJS.ProcessEnv; onLine: (line: string) => void },
) => Promise<void>;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The official release archive for this machine, or undefined where none is published. */
export function releaseUrl(
  platform: string = process.platform,
  arch: string = process.arch,
): string | undefined {
  const goArch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[arch];
  if (!goArch || (platform !== 'linux' && platform !== 'darwin')) return undefined;
  const v = TEMPORAL_CLI_VERSION;
  return `https://github.com/temporalio/cli/releases/download/v${v}/temporal_cli_${v}_${platform}_${goArch}.tar.gz`;
}

/**
 * Downloads `url` to `dest`. Offline it fails at once (DNS failure, refused connection); a host that never
 * answers is given up after `connectTimeoutMs`, a transfer that stalls after `stallTimeoutMs`.
 */
export async function downloadFile(
  url: string,
  dest: string,
  { connectTimeoutMs = 10_000, stallTimeoutMs = 30_000 } = {},
): Promise<void> {
  const abort = new AbortController();
  let timer = setTimeout(
    () => abort.abort(new Error(`no response within ${connectTimeoutMs} ms`)),
    connectTimeoutMs,
  );
  // Re-armed on every chunk, so a slow but moving download of the ~40 MB archive is never cut off.
  const rearm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(new Error(`stalled for ${stallTimeoutMs} ms`)), stallTimeoutMs);
  };
  try {
    const res = await fetch(url, { signal: abort.signal });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status} ${res.statusText}`);
    }
    rearm();
    const body = Readable.fromWeb(res.body as ReadableStream<Uint8Array>);
    await pipeline(
      body,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          rearm();
          yield chunk;
        }
      },
      createWriteStream(dest),
    );
  } catch (err) {
    throw new Error(`download of ${url} failed: ${describe(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `cmd args`, passing each stdout/stderr line to `onLine`; rejects with the last lines on failure. */
function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        if (tail.length > 10) tail.shift();
        onLine(line);
      });
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(`${path.basename(cmd)} exited with ${signal ?? `code ${code}`}: ${tail.join(' | ')}`),
        );
    });
  });
}

/** The real go-install route: builds the pinned CLI from the Go module proxy into `gobin`. */
export const goInstallTemporal: GoInstall = async (gobin, { env, onLine }) => {
  const go = await findOnPath('go', env.PATH);
  if (!go) throw new Error('go not found on PATH');
  const v = TEMPORAL_CLI_VERSION;
  const args = [
    'install',
    `-ldflags=-s -w -X github.com/temporalio/cli/temporalcli.Version=${v}`,
    `github.com/temporalio/cli/cmd/temporal@v${v}`,
  ];
  await run(go, args, { ...env, GOBIN: gobin }, onLine);
};

const LOCK_REFRESH_MS = 10_000;
const LOCK_STALE_MS = 60_000;

/** True when the lock's owner died (same host) or stopped refreshing it (killed elsewhere, pid reused). */
async function isStaleLock(lock: string): Promise<boolean> {
  try {
    if (Date.now() - (await fs.stat(lock)).mtimeMs > LOCK_STALE_MS) return true;
    const owner = JSON.parse(await fs.readFile(path.join(lock, 'owner'), 'utf8')) as {
      pid: number;
      host: string;
    };
    if (owner.host !== os.hostname()) return false;
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    // ESRCH: no such process. ENOENT/bad JSON: the owner is between mkdir and writing its file.
    return errorCode(err) === 'ESRCH';
  }
}

/**
 * Takes `<dir>/.lock` (mkdir is atomic), so two setups never build at once; the second waits for the first.
 * Returns the release function.
 */
export async function acquireLock(
  dir: string,
  log: (line: string) => void,
  heartbeatMs: number,
  timeoutMs: number,
): Promise<() => Promise<void>> {
  const lock = path.join(dir, '.lock');
  const start = Date.now();
  let lastNote = 0;
  for (;;) {
    try {
      await fs.mkdir(lock);
      await fs.writeFile(path.join(lock, 'owner'), JSON.stringify({ pid: process.pid, host: os.hostname() }));
      const refresh = setInterval(() => {
        const now = new Date();
        fs.utimes(lock, now, now).catch(() => {});
      }, LOCK_REFRESH_MS);
      refresh.unref();
      return async () => {
        clearInterval(refresh);
        await fs.rm(lock, { recursive: true, force: true });
      };
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
    }
    if (await isStaleLock(lock)) {
      log(`removing a stale lock left by a setup that died: ${lock}`);
      await fs.rm(lock, { recursive: true, force: true });
      continue;
    }
    const waited = Date.now() - start;
    if (waited > timeoutMs) throw new Error(`another setup still holds ${lock} after ${elapsed(waited)}`);
    if (lastNote === 0 || Date.now() - lastNote >= heartbeatMs) {
      log(`waiting for another setup to finish installing (lock ${lock}, ${elapsed(waited)} so far)`);
      lastNote = Date.now();
    }
    await sleep(Math.min(250, heartbeatMs));
  }
}

export const elapsed = (ms: number) =>
  `${Math.floor(ms / 60_000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}s`;

/**
 * Produces the binary in a fresh temp folder inside `dir`, checks it, then renames it into place, so a killed
 * install never leaves a half-written `temporal` that later runs would trust.
 */
export async function installInto(dir: string, produce: (tmp: string) => Promise<string>): Promise<string> {
  const tmp = await fs.mkdtemp(path.join(dir, '.tmp-'));
  try {
    const bin = await produce(tmp);
    await fs.chmod(bin, 0o755);
    const check = await checkBinary(bin, TEMPORAL_CLI_VERSION);
    if (!check.ok) throw new Error(check.reason);
    const final = path.join(dir, 'temporal');
    await fs.rename(bin, final);
    return final;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** Unpacks the release archive (it holds `temporal` at its root) with the system tar. */
export async function extract(archive: string, into: string): Promise<string> {
  await run('tar', ['-xzf', archive, '-C', into], process.env, () => {});
  return path.join(into, 'temporal');
}

/** Temp folders of installs that were killed midway (only called while holding the lock). */
export async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith('.tmp-')) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  }
}
