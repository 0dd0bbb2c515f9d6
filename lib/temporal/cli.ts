/**
 * Finds (or obtains) the Temporal CLI, which embeds the dev server and Web UI.
 * Routes, in order: TEMPORAL_CLI_PATH, `temporal` on PATH, the cache folder outside the clone, the official
 * release archive, then `go install` from the Go module proxy (the one route that works on machines that reach
 * only package registries; see shared/design/TEMPORAL-OFFLINE.md).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { checkBinary, describe, findOnPath, TEMPORAL_CLI_VERSION, versionDir } from './cli-binary.js';
import {
  acquireLock,
  type Download,
  downloadFile,
  elapsed,
  extract,
  type GoInstall,
  goInstallTemporal,
  installInto,
  releaseUrl,
  removeLeftovers,
} from './cli-install.js';

export { TEMPORAL_CLI_VERSION } from './cli-binary.js';
export {
  type Download,
  downloadFile,
  type GoInstall,
  goInstallTemporal,
  releaseUrl,
} from './cli-install.js';

export type Route = 'env' | 'path' | 'cache' | 'download' | 'go-install';

export interface LocatedTemporalCli {
  path: string;
  route: Route;
}

export interface RouteFailure {
  route: Route;
  reason: string;
}

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

const defaultDownload: Download = (url, dest) => downloadFile(url, dest);
const defaultLog = (line: string) => process.stderr.write(`[temporal-cli] ${line}\n`);

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
