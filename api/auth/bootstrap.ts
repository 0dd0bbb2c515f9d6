import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Services } from '../../lib/services.js';
import { issueApiKey } from './keys.js';

export const ADMIN_KEY_FILE = 'admin-api-key';

export interface EnsureAdminKeyOptions {
  /** Where the one-time notice goes. Default: stdout (a notice meant for a human, not a log line). */
  print?: (text: string) => void;
}

/**
 * Make sure an operator can reach the admin API. With `ADMIN_API_KEY` configured there is nothing to
 * do. Otherwise (development and test; production refuses to start without it) the first start
 * stores a new admin key, saves it to `<dataDir>/admin-api-key` (0600) and prints it once; later
 * starts only say where the file is.
 * @example await ensureAdminKey(services); // in startApi, before listening
 */
export async function ensureAdminKey(
  deps: Pick<Services, 'prisma' | 'config' | 'log'>,
  { print = (text) => void process.stdout.write(text) }: EnsureAdminKeyOptions = {},
): Promise<void> {
  const { config, prisma, log } = deps;
  if (config.ADMIN_API_KEY) return;
  if (config.NODE_ENV === 'production') throw new Error('ADMIN_API_KEY is required when NODE_ENV=production');

  const file = adminKeyPath(config.dataDir);
  const existing = await prisma.apiKey.count({ where: { role: 'admin', revokedAt: null } });
  if (existing > 0) {
    const saved = await readDevAdminKey(config.dataDir);
    if (saved) print(`Admin API key: see ${file}\n`);
    else log.warn({ file }, 'admin keys exist but none is saved in the data folder; set ADMIN_API_KEY');
    return;
  }

  const { apiKey, keyId } = await issueApiKey(prisma, { role: 'admin' }, 'bootstrap');
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(file, `${apiKey}\n`, { mode: 0o600 });
  await chmod(file, 0o600); // `mode` applies only when the file is created; an old one may be wider
  log.info({ keyId, file }, 'bootstrap admin key created');
  const rule = '='.repeat(78);
  print(
    `\n${rule}\n  Admin API key (shown once, also saved to ${file}):\n\n    ${apiKey}\n\n` +
      `  Use it as: Authorization: Bearer <key>\n${rule}\n\n`,
  );
}

/**
 * The bootstrap admin key saved by {@link ensureAdminKey}, or null when there is none.
 * @example const key = await readDevAdminKey(config.dataDir);
 */
export async function readDevAdminKey(dataDir: string): Promise<string | null> {
  try {
    const text = (await readFile(adminKeyPath(dataDir), 'utf8')).trim();
    return text === '' ? null : text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function adminKeyPath(dataDir: string): string {
  return path.join(dataDir, ADMIN_KEY_FILE);
}
