import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/**
 * Applies `prisma/migrations/<name>/migration.sql` with Prisma's own bookkeeping, so this migrator and
 * `prisma migrate deploy` / `status` accept each other's work (Prisma 7 has no offline migrate path,
 * see shared/design/PRISMA-OFFLINE.md).
 */

/** Prisma's advisory lock key: `prisma migrate deploy` waits for us and we wait for it. */
const LOCK_KEY = 72707369;

/** The table exactly as Prisma's schema engine creates it on PostgreSQL. */
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

export interface MigrateOptions {
  /** Folder holding `<name>/migration.sql` folders; defaults to the project's `prisma/migrations`. */
  migrationsDir?: string;
  /** Progress lines (one per applied migration); silent by default. */
  log?: (message: string) => void;
}

/** A migration the migrator refuses to apply or failed to apply; `migration` names it. */
export class MigrationError extends Error {
  constructor(
    message: string,
    readonly migration: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/** The migration folders in name order (Prisma's order), with the SHA-256 of each file's bytes. */
export async function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const bytes = await readFile(path.join(dir, name, 'migration.sql'));
      return {
        name,
        sql: bytes.toString('utf8'),
        checksum: createHash('sha256').update(bytes).digest('hex'),
      };
    }),
  );
}

/**
 * Apply every not-yet-applied migration in name order, each in its own transaction, holding
 * Prisma's advisory lock for the whole run. A no-op when the database is up to date.
 * @throws {MigrationError} when an applied migration's file changed, when an earlier migration
 *   failed and was not resolved, or when a migration fails (its error is stored in `logs`).
 * @example const { applied } = await migrate(process.env.DATABASE_URL!, { log: console.log });
 */
export async function migrate(
  connectionString: string,
  options: MigrateOptions = {},
): Promise<{ applied: string[] }> {
  const log = options.log ?? (() => {});
  const files = await readMigrations(options.migrationsDir);
  const client = new pg.Client({ connectionString });
  // A dropped connection also fails the pending query; without a listener it would crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(CREATE_TABLE);
    const rows = await readHistory(client);
    checkHistory(rows, files);
    const done = new Set(rows.filter(isApplied).map((r) => r.migration_name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file.name)) continue;
      const started = Date.now();
      if (await applyOne(client, file, files)) {
        applied.push(file.name);
        log(`Applied migration ${file.name} (${Date.now() - started} ms)`);
      }
    }
    return { applied };
  } finally {
    // Ending the session would release the lock too; unlocking first is explicit and costs one round trip.
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => {});
    await client.end().catch(() => {});
  }
}

const isApplied = (r: MigrationRow) => r.finished_at !== null && r.rolled_back_at === null;

/** Refuse to go on from a history Prisma would refuse too (failed) or that no longer matches the files. */
function checkHistory(rows: MigrationRow[], files: MigrationFile[]): void {
  const failed = rows.find((r) => r.finished_at === null && r.rolled_back_at === null);
  if (failed) {
    const name = failed.migration_name;
    throw new MigrationError(
      `Migration ${name} failed earlier (see "logs" in _prisma_migrations); no further migration is applied. ` +
        `Repair the database by hand, then mark it rolled back: UPDATE "_prisma_migrations" SET ` +
        `rolled_back_at = now() WHERE migration_name = '${name}' AND finished_at IS NULL ` +
        `(or \`prisma migrate resolve --rolled-back ${name}\` where the schema engine is available).`,
      name,
    );
  }
  const byName = new Map(files.map((f) => [f.name, f]));
  for (const row of rows.filter(isApplied)) {
    const file = byName.get(row.migration_name);
    if (file && file.checksum !== row.checksum) {
      throw new MigrationError(
        `Migration ${row.migration_name} was modified after it was applied (checksum ${row.checksum} in the ` +
          `database, ${file.checksum} on disk). Restore the file and put the change in a new migration.`,
        row.migration_name,
      );
    }
  }
}

/**
 * Run one migration in an explicit transaction. Re-reading the history inside it makes a concurrent
 * migrator harmless even where the advisory lock cannot exclude it: embedded PGlite is one shared
 * session, so its advisory locks are re-entrant for every connection, but an open transaction does pin
 * it to one connection. Returns false when another migrator applied the migration meanwhile.
 */
async function applyOne(client: pg.Client, file: MigrationFile, files: MigrationFile[]): Promise<boolean> {
  await client.query('BEGIN');
  let rows: MigrationRow[];
  try {
    rows = await readHistory(client);
    checkHistory(rows, files);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
  if (rows.some((r) => isApplied(r) && r.migration_name === file.name)) {
    await client.query('ROLLBACK');
    return false;
  }
  const id = randomUUID();
  try {
    await client.query(
      'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())',
      [id, file.checksum, file.name],
    );
    // No parameters: pg sends the whole file as one simple-protocol query, as Prisma does.
    await client.query(file.sql);
    await client.query(
      'UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1',
      [id],
    );
    await client.query('COMMIT');
    return true;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    // Record the failure as Prisma does (finished_at NULL + logs), so both tools refuse to continue.
    await client
      .query(
        'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, logs) VALUES ($1, $2, $3, $4)',
        [id, file.checksum, file.name, failureLog(file.name, err)],
      )
      .catch(() => {});
    const reason = err instanceof Error ? err.message : String(err);
    throw new MigrationError(`Migration ${file.name} failed: ${reason}`, file.name, { cause: err });
  }
}

async function readHistory(client: pg.Client): Promise<MigrationRow[]> {
  const { rows } = await client.query<MigrationRow>(
    'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at',
  );
  return rows;
}

/** The `logs` text, in the shape Prisma writes (name, SQLSTATE, message). */
function failureLog(name: string, err: unknown): string {
  const e = err as Partial<pg.DatabaseError>;
  const lines = [`Migration name: ${name}`, ''];
  if (e.code) lines.push(`Database error code: ${e.code}`, '');
  lines.push('Database error:', `ERROR: ${e.message ?? String(err)}`);
  if (e.detail) lines.push(`DETAIL: ${e.detail}`);
  if (e.hint) lines.push(`HINT: ${e.hint}`);
  if (e.position) lines.push(`POSITION: ${e.position}`);
  return lines.join('\n');
}
