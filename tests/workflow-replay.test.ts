import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { HISTORIES_DIR } from './helpers/histories.js';

const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

async function fixtures(): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const version of await readdir(HISTORIES_DIR).catch(() => [])) {
    for (const file of await readdir(path.join(HISTORIES_DIR, version))) {
      if (file.endsWith('.json')) out.push([`${version}/${file}`, path.join(HISTORIES_DIR, version, file)]);
    }
  }
  return out;
}

// Recorded histories of earlier versions of the task workflow must replay on the current code:
// a deploy never breaks a task that is already running.
describe('task workflow replay', async () => {
  const files = await fixtures();

  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('replays %s', async (_name, file) => {
    const history = JSON.parse(await readFile(file, 'utf8'));
    await expect(Worker.runReplayHistory({ workflowsPath }, history)).resolves.toBeUndefined();
  });
});
