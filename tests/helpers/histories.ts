import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { inject } from 'vitest';

export const HISTORIES_DIR = path.resolve(import.meta.dirname, '../fixtures/histories');

/**
 * With RECORD_HISTORIES=<label> set, save the finished workflow's history as a replay fixture
 * (`tests/fixtures/histories/<label>/<name>.json`, the Temporal CLI's JSON format). Commit them before
 * changing the workflow, so the replay test proves the new code still runs the old histories.
 */
export async function recordHistory(temporal: Client, workflowId: string, name: string): Promise<void> {
  const label = process.env.RECORD_HISTORIES;
  if (!label) return;
  await temporal.workflow
    .getHandle(workflowId)
    .result()
    .catch(() => undefined); // failed and cancelled tasks are histories too
  const { stdout } = await promisify(execFile)(
    inject('temporalCliPath'),
    [
      'workflow',
      'show',
      '--workflow-id',
      workflowId,
      '--namespace',
      inject('temporalNamespace'),
      '-o',
      'json',
    ],
    { env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress') }, maxBuffer: 32 * 1024 * 1024 },
  );
  const dir = path.join(HISTORIES_DIR, label);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `${name}.json`), stdout);
}
