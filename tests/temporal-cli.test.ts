import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  downloadFile,
  type GoInstall,
  type LocateOptions,
  locateTemporalCli,
  releaseUrl,
  TEMPORAL_CLI_VERSION,
  TemporalCliNotFoundError,
} from '../lib/temporal/cli.js';

const VERSION_LINE = `temporal version ${TEMPORAL_CLI_VERSION} (Server 1.29.1, UI 2.42.1)`;

let root: string;
let logs: string[];

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'ng-temporal-cli-'));
  logs = [];
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A stand-in for the real CLI: a shell script that answers `--version` like temporal 1.5.1 does. */
async function fakeCli(file: string, versionLine = VERSION_LINE): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `#!/bin/sh\necho "${versionLine}"\n`, { mode: 0o755 });
  return file;
}

const cacheBinary = () => path.join(root, 'cache', `temporal-${TEMPORAL_CLI_VERSION}`, 'temporal');

/** Isolated from the machine: an empty PATH folder, and a cache under the temp root. */
function options(overrides: LocateOptions & { env?: NodeJS.ProcessEnv } = {}): LocateOptions {
  return {
    log: (line) => logs.push(line),
    download: async () => {
      throw new Error('download not expected in this test');
    },
    goInstall: async () => {
      throw new Error('go install not expected in this test');
    },
    ...overrides,
    env: {
      PATH: path.join(root, 'empty-bin'),
      NEUROGRID_CACHE_DIR: path.join(root, 'cache'),
      ...overrides.env,
    },
  };
}

/** Rejects the way fetch does when DNS cannot resolve the host (this machine, for github.com). */
const offlineDownload = async () => {
  const cause = Object.assign(new Error('getaddrinfo ENOTFOUND github.com'), { code: 'ENOTFOUND' });
  throw new TypeError('fetch failed', { cause });
};

/** Like the real `go install`: writes the built binary into the GOBIN it is given, after `ms`. */
function fakeGoInstall(ms = 0, calls: string[] = []): GoInstall {
  return async (gobin, { onLine }) => {
    calls.push(gobin);
    onLine('go: downloading github.com/temporalio/cli v1.5.1');
    await new Promise((resolve) => setTimeout(resolve, ms));
    await fakeCli(path.join(gobin, 'temporal'));
  };
}

describe('locateTemporalCli', () => {
  it('uses TEMPORAL_CLI_PATH when it is set', async () => {
    const cli = await fakeCli(path.join(root, 'custom', 'my-temporal'));
    const found = await locateTemporalCli(options({ env: { TEMPORAL_CLI_PATH: cli } }));
    expect(found).toEqual({ path: cli, route: 'env' });
  });

  it('fails naming TEMPORAL_CLI_PATH when it points at a missing file, without trying other routes', async () => {
    const onPath = await fakeCli(path.join(root, 'bin', 'temporal'));
    const missing = path.join(root, 'nope', 'temporal');
    const locating = locateTemporalCli(
      options({ env: { TEMPORAL_CLI_PATH: missing, PATH: path.dirname(onPath) } }),
    );
    await expect(locating).rejects.toThrow(TemporalCliNotFoundError);
    await expect(locating).rejects.toThrow(`TEMPORAL_CLI_PATH=${missing} is unusable: no file at ${missing}`);
  });

  it('finds an executable temporal on PATH, skipping a non-executable one', async () => {
    const notExecutable = path.join(root, 'first', 'temporal');
    await fakeCli(notExecutable);
    await fs.chmod(notExecutable, 0o644);
    const cli = await fakeCli(path.join(root, 'second', 'temporal'));
    const PATH = [path.dirname(notExecutable), '', path.dirname(cli)].join(path.delimiter);
    expect(await locateTemporalCli(options({ env: { PATH } }))).toEqual({ path: cli, route: 'path' });
  });

  it('finds the cached binary under NEUROGRID_CACHE_DIR', async () => {
    const cli = await fakeCli(cacheBinary());
    expect(await locateTemporalCli(options())).toEqual({ path: cli, route: 'cache' });
  });

  it('defaults the cache to $XDG_CACHE_HOME/neurogrid, else ~/.cache/neurogrid', async () => {
    const name = `temporal-${TEMPORAL_CLI_VERSION}`;
    const xdg = await fakeCli(path.join(root, 'xdg', 'neurogrid', name, 'temporal'));
    const home = await fakeCli(path.join(root, 'home', '.cache', 'neurogrid', name, 'temporal'));
    const env = { NEUROGRID_CACHE_DIR: '', HOME: path.join(root, 'home') };
    expect(
      await locateTemporalCli(options({ env: { ...env, XDG_CACHE_HOME: path.join(root, 'xdg') } })),
    ).toEqual({
      path: xdg,
      route: 'cache',
    });
    expect(await locateTemporalCli(options({ env }))).toEqual({ path: home, route: 'cache' });
  });

  it('installs the official release archive into the cache when the download works', async () => {
    const urls: string[] = [];
    const download = async (url: string, dest: string) => {
      urls.push(url);
      const staging = await fs.mkdtemp(path.join(root, 'release-'));
      await fakeCli(path.join(staging, 'temporal'));
      expect(spawnSync('tar', ['-czf', dest, '-C', staging, 'temporal']).status).toBe(0);
    };
    const found = await locateTemporalCli(options({ download }));

    expect(found).toEqual({ path: cacheBinary(), route: 'download' });
    expect(urls).toEqual([releaseUrl()]);
    expect(urls[0]).toMatch(/\/v1\.5\.1\/temporal_cli_1\.5\.1_(linux|darwin)_(amd64|arm64)\.tar\.gz$/);
    expect((await fs.stat(cacheBinary())).mode & 0o777).toBe(0o755);
    expect(await fs.readdir(path.dirname(cacheBinary()))).toEqual(['temporal']); // no temp folder, no lock
    expect(await locateTemporalCli(options())).toEqual({ path: cacheBinary(), route: 'cache' });
  });

  it('tries the download before go install and moves on at once when offline', async () => {
    const order: string[] = [];
    let downloadFailedAt = 0;
    let goStartedAt = 0;
    const found = await locateTemporalCli(
      options({
        download: async () => {
          order.push('download');
          downloadFailedAt = performance.now();
          await offlineDownload();
        },
        goInstall: async (gobin, io) => {
          goStartedAt = performance.now();
          order.push('go-install');
          await fakeGoInstall()(gobin, io);
        },
      }),
    );
    expect(order).toEqual(['download', 'go-install']);
    expect(goStartedAt - downloadFailedAt).toBeLessThan(500);
    expect(found).toEqual({ path: cacheBinary(), route: 'go-install' });
    expect(logs).toContain('route download failed: fetch failed (getaddrinfo ENOTFOUND github.com)');
  });

  it('streams go output, prints a heartbeat during a long build, and caches the result', async () => {
    const found = await locateTemporalCli(
      options({ download: offlineDownload, goInstall: fakeGoInstall(250), heartbeatMs: 50 }),
    );
    expect(found).toEqual({ path: cacheBinary(), route: 'go-install' });
    expect(logs).toContain('go: downloading github.com/temporalio/cli v1.5.1');
    expect(logs.some((line) => /^go install still running \(0m00s\)$/.test(line))).toBe(true);
    expect(await fs.readdir(path.dirname(cacheBinary()))).toEqual(['temporal']);
  });

  it('does not cache a build that reports another version', async () => {
    const wrongVersion: GoInstall = async (gobin) => {
      await fakeCli(path.join(gobin, 'temporal'), 'temporal version 1.9.1 (Server 1.30.0, UI 2.45.0)');
    };
    const locating = locateTemporalCli(options({ download: offlineDownload, goInstall: wrongVersion }));
    await expect(locating).rejects.toThrow(
      /go-install: .*reports "temporal version 1\.9\.1.*expected version 1\.5\.1/,
    );
    expect(await fs.readdir(path.dirname(cacheBinary()))).toEqual([]);
  });

  it('runs the real go install command with the pinned version into the given GOBIN', async () => {
    // A fake `go` on PATH that records its arguments and "builds" like go install does.
    const bin = path.join(root, 'tools');
    await fs.mkdir(bin);
    const script = [
      '#!/bin/sh',
      `echo "$@" > "${root}/go-args"`,
      'echo "go: downloading github.com/temporalio/cli v1.5.1" >&2',
      `printf '#!/bin/sh\\necho "${VERSION_LINE}"\\n' > "$GOBIN/temporal"`,
    ].join('\n');
    await fs.writeFile(path.join(bin, 'go'), `${script}\n`, { mode: 0o755 });

    const found = await locateTemporalCli({ ...options({ env: { PATH: bin } }), goInstall: undefined });
    expect(found).toEqual({ path: cacheBinary(), route: 'go-install' });
    expect((await fs.readFile(path.join(root, 'go-args'), 'utf8')).trim()).toBe(
      'install -ldflags=-s -w -X github.com/temporalio/cli/temporalcli.Version=1.5.1 ' +
        'github.com/temporalio/cli/cmd/temporal@v1.5.1',
    );
    expect(logs).toContain('go: downloading github.com/temporalio/cli v1.5.1');
  });

  it('lists every route, why it failed and how to fix it, when all fail', async () => {
    // The real go-install route, with no `go` on the (empty) PATH.
    const locating = locateTemporalCli({ ...options({ download: offlineDownload }), goInstall: undefined });
    const error = await locating.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TemporalCliNotFoundError);
    const { failures, message } = error as TemporalCliNotFoundError;
    expect(failures.map((f) => f.route)).toEqual(['env', 'path', 'cache', 'download', 'go-install']);
    expect(failures.at(-1)?.reason).toBe('go not found on PATH');
    for (const fix of [
      'set TEMPORAL_CLI_PATH',
      'install the Temporal CLI',
      'internet access',
      'install Go',
    ]) {
      expect(message).toContain(fix);
    }
    expect(message).toContain('ENOTFOUND');
  });

  it('builds once when two setups run at the same time: the second waits, then uses the cache', async () => {
    const calls: string[] = [];
    const opts = options({
      download: offlineDownload,
      goInstall: fakeGoInstall(400, calls),
      heartbeatMs: 100,
    });
    const results = await Promise.all([locateTemporalCli(opts), locateTemporalCli(opts)]);

    expect(calls).toHaveLength(1);
    expect(results.map((r) => r.route).sort()).toEqual(['cache', 'go-install']);
    expect(results.every((r) => r.path === cacheBinary())).toBe(true);
    expect(logs.some((line) => line.startsWith('waiting for another setup'))).toBe(true);
  });

  it('takes over a lock and cleans a half-finished install left by a setup that was killed', async () => {
    const dir = path.dirname(cacheBinary());
    await fs.mkdir(path.join(dir, '.lock'), { recursive: true });
    // 2^22 + 1 is above Linux's highest pid, so that process cannot exist.
    await fs.writeFile(
      path.join(dir, '.lock', 'owner'),
      JSON.stringify({ pid: 2 ** 22 + 1, host: os.hostname() }),
    );
    await fs.mkdir(path.join(dir, '.tmp-killed'));
    await fs.writeFile(path.join(dir, '.tmp-killed', 'temporal'), 'half a binary');

    const found = await locateTemporalCli(options({ download: offlineDownload, goInstall: fakeGoInstall() }));
    expect(found.route).toBe('go-install');
    expect(await fs.readdir(dir)).toEqual(['temporal']);
  });
});

describe('downloadFile (the real download route)', () => {
  const dest = () => path.join(root, 'archive.tar.gz');

  it('writes the response body to the destination file', async () => {
    const server = await listen(createHttpServer((_req, res) => res.end('archive bytes')));
    try {
      await downloadFile(`http://127.0.0.1:${port(server)}/x.tar.gz`, dest());
      expect(await fs.readFile(dest(), 'utf8')).toBe('archive bytes');
    } finally {
      server.close();
    }
  });

  it('rejects at once when the host does not resolve', async () => {
    const start = performance.now();
    // .invalid never resolves (RFC 2606), so this is offline everywhere, like github.com on this machine.
    await expect(downloadFile('https://github.invalid/temporal_cli.tar.gz', dest())).rejects.toThrow(
      /ENOTFOUND/,
    );
    expect(performance.now() - start).toBeLessThan(15_000);
  });

  it('rejects at once when the connection is refused', async () => {
    const port = await freePort();
    const start = performance.now();
    await expect(downloadFile(`http://127.0.0.1:${port}/x.tar.gz`, dest())).rejects.toThrow(/ECONNREFUSED/);
    expect(performance.now() - start).toBeLessThan(2_000);
  });

  it('gives up on a host that accepts the connection but never answers', async () => {
    const silent = await listen(createServer(() => {}));
    try {
      const start = performance.now();
      const url = `http://127.0.0.1:${port(silent)}/x.tar.gz`;
      await expect(downloadFile(url, dest(), { connectTimeoutMs: 300 })).rejects.toThrow(
        /no response within 300 ms/,
      );
      expect(performance.now() - start).toBeLessThan(2_000);
    } finally {
      silent.close();
    }
  });
});

function listen<S extends Server>(server: S): Promise<S> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const port = (server: Server) => (server.address() as { port: number }).port;

/** A port nothing listens on (taken, then released). */
async function freePort(): Promise<number> {
  const server = await listen(createServer());
  const free = port(server);
  await new Promise((resolve) => server.close(resolve));
  return free;
}
