import { createHash } from 'node:crypto';
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_MIGRATIONS_DIR, MigrationError, migrate, readMigrations } from '../lib/db/migrator.js';
import { createTestDatabase, type TestDatabase, testBackends } from './helpers/database.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

interface MigrationRow {
  id: string;
  checksum: string;
  migration_name: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  started_at: Date;
  logs: string | null;
  applied_steps_count: number;
}

const history = (url: string) =>
  query<MigrationRow>(url, 'SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name');

describe.each(testBackends)('migrator on %s', (backend) => {
  let db: TestDatabase;
  let tmp: string;
  let allNames: string[];

  beforeEach(async () => {
    db = await createTestDatabase({ backend });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ng-migrations-'));
    allNames = (await readMigrations()).map((m) => m.name);
  });
  afterEach(async () => {
    await db.drop();
    await rm(tmp, { recursive: true, force: true });
  });

  /** A private copy of the project's migrations, free to edit. */
  async function copyMigrations(): Promise<string> {
    const dir = path.join(tmp, 'migrations');
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    return dir;
  }

  it('applies every migration to an empty database, in name order', async () => {
    const logged: string[] = [];
    const { applied } = await migrate(db.url, { log: (line) => logged.push(line) });

    expect(allNames.length).toBeGreaterThan(0);
    expect(applied).toEqual(allNames);
    expect(logged).toHaveLength(allNames.length);
    const tables = await query<{ table_name: string }>(
      db.url,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['tasks', 'nodes', 'api_keys']));
  });

  it('applies nothing on a second run', async () => {
    await migrate(db.url);
    const before = await history(db.url);

    expect(await migrate(db.url)).toEqual({ applied: [] });
    expect(await history(db.url)).toEqual(before);
  });

  it('keeps the _prisma_migrations table and rows exactly as Prisma writes them', async () => {
    await migrate(db.url);

    const columns = await query(
      db.url,
      `SELECT column_name, data_type, character_maximum_length AS max_length, is_nullable, column_default
         FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    const col = (column_name: string, data_type: string, max_length: number | null, nullable = false) => ({
      column_name,
      data_type,
      max_length,
      is_nullable: nullable ? 'YES' : 'NO',
      column_default: null as string | null,
    });
    expect(columns).toEqual([
      col('id', 'character varying', 36),
      col('checksum', 'character varying', 64),
      col('finished_at', 'timestamp with time zone', null, true),
      col('migration_name', 'character varying', 255),
      col('logs', 'text', null, true),
      col('rolled_back_at', 'timestamp with time zone', null, true),
      { ...col('started_at', 'timestamp with time zone', null), column_default: 'now()' },
      { ...col('applied_steps_count', 'integer', null), column_default: '0' },
    ]);
    const [pk] = await query<{ columns: string }>(
      db.url,
      `SELECT string_agg(a.attname, ',') AS columns FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = '"_prisma_migrations"'::regclass AND i.indisprimary`,
    );
    expect(pk?.columns).toBe('id');

    const rows = await history(db.url);
    expect(rows.map((r) => r.migration_name)).toEqual(allNames);
    for (const row of rows) {
      const file = await readFile(path.join(DEFAULT_MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(file).digest('hex'));
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(row.applied_steps_count).toBe(1);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at?.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
    }
  });

  it('refuses an applied migration whose file changed, naming it', async () => {
    const dir = await copyMigrations();
    await migrate(db.url, { migrationsDir: dir });
    const edited = allNames[0] as string;
    await appendFile(path.join(dir, edited, 'migration.sql'), '\n-- edited after it was applied\n');

    const error = await migrate(db.url, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect(error).toMatchObject({ migration: edited, message: expect.stringContaining(edited) });
    expect((error as Error).message).toMatch(/modified after it was applied/);
  });

  it('records a failing migration like Prisma and refuses to go on until it is resolved', async () => {
    const dir = await copyMigrations();
    const bad = '29990101000000_broken';
    await mkdir(path.join(dir, bad));
    await writeFile(
      path.join(dir, bad, 'migration.sql'),
      'CREATE TABLE "half_done" ("id" INTEGER);\nSELECT * FROM "no_such_table";\n',
    );

    await expect(migrate(db.url, { migrationsDir: dir })).rejects.toMatchObject({
      name: 'MigrationError',
      migration: bad,
    });
    const failed = (await history(db.url)).find((r) => r.migration_name === bad);
    expect(failed).toMatchObject({ finished_at: null, rolled_back_at: null, applied_steps_count: 0 });
    expect(failed?.logs).toMatch(/42P01[\s\S]*no_such_table/);
    // The script ran in one transaction: nothing of it remains.
    expect(await query(db.url, "SELECT to_regclass('public.half_done') AS t")).toEqual([{ t: null }]);

    // Even with the file fixed, a failed migration must be resolved first (as with Prisma, P3009).
    await writeFile(path.join(dir, bad, 'migration.sql'), 'CREATE TABLE "half_done" ("id" INTEGER);\n');
    await expect(migrate(db.url, { migrationsDir: dir })).rejects.toThrow(
      new RegExp(`${bad} failed earlier`),
    );

    await query(
      db.url,
      `UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = '${bad}'`,
    );
    expect(await migrate(db.url, { migrationsDir: dir })).toEqual({ applied: [bad] });
  });

  it('applies each migration exactly once when two migrators start together', async () => {
    const results = await Promise.all([migrate(db.url), migrate(db.url)]);

    expect(results.flatMap((r) => r.applied).sort()).toEqual(allNames);
    const rows = await history(db.url);
    expect(rows.map((r) => r.migration_name).sort()).toEqual(allNames);
    expect(rows.every((r) => r.finished_at !== null && r.logs === null)).toBe(true);
  });
});
