import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../lib/db/embedded.js';
import { migrate } from '../../lib/db/migrator.js';

export type TestBackend = 'postgres' | 'pglite';

export interface TestDatabase {
  url: string;
  backend: TestBackend;
  /** Drop the database (terminating its connections) or stop the embedded server. */
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /** Apply prisma/migrations before returning. */
  migrated?: boolean;
  /** Default: 'postgres' when DATABASE_URL is set, else 'pglite'. */
  backend?: TestBackend;
}

/** The backends a suite should cover: PGlite always, real PostgreSQL when DATABASE_URL is set. */
export const testBackends: TestBackend[] = process.env.DATABASE_URL ? ['postgres', 'pglite'] : ['pglite'];

/**
 * A fresh, empty database: `ng_test_<random>` on the server of DATABASE_URL (a superuser URL), or an
 * in-memory embedded PGlite when DATABASE_URL is unset.
 */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const backend = options.backend ?? (process.env.DATABASE_URL ? 'postgres' : 'pglite');
  const db = backend === 'postgres' ? await createPostgresDatabase() : await createPGliteDatabase();
  if (options.migrated) {
    try {
      await migrate(db.url);
    } catch (err) {
      await db.drop();
      throw err;
    }
  }
  return db;
}

async function createPGliteDatabase(): Promise<TestDatabase> {
  const embedded = await startEmbeddedPostgres();
  return { url: embedded.url, backend: 'pglite', drop: () => embedded.stop() };
}

async function createPostgresDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error('DATABASE_URL must be set for the postgres test backend');
  const name = `ng_test_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (admin) => admin.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    backend: 'postgres',
    // FORCE (PostgreSQL 13+) terminates the connections a test left open.
    drop: async () => {
      await withAdmin(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
