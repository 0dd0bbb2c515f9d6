#!/usr/bin/env node
// Launcher for `npx neurogrid-node` / the package bin: the CLI is TypeScript, run through tsx.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

// The repository's tsconfig, whatever the current directory (e.g. a systemd unit's).
register({ tsconfig: fileURLToPath(new URL('../../tsconfig.json', import.meta.url)) });
await import(new URL('../cli.ts', import.meta.url).href);
