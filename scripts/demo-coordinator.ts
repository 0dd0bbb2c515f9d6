/** The demo's coordinator: the one answering at the API URL, or one it starts with `npm start`. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { stopChild } from '../lib/process.js';
import { cleanups, DemoError, POLL_MS, sleep, statusLine } from './demo-support.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const COORDINATOR_START_TIMEOUT_MS = 10 * 60_000; // a first start may build the Temporal CLI (3–5 min)

/** Use the coordinator answering at `apiUrl`, or start one (locally) that `finish` (in `scripts/demo.ts`) stops. */
export async function ensureCoordinator(apiUrl: string, dataDir: string): Promise<void> {
  if ((await healthStatus(apiUrl)) !== undefined) {
    await waitHealthy(apiUrl, 30_000);
    console.log(`  coordinator  ${apiUrl} (already running)`);
    return;
  }
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(apiUrl).hostname)) {
    throw new DemoError(
      `nothing answers at ${apiUrl}/api/health (the demo starts a coordinator only locally)`,
    );
  }
  const coordinator = await startCoordinator(apiUrl, dataDir);
  cleanups.push(coordinator.stop);
  console.log(`  coordinator  ${apiUrl} (started by the demo; data folder ${dataDir})`);
}

/** The HTTP status of `/api/health`, or undefined when nothing answers. */
async function healthStatus(apiUrl: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${apiUrl}/api/health`, { signal: AbortSignal.timeout(3_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined;
  }
}

async function waitHealthy(apiUrl: string, timeoutMs: number, exited?: () => string | undefined) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problem = exited?.();
    if (problem) throw new DemoError(problem);
    const status = await healthStatus(apiUrl);
    if (status === 200) return;
    if (Date.now() > deadline) {
      throw new DemoError(
        `${apiUrl}/api/health did not answer 200 within ${timeoutMs / 1000} s (last: ${status})`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** `npm start` as a child process, with a live line showing what it is doing while it comes up. */
async function startCoordinator(apiUrl: string, dataDir: string) {
  const port = new URL(apiUrl).port || '80';
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATA_DIR: dataDir, PORT: port },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let phase = 'starting';
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      output.push(line);
      if (output.length > 30) output.shift();
      const msg = logMessage(line);
      if (msg) phase = msg.length > 70 ? `${msg.slice(0, 69)}…` : msg;
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const stop = () => stopChild(child, 30_000);
  const exited = () =>
    child.exitCode !== null || child.signalCode !== null
      ? `the coordinator exited during start-up (${child.exitCode ?? child.signalCode}); its last output:\n${output.join('\n')}`
      : undefined;

  const line = statusLine();
  const t0 = performance.now();
  const ticker = setInterval(() => {
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    line.update(`  coordinator  starting (${seconds} s): ${phase}`, phase);
  }, POLL_MS);
  try {
    await waitHealthy(apiUrl, COORDINATOR_START_TIMEOUT_MS, exited);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearInterval(ticker);
    line.done();
  }
  return { stop };
}

/** The `msg` of a pino JSON line, undefined for anything else (banners, stray output). */
function logMessage(line: string): string | undefined {
  try {
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof msg === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}
