import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../lib/config.js';
import { spawnEntry } from './helpers/processes.js';

function problemsFor(env: Record<string, string>, required: Parameters<typeof loadConfig>[1] = []) {
  try {
    loadConfig(env, required);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('starts with no variables at all (embedded mode)', () => {
    const config = loadConfig({});
    expect(config.embedded).toBe(true);
    expect(config.PORT).toBe(3000);
    expect(config.TEMPORAL_NAMESPACE).toBe('neurogrid');
    expect(config.dataDir).toMatch(/\.data$/);
  });

  it('is not embedded when all three services are given', () => {
    const config = loadConfig({
      TEMPORAL_ADDRESS: 'temporal:7233',
      DATABASE_URL: 'postgresql://u:p@db:5432/ng',
      REDIS_URL: 'redis://cache:6379',
    });
    expect(config.embedded).toBe(false);
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['NODE_ENV', 'staging'],
    ['LOG_LEVEL', 'loud'],
    ['TEMPORAL_ADDRESS', 'http://temporal'],
    ['TEMPORAL_NAMESPACE', 'has spaces'],
    ['TEMPORAL_UI_PORT', '-1'],
    ['DATABASE_URL', 'mysql://u:p@db/ng'],
    ['DATABASE_URL', 'not a url'],
    ['REDIS_URL', 'http://cache:6379'],
    ['HOST_ID', 'a/b'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    const problems = problemsFor({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: `));
  });

  it('never echoes a rejected value (it may be a credential)', () => {
    const problems = problemsFor({ DATABASE_URL: 'mysql://admin:hunter2@db/ng' });
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it.each(['TEMPORAL_ADDRESS', 'DATABASE_URL', 'REDIS_URL'] as const)(
    'requires %s when the process does not embed services',
    (name) => {
      const env: Record<string, string> = {
        TEMPORAL_ADDRESS: '127.0.0.1:7233',
        DATABASE_URL: 'postgresql://u:p@127.0.0.1/ng',
        REDIS_URL: 'redis://127.0.0.1:6379',
      };
      delete env[name];
      const problems = problemsFor(env, ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'REDIS_URL']);
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^${name}: required`))]);
    },
  );

  it('lists every bad variable at once', () => {
    expect(problemsFor({ PORT: 'x', REDIS_URL: 'y' })).toHaveLength(2);
  });
});

describe('start-up with bad configuration', () => {
  it.each([
    [
      'api/main.ts',
      {
        PORT: 'x',
        TEMPORAL_ADDRESS: '127.0.0.1:1',
        DATABASE_URL: 'postgresql://a@b/c',
        REDIS_URL: 'redis://a',
      },
      'PORT',
    ],
    ['api/main.ts', { TEMPORAL_ADDRESS: '127.0.0.1:1', REDIS_URL: 'redis://a' }, 'DATABASE_URL'],
    ['worker/main.ts', { DATABASE_URL: 'postgresql://a@b/c', REDIS_URL: 'redis://a' }, 'TEMPORAL_ADDRESS'],
    ['scripts/start.ts', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ])('%s stops with exit code 1 and names the variable (%j)', async (entry, env, name) => {
    const proc = spawnEntry(entry, env);
    expect(await proc.exited).toBe(1);
    expect(proc.lines.join('\n')).toMatch(new RegExp(`Invalid configuration:[\\s\\S]*${name}: `));
  });
});
