import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/ports.js';
import { jsonLine, type Spawned, spawnEntry } from './helpers/processes.js';

// `npm start` with no service configured: everything embedded, persisted under DATA_DIR.
describe('embedded mode', () => {
  const started: Spawned[] = [];
  let dataDir: string;

  afterAll(async () => {
    for (const p of started) await p.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>) {
    const proc = spawnEntry('scripts/start.ts', env);
    started.push(proc);
    await proc.waitFor((l) => l.includes('NeuroGrid coordinator is up'), 120_000);
    const dbLine = await proc.waitFor((l) => jsonLine(l)?.msg === 'embedded PostgreSQL ready');
    const api = await proc.waitFor((l) => jsonLine(l)?.msg === 'api listening');
    return { proc, databaseUrl: String(jsonLine(dbLine)?.url), apiUrl: String(jsonLine(api)?.url) };
  }

  it('keeps database rows and Temporal workflows written before a SIGKILL', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ng-embedded-'));
    const env = {
      DATA_DIR: dataDir,
      PORT: String(await freePort()),
      TEMPORAL_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
    };
    const first = await start(env);
    expect((await fetch(`${first.apiUrl}/api/health`)).status).toBe(200);

    const db = new pg.Client({ connectionString: first.databaseUrl });
    await db.connect();
    await db.query(
      `INSERT INTO clients (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'before-kill')`,
    );
    await db.end();
    const connection = await Connection.connect({ address: `127.0.0.1:${env.TEMPORAL_PORT}` });
    const client = new Client({ connection, namespace: 'neurogrid' });
    // A queue no worker polls: the workflow just has to exist after the restart.
    await client.workflow.start('durabilityProbe', { taskQueue: 'nobody-polls', workflowId: 'probe-1' });
    await connection.close();

    // Only the coordinator's own process: its Temporal child is orphaned, as after a crash.
    await first.proc.kill('SIGKILL');

    const second = await start(env);
    expect(second.proc.lines.some((l) => l.includes('left over from a previous run'))).toBe(true);
    expect((await fetch(`${second.apiUrl}/api/health`)).status).toBe(200);

    const db2 = new pg.Client({ connectionString: second.databaseUrl });
    await db2.connect();
    const { rows } = await db2.query(
      `SELECT name FROM clients WHERE id = '00000000-0000-4000-8000-000000000001'`,
    );
    await db2.end();
    expect(rows).toEqual([{ name: 'before-kill' }]);

    const connection2 = await Connection.connect({ address: `127.0.0.1:${env.TEMPORAL_PORT}` });
    const described = await new Client({ connection: connection2, namespace: 'neurogrid' }).workflow
      .getHandle('probe-1')
      .describe();
    await connection2.close();
    expect(described.type).toBe('durabilityProbe');
    expect(described.status.name).toBe('RUNNING');

    await second.proc.kill('SIGTERM');
    expect(await second.proc.exited).toBe(0);
  });
});
