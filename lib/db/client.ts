import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../../generated/prisma/client.js';

export interface CreatePrismaOptions {
  /**
   * Pool size (pg's default is 10). Against embedded PGlite keep it small (2–4): it runs one query at
   * a time, and all pools together must stay under its `maxConnections` (see lib/db/embedded.ts).
   */
  max?: number;
}

/**
 * A PrismaClient over `@prisma/adapter-pg` (pure JS: no query-engine binary to download).
 * Connects lazily on the first query; call `$disconnect()` to end its pool.
 * Don't give the adapter a `statementNameGenerator` when the URL may be embedded PGlite: named
 * statements live in PGlite's one shared session, so two connections would collide on the names.
 */
export function createPrisma(url: string, options: CreatePrismaOptions = {}): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: url,
    ...(options.max === undefined ? {} : { max: options.max }),
  });
  return new PrismaClient({ adapter });
}

/** Round-trip `SELECT 1`; resolves to the latency in milliseconds, rejects when unreachable. */
export async function pingDatabase(prisma: PrismaClient): Promise<number> {
  const started = performance.now();
  await prisma.$queryRaw`SELECT 1`;
  return performance.now() - started;
}
