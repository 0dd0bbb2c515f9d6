import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../lib/db/embedded.js';

const embeddedModule = pathToFileURL(path.resolve(import.meta.dirname, '../lib/db/embedded.ts')).href;

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const countRows = (url: string) =>
  withClient(url, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows[0]?.n);

/**
 * Child process: open the data dir, commit `rows` rows one by one over the wire, report, then keep an
 * uncommitted transaction open until the parent kills it with SIGKILL.
 */
const writerScript = `
import pg from 'pg';
import { startEmbeddedPostgres } from ${JSON.stringify(embeddedModule)};
const [dataDir, rows] = [process.env.NG_DIR, Number(process.env.NG_ROWS)];
const db = await startEmbeddedPostgres({ dataDir });
const client = new pg.Client({ connectionString: db.url });
await client.connect();
await client.query('CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v text NOT NULL)');
for (let i = 0; i < rows; i++) await client.query('INSERT INTO t (v) VALUES ($1)', ['row ' + i]);
await client.query('BEGIN');
await client.query("INSERT INTO t (v) VALUES ('never committed')");
process.stdout.write('COMMITTED\\n');
setInterval(() => {}, 1000);
`;

function writeThenSigkill(dataDir: string, rows: number): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', writerScript], {
      env: { ...process.env, NG_DIR: dataDir, NG_ROWS: String(rows) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('COMMITTED')) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      signal ? resolve(signal) : reject(new Error(`writer exited with ${code}: ${stderr}`)),
    );
  });
}

describe('embedded PostgreSQL (PGlite)', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ng-pglite-'));
  });
  afterAll(() => rm(tmp, { recursive: true, force: true }));

  it('keeps its data across stop and reopen', async () => {
    const dataDir = path.join(tmp, 'reopen', 'pglite');
    const first = await startEmbeddedPostgres({ dataDir });
    expect(first.url).toMatch(
      /^postgresql:\/\/postgres:postgres@127\.0\.0\.1:\d+\/postgres\?sslmode=disable$/,
    );
    await withClient(first.url, async (c) => {
      await c.query('CREATE TABLE t (id serial PRIMARY KEY, v text NOT NULL)');
      await c.query("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')");
    });
    await first.stop();
    await first.stop(); // idempotent

    const second = await startEmbeddedPostgres({ dataDir });
    try {
      expect(await countRows(second.url)).toBe(3);
    } finally {
      await second.stop();
    }
  });

  it('refuses to open a data dir that another instance holds', async () => {
    const dataDir = path.join(tmp, 'locked', 'pglite');
    const first = await startEmbeddedPostgres({ dataDir });
    try {
      await expect(startEmbeddedPostgres({ dataDir })).rejects.toThrow(/in use by process/);
    } finally {
      await first.stop();
    }
    await (await startEmbeddedPostgres({ dataDir })).stop();
  });

  it('keeps every committed row, and no uncommitted one, when the holding process is SIGKILLed', async () => {
    const dataDir = path.join(tmp, 'killed', 'pglite');
    expect(await writeThenSigkill(dataDir, 50)).toBe('SIGKILL');
    // A second crash on top of the recovered directory must not lose anything either; the killed
    // process's lock file is stale and taken over.
    expect(await writeThenSigkill(dataDir, 25)).toBe('SIGKILL');

    const reopened = await startEmbeddedPostgres({ dataDir });
    try {
      expect(await countRows(reopened.url)).toBe(75);
      const lost = await withClient(reopened.url, (c) =>
        c.query("SELECT 1 FROM t WHERE v = 'never committed'"),
      );
      expect(lost.rowCount).toBe(0);
    } finally {
      await reopened.stop();
    }
  });

  describe('with many connections at once', () => {
    let db: Awaited<ReturnType<typeof startEmbeddedPostgres>>;
    let pool: pg.Pool;
    beforeAll(async () => {
      db = await startEmbeddedPostgres();
      pool = new pg.Pool({ connectionString: db.url, max: 8 });
    });
    afterAll(async () => {
      await pool?.end();
      await db?.stop();
    });

    it('never mixes one connection’s statement with another’s parameters', async () => {
      // Large parameters arrive in several TCP chunks: the stock pglite-socket queue then let other
      // connections' Parse messages in between (electric-sql/pglite#1046).
      const big = 'x'.repeat(256 * 1024);
      const results = await Promise.all(
        Array.from({ length: 120 }, async (_, i) => {
          if (i % 2 === 0) {
            const r = await pool.query(`SELECT length($1::text) + ${i} AS v`, [big]);
            return r.rows[0].v === big.length + i;
          }
          const r = await pool.query(`SELECT $1::int + ${i} AS v, $2::text AS w`, [i, 'w']);
          return r.rows[0].v === 2 * i && r.rows[0].w === 'w';
        }),
      );
      expect(results.every(Boolean)).toBe(true);
    });

    it('lets a transaction finish before other connections run, and recovers after an error', async () => {
      await pool.query('CREATE TABLE IF NOT EXISTS counter (n int NOT NULL)');
      await pool.query('INSERT INTO counter VALUES (0)');
      const increment = async () => {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const { rows } = await client.query<{ n: number }>('SELECT n FROM counter');
          await client.query('UPDATE counter SET n = $1', [(rows[0]?.n ?? 0) + 1]);
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      };
      const failing = pool.query('SELECT 1 / $1::int', [0]).catch((e: Error) => e);
      await Promise.all([...Array.from({ length: 20 }, increment), failing]);

      expect(await failing).toBeInstanceOf(Error);
      expect((await pool.query('SELECT n FROM counter')).rows[0].n).toBe(20);
    });

    it('frees the session when a client disconnects inside a transaction', async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query('BEGIN');
      await client.query('CREATE TABLE abandoned (x int)');
      await client.end(); // a pending ROLLBACK is the server's job

      expect((await pool.query("SELECT to_regclass('abandoned') AS t")).rows[0].t).toBeNull();
    });
  });
});
