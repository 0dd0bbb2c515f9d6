/** The chaos run's command line: its own knobs and the coordinator settings it passes on. */
import { parseArgs } from 'node:util';
import { KINDS, type Kind } from './chaos-cluster.js';

export const NAMESPACE = 'neurogrid';
export const MODEL = { name: 'chaos-llm', version: '1' } as const;

/** Coordinator settings the run sets, with their flags (all durations in ms). */
export const SETTINGS = {
  'accept-timeout-ms': { env: 'TASK_ACCEPT_TIMEOUT_MS', value: 3_000 },
  'result-timeout-ms': { env: 'TASK_RESULT_TIMEOUT_MS', value: 8_000 },
  'queue-timeout-ms': { env: 'TASK_QUEUE_TIMEOUT_MS', value: 60_000 },
  'no-node-retry-ms': { env: 'TASK_NO_NODE_RETRY_MS', value: 1_000 },
  'start-timeout-ms': { env: 'TASK_START_TIMEOUT_MS', value: 3_000 },
  'stranded-grace-ms': { env: 'TASK_STRANDED_GRACE_MS', value: 8_000 },
  'reaper-interval-ms': { env: 'REAPER_INTERVAL_MS', value: 2_000 },
  'heartbeat-interval-ms': { env: 'NODE_HEARTBEAT_INTERVAL_MS', value: 1_000 },
  'presence-ttl-ms': { env: 'NODE_PRESENCE_TTL_MS', value: 5_000 },
  'host-lease-ttl-ms': { env: 'HOST_LEASE_TTL_MS', value: 3_000 },
  'max-attempts': { env: 'TASK_MAX_ATTEMPTS', value: 3 },
} as const;
export type Setting = keyof typeof SETTINGS;

/** The run's own knobs. */
export const KNOBS = {
  tasks: 300,
  concurrency: 12,
  'kill-every-ms': 6_000,
  'restart-min-ms': 500,
  'restart-max-ms': 3_000,
  'cancel-window-ms': 3_000,
  'submit-tries': 4,
  'final-wait-ms': 180_000,
  'node-capacity': 4,
} as const;
export type Knob = keyof typeof KNOBS;

const USAGE = `Usage: npm run chaos -- [options]
  --tasks N (300)  --concurrency C (12)  --cancel-ratio R (0.25)  --label L (the task count)
  --kill-every-ms (6000, jittered ±50 %)  --restart-min-ms (500)  --restart-max-ms (3000)
  --kinds api,worker,node,temporal (what may be killed)  --cancel-window-ms (3000)
  --submit-tries (4)  --final-wait-ms (180000)  --node-capacity (4)  --sim-latency-ms (50-1500)
  --keep-db (keep the database and print its URL)
  coordinator settings: ${Object.entries(SETTINGS)
    .map(([flag, s]) => `--${flag} (${s.env}, ${s.value})`)
    .join(', ')}`;

export type Options = Record<Knob, number> &
  Record<Setting, number> & {
    cancelRatio: number;
    label: string;
    kinds: Kind[];
    simLatency: string;
    keepDb: boolean;
  };

export function parseCommandLine(): Options {
  const names = [...Object.keys(KNOBS), ...Object.keys(SETTINGS)];
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
      'cancel-ratio': { type: 'string' },
      label: { type: 'string' },
      kinds: { type: 'string' },
      'sim-latency-ms': { type: 'string' },
      'keep-db': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, fallback: number) => {
    const raw = values[name as keyof typeof values];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) usage(`--${name} must be a whole number ≥ 0`);
    return n;
  };
  const options = {
    ...Object.fromEntries(Object.entries(KNOBS).map(([k, v]) => [k, int(k, v)])),
    ...Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, int(k, s.value)])),
  } as Record<Knob | Setting, number>;
  const cancelRatio = Number(values['cancel-ratio'] ?? 0.25);
  if (!(cancelRatio >= 0 && cancelRatio <= 1)) usage('--cancel-ratio must be from 0 to 1');
  const kinds = (values.kinds ?? KINDS.join(',')).split(',').map((k) => k.trim()) as Kind[];
  if (kinds.some((k) => !KINDS.includes(k))) usage(`--kinds: a list of ${KINDS.join(', ')}`);
  const simLatency = values['sim-latency-ms'] ?? '50-1500';
  if (!/^\d+(-\d+)?$/.test(simLatency)) usage('--sim-latency-ms: n or a-b');
  if (options.tasks < 1 || options.concurrency < 1) usage('--tasks and --concurrency must be ≥ 1');
  if (options['restart-max-ms'] < options['restart-min-ms']) usage('--restart-max-ms < --restart-min-ms');
  const label = values.label ?? String(options.tasks);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(label)) usage('--label: letters, digits, . _ -');
  return { ...options, cancelRatio, label, kinds, simLatency, keepDb: values['keep-db'] ?? false };
}

function usage(message: string): never {
  console.error(`chaos: ${message}\n${USAGE}`);
  process.exit(2);
}

export const rand = (min: number, max: number) => min + Math.random() * (max - min);
export const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
