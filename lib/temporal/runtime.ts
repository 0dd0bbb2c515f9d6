import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import type { Logger } from '../logger.js';

const PINO_LEVEL = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/**
 * Route the Temporal SDK's own logs (worker state, activity and workflow loggers) into our JSON log.
 * SDK info lines (webpack bundle stats among them) are demoted to debug: they drown a start-up log.
 * Call before the first worker or native connection; later calls are no-ops.
 */
export function installTemporalRuntime(log: Logger): void {
  if (installed) return;
  const sdk = log.child({ part: 'temporal-sdk' });
  const forward = (level: LogLevel, message: string, meta?: LogMetadata) => {
    const target = level === 'INFO' ? 'debug' : PINO_LEVEL[level];
    sdk[target](meta ?? {}, message);
  };
  const logger: TemporalLogger = {
    log: forward,
    trace: (m, meta) => forward('TRACE', m, meta),
    debug: (m, meta) => forward('DEBUG', m, meta),
    info: (m, meta) => forward('INFO', m, meta),
    warn: (m, meta) => forward('WARN', m, meta),
    error: (m, meta) => forward('ERROR', m, meta),
  };
  Runtime.install({ logger });
  installed = true;
}

let installed = false;
