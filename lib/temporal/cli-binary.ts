/** The Temporal CLI binary on disk: the pinned version, whether a file is a working binary, where it is cached. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** v1.5.1 is the newest release the Go module proxy can build (later ones `replace` a nested module). */
export const TEMPORAL_CLI_VERSION = '1.5.1';

const execFileP = promisify(execFile);
export const errorCode = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

/** An error's message plus its cause's (fetch hides the DNS/ECONNREFUSED detail in `cause`). */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
}

type Check = { ok: true; version: string } | { ok: false; reason: string };

/** Is `file` an executable file whose `--version` works (and names `expected`, when given)? */
export async function checkBinary(file: string, expected?: string): Promise<Check> {
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
export async function findOnPath(name: string, pathVar = ''): Promise<string | undefined> {
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
export function versionDir(env: NodeJS.ProcessEnv, cacheDir?: string): string {
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  const root =
    cacheDir ||
    env.NEUROGRID_CACHE_DIR ||
    path.join(xdg ?? path.join(env.HOME || os.homedir(), '.cache'), 'neurogrid');
  return path.resolve(root, `temporal-${TEMPORAL_CLI_VERSION}`);
}
