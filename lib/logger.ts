import { type Logger, pino } from 'pino';

export type { Logger };

/** Header and field names whose values never reach a log line. */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  '*.apiKey',
  '*.password',
  '*.secret',
  '*.token',
];

/**
 * JSON logs on stdout, one line per event, secrets redacted.
 * @example const log = createLogger('api', 'info'); log.info({ port }, 'listening');
 */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' } });
}
