/**
 * `npm run migrate`: apply prisma/migrations to DATABASE_URL with the project's migrator
 * (Prisma's bookkeeping, no schema-engine binary needed).
 */
import { MigrationError, migrate } from '../lib/db/migrator.js';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write(
    'DATABASE_URL is not set. Set it to the PostgreSQL to migrate, e.g.\n' +
      '  DATABASE_URL=postgresql://user:password@127.0.0.1:5432/neurogrid npm run migrate\n' +
      '(the embedded database of `npm start` is migrated automatically at start-up).\n',
  );
  process.exit(1);
}

try {
  const { applied } = await migrate(url, { log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(
    applied.length === 0 ? 'Database is up to date.\n' : `Applied ${applied.length} migration(s).\n`,
  );
} catch (err) {
  // Never print the URL: it carries the password.
  const message = err instanceof MigrationError ? err.message : `Migration failed: ${(err as Error).message}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
}
