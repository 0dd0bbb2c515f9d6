import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/ports.js';

const ROOT = path.resolve(import.meta.dirname, '..');

// `npm run demo` as a user runs it: nothing is listening, so it starts its own embedded coordinator
// (Temporal dev server + PGlite) in a fresh data folder, runs the tasks and stops everything again.
describe('npm run demo', () => {
  let dataDir: string | undefined;
  let demo: ChildProcess | undefined;

  afterAll(async () => {
    if (demo?.exitCode === null) demo.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('completes every task on a coordinator it starts, then stops it', { timeout: 180_000 }, async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ng-demo-'));
    const port = await freePort();
    // A clean environment (like tests/helpers/processes.ts): no DEMO_API_URL or ADMIN_API_KEY leaks in.
    demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--tasks', '6'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATA_DIR: dataDir,
        PORT: String(port),
        TEMPORAL_PORT: String(await freePort()),
        TEMPORAL_UI_PORT: String(await freePort()),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    demo.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
    demo.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
    const code = await new Promise<number | null>((resolve) => demo?.once('exit', resolve));
    const output = Buffer.concat(chunks).toString();

    expect(code, output).toBe(0);
    expect(output).toContain('started by the demo');
    expect(output).toContain('completed 6/6 · failed 0 · cancelled 0 · unfinished 0');
    expect(output).toMatch(/latency +p50 \d+ ms · p99 \d+ ms/);
    // What was paid: price = reward + fee, and tasks of priced models cost something.
    const tokens = /tokens +paid (\d+) · nodes earned (\d+) · platform fees (\d+)/.exec(output);
    expect(tokens, output).not.toBeNull();
    const [paid, earned, fees] = (tokens as RegExpExecArray).slice(1).map(BigInt);
    expect(paid).toBeGreaterThan(0n);
    expect((earned as bigint) + (fees as bigint)).toBe(paid);
    // The coordinator it started is gone: nothing answers on its port any more.
    await expect(fetch(`http://127.0.0.1:${port}/api/health`)).rejects.toThrow();
  });
});
