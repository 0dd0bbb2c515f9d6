import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { promisify } from 'node:util';

/**
 * Finds (or obtains) the Temporal CLI, which embeds the dev server and Web UI.
 * Routes, in order: TEMPORAL_CLI_PATH, `temporal` on PATH, the cache folder outside the clone, the official
 * release archive, then `go install` from the Go module proxy (the one route that works on machines that reach
 * only package registries; see shared/design/TEMPORAL-OFFLINE.md).
 */

/** v1.5.1 is the newest release the Go module proxy can build (later ones `replace` a nested module). */
export const TEMPORAL_CLI_VERSION = '1.5.1';

export type Route = 'env' | 'path' | 'cache' | 'download' | 'go-install';

export interface LocatedTemporalCli {
  path: string;
  route: Route;
}

export interface RouteFailure {
  route: Route;
  reason: string;
}

/** Fetches `url` into the file `dest`; rejects on any network or HTTP error. */
export type Download = (url: string, dest: string) => Promise<void>;

/** Builds the pinned CLI into the folder `gobin`, reporting each output line. */
export type GoInstall = (
  gobin: string,
  io: { env: NodeJS.ProcessEnv; onLine: (line: string) => void },
) => Promise<void>;

export interface LocateOptions {
  /** Environment to read (TEMPORAL_CLI_PATH, PATH, NEUROGRID_CACHE_DIR, XDG_CACHE_HOME, HOME). */
  env?: NodeJS.ProcessEnv;
  /** Progress lines; default: stderr. */
  log?: (line: string) => void;
  /** Cache root, like NEUROGRID_CACHE_DIR: the binary goes in `<cacheDir>/temporal-<version>/temporal`. */
  cacheDir?: string;
  download?: Download;
  goInstall?: GoInstall;
  /** How often a long build (or a wait for another setup's build) says it is still alive. */
  heartbeatMs?: number;
  /** How long to wait for another setup that holds the cache lock. */
  lockTimeoutMs?: number;
}

/** How to make each route work, shown when every route failed. */
const FIX: Record<Route, string> = {
  env: 'set TEMPORAL_CLI_PATH to a Temporal CLI binary',
  path: 'or install the Temporal CLI (https://docs.temporal.io/cli) so `temporal` is on PATH',
  cache: 'filled by the download and go-install routes',
  download: 'or run setup once with internet access to github.com',
  'go-install': 'or install Go (https://go.dev/dl/) and rerun: setup builds the CLI (~5 min the first time)',
};

/** Every route failed; `failures` says why, route by route. */
export class TemporalCliNotFoundError extends Error {
  constructor(
    readonly failures: RouteFailure[],
    message = `Temporal CLI ${TEMPORAL_CLI_VERSION} not found. Tried:\n${failures
      .map((f) => `  - ${f.route}: ${f.reason}\n      fix: ${FIX[f.route]}`)
      .join('\n')}`,
  ) {
    super(message);
    this.name = 'TemporalCliNotFoundError';
  }
}

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const errorCode = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

/** An error's message plus its cause's (fetch hides the DNS/ECONNREFUSED detail in `cause`). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
}

type Check = { ok: true; version: string } | { ok: false; reason: string };

/** Is `file` an executable file whose `--version` works (and names `expected`, when given)? */
async function checkBinary(file: string, expected?: string): Promise<Check> {
  try {
    if (!(await fs.stat(file)).isFile()) return { ok: false, reason: `${file} is not a file` };
  } catch (err) {
    return { ok: false, reason: errorCode(err) === 'ENOENT' ? `no file at ${file}` : describe(err) };
  }
  try {
    await fs.access(file, fs.constants.X_OK);
  } catch {
    return { ok: false, reason: `${file} is not executable` };
  }
  try {
    const version = (await execFileP(file, ['--version'], { timeout: 60_000 })).stdout.trim();
    if (expected && !version.includes(`version ${expected}`)) {
      return { ok: false, reason: `${file} reports "${version}", expected version ${expected}` };
    }
    return { ok: true, version };
  } catch (err) {
    return { ok: false, reason: `\`${file} --version\` failed: ${describe(err)}` };
  }
}

/** The first executable `name` in the PATH folders (empty entries, meaning the cwd, are skipped). */
async function findOnPath(name: string, pathVar = ''): Promise<string | undefined> {
  for (const dir of pathVar.split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, name);
    try {
      if ((await fs.stat(file)).isFile()) {
        await fs.access(file, fs.constants.X_OK);
        return file;
      }
    } catch {
      // Missing or not executable: keep looking, like a shell does.
    }
  }
  return undefined;
}

/** `<root>/temporal-<version>`, root = cacheDir ?? NEUROGRID_CACHE_DIR ?? ${XDG_CACHE_HOME:-~/.cache}/neurogrid. */
function versionDir(env: NodeJS.ProcessEnv, cacheDir?: string): string {
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  const root =
    cacheDir ||
    env.NEUROGRID_CACHE_DIR ||
    path.join(xdg ?? path.join(env.HOME || os.homedir(), '.cache'), 'neurogrid');
  return path.resolve(root, `temporal-${TEMPORAL_CLI_VERSION}`);
}

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

const defaultDownload: Download = (url, dest) => downloadFile(url, dest);
const defaultLog = (line: string) => process.stderr.write(`[temporal-cli] ${line}\n`);

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
async function acquireLock(
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

const elapsed = (ms: number) =>
  `${Math.floor(ms / 60_000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}s`;

/**
 * Produces the binary in a fresh temp folder inside `dir`, checks it, then renames it into place, so a killed
 * install never leaves a half-written `temporal` that later runs would trust.
 */
async function installInto(dir: string, produce: (tmp: string) => Promise<string>): Promise<string> {
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
async function extract(archive: string, into: string): Promise<string> {
  await run('tar', ['-xzf', archive, '-C', into], process.env, () => {});
  return path.join(into, 'temporal');
}

/**
 * Finds the Temporal CLI, downloading or building it into the cache when needed.
 * @throws TemporalCliNotFoundError when TEMPORAL_CLI_PATH is set but unusable, or when every route failed.
 * @example const { path, route } = await locateTemporalCli();
 */
export async function locateTemporalCli(options: LocateOptions = {}): Promise<LocatedTemporalCli> {
  const env = options.env ?? process.env;
  const log = options.log ?? defaultLog;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const failures: RouteFailure[] = [];
  const found = (route: Route, file: string, version: string): LocatedTemporalCli => {
    log(`route ${route}: ${file} (${version})`);
    return { path: file, route };
  };
  const failed = (route: Route, reason: string) => {
    log(`route ${route} failed: ${reason}`);
    failures.push({ route, reason });
  };

  // An explicit path is a decision: falling through to another binary would hide the typo.
  const explicit = env.TEMPORAL_CLI_PATH;
  if (explicit) {
    const file = path.resolve(explicit);
    log(`trying TEMPORAL_CLI_PATH=${explicit}`);
    const check = await checkBinary(file);
    if (check.ok) return found('env', file, check.version);
    throw new TemporalCliNotFoundError(
      [{ route: 'env', reason: check.reason }],
      `TEMPORAL_CLI_PATH=${explicit} is unusable: ${check.reason}. ` +
        'Point TEMPORAL_CLI_PATH at a Temporal CLI binary, or unset it to let setup find or install one.',
    );
  }
  failures.push({ route: 'env', reason: 'TEMPORAL_CLI_PATH is not set' });

  log('trying `temporal` on PATH');
  const onPath = await findOnPath('temporal', env.PATH);
  const pathCheck = onPath ? await checkBinary(onPath) : undefined;
  if (onPath && pathCheck?.ok) return found('path', onPath, pathCheck.version);
  failed(
    'path',
    pathCheck && !pathCheck.ok ? pathCheck.reason : 'no executable `temporal` in the PATH folders',
  );

  const dir = versionDir(env, options.cacheDir);
  const cached = path.join(dir, 'temporal');
  log(`trying the cache: ${cached}`);
  const cacheCheck = await checkBinary(cached, TEMPORAL_CLI_VERSION);
  if (cacheCheck.ok) return found('cache', cached, cacheCheck.version);

  await fs.mkdir(dir, { recursive: true });
  const release = await acquireLock(dir, log, heartbeatMs, options.lockTimeoutMs ?? 30 * 60_000);
  try {
    // Another setup may have filled the cache while this one waited for the lock.
    const again = await checkBinary(cached, TEMPORAL_CLI_VERSION);
    if (again.ok) return found('cache', cached, again.version);
    failed('cache', again.reason);
    await removeLeftovers(dir);

    const url = releaseUrl();
    if (!url) failed('download', `no official release archive for ${process.platform}/${process.arch}`);
    else {
      log(`trying download: ${url}`);
      try {
        const download = options.download ?? defaultDownload;
        const bin = await installInto(dir, async (tmp) => {
          const archive = path.join(tmp, 'temporal.tar.gz');
          await download(url, archive);
          return extract(archive, tmp);
        });
        return found('download', bin, TEMPORAL_CLI_VERSION);
      } catch (err) {
        failed('download', describe(err));
      }
    }

    log(
      `trying go install of github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION} (~5 min the first time)`,
    );
    const start = Date.now();
    const heartbeat = setInterval(
      () => log(`go install still running (${elapsed(Date.now() - start)})`),
      heartbeatMs,
    );
    try {
      const goInstall = options.goInstall ?? goInstallTemporal;
      const bin = await installInto(dir, async (tmp) => {
        await goInstall(tmp, { env, onLine: log });
        return path.join(tmp, 'temporal');
      });
      return found('go-install', bin, `built in ${elapsed(Date.now() - start)}`);
    } catch (err) {
      failed('go-install', describe(err));
    } finally {
      clearInterval(heartbeat);
    }
  } finally {
    await release();
  }
  throw new TemporalCliNotFoundError(failures);
}

/** Temp folders of installs that were killed midway (only called while holding the lock). */
async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith('.tmp-')) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  }
}
