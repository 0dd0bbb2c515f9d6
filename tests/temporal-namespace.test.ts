import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../lib/logger.js';
import { ensureNamespace } from '../lib/temporal/namespace.js';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/search-attributes.js';

describe('ensureNamespace (real clusters started without our flags)', () => {
  let connection: Connection;
  const namespace = `ns-${Date.now().toString(36)}`;
  const log = createLogger('test', 'silent');

  beforeAll(async () => {
    connection = await Connection.connect({ address: inject('temporalAddress') });
  });
  afterAll(() => connection?.close());

  it('registers a missing namespace with the task search attributes, and a second call changes nothing', async () => {
    await ensureNamespace(connection, namespace, log);
    const { namespaceInfo } = await connection.workflowService.describeNamespace({ namespace });
    expect(namespaceInfo?.name).toBe(namespace);
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    for (const key of SEARCH_ATTRIBUTE_KEYS) expect(customAttributes).toHaveProperty(key.name);

    await expect(ensureNamespace(connection, namespace, log)).resolves.toBeUndefined();
  });
});
