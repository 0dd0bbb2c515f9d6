import { status } from '@grpc/grpc-js';
import type { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search-attributes.js';
import type { Logger } from '../logger.js';

const RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Make sure the namespace and the task search attributes exist, for real clusters that were not
 * started with them (the embedded dev server registers both with its start flags). Idempotent.
 */
export async function ensureNamespace(connection: Connection, namespace: string, log: Logger): Promise<void> {
  try {
    await connection.workflowService.describeNamespace({ namespace });
  } catch (err) {
    if ((err as { code?: number }).code !== status.NOT_FOUND) throw err;
    log.info({ namespace }, 'registering the Temporal namespace');
    await connection.workflowService
      .registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(RETENTION_MS) })
      .catch((e: { code?: number }) => {
        if (e.code !== status.ALREADY_EXISTS) throw e;
      });
  }
  // A just-registered namespace reaches the server's namespace cache some seconds later.
  const { customAttributes } = await retryWhileNotFound(() =>
    connection.operatorService.listSearchAttributes({ namespace }),
  );
  const missing = SEARCH_ATTRIBUTE_KEYS.filter((k) => !customAttributes?.[k.name]);
  if (missing.length === 0) return;
  log.info({ namespace, missing: missing.map((k) => k.name) }, 'registering search attributes');
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((k) => [k.name, proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
}

async function retryWhileNotFound<T>(call: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if ((err as { code?: number }).code !== status.NOT_FOUND || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
