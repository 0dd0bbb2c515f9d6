import { fileURLToPath } from 'node:url';
import { defineConfig } from 'prisma/config';

const schema = fileURLToPath(new URL('./prisma/schema.prisma', import.meta.url));

// Every Prisma CLI start tries to download the native schema engine unless
// PRISMA_SCHEMA_ENGINE_BINARY names an existing file; our machines (and CI) cannot reach the
// download server, so point it at any existing file: generate/validate/format never run it.
// PRISMA_OFFLINE=0 restores stock behaviour (e.g. `prisma migrate dev` with internet access).
if (process.env.PRISMA_OFFLINE !== '0') {
  process.env.PRISMA_SCHEMA_ENGINE_BINARY ||= schema;
  process.env.CHECKPOINT_DISABLE ||= '1';
}

export default defineConfig({
  schema,
  migrations: { path: fileURLToPath(new URL('./prisma/migrations', import.meta.url)) },
  datasource: {
    // Only CLI commands that talk to a database use this; generate works with the placeholder.
    url: process.env.DATABASE_URL || 'postgresql://postgres:postgres@127.0.0.1:5432/neurogrid',
  },
});
