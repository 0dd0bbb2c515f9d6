import { createRequire } from 'node:module';
import { NODE_SOCKET_PATH } from '../protocol/frames.js';

// Helpers shared by the agent's files; not part of its public API.

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** Sent in the hello, so the coordinator can tell agent versions apart. */
export const AGENT_NAME = `neurogrid-node/${version}`;
export const AGENT_VERSION = version;

/** The subset of a pino logger the agent uses; a pino logger fits as-is. */
export interface AgentLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const SILENT: AgentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** `http(s)://host[:port][/prefix]` → `ws(s)://host[:port][/prefix]/api/nodes/connect`. */
export function socketUrl(coordinatorUrl: string): string {
  const url = URL.canParse(coordinatorUrl) ? new URL(coordinatorUrl) : undefined;
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[url?.protocol ?? ''];
  if (!url || !scheme) throw new TypeError('coordinatorUrl must be an http(s):// URL');
  url.protocol = scheme;
  url.pathname = url.pathname.replace(/\/+$/, '') + NODE_SOCKET_PATH;
  url.search = '';
  url.hash = '';
  return url.toString();
}

/**
 * At most `max` characters, and text the protocol accepts: NUL and lone surrogates (a backend's error
 * body may hold them) become U+FFFD, so a report quoting them is not refused.
 */
export function truncate(text: string, max: number): string {
  const cut = text.length > max ? `${text.slice(0, max - 1)}…` : text;
  return cut.toWellFormed().replaceAll('\0', '\uFFFD');
}

/** Wait for `promise` at most `ms`; true when it settled in time. The timer never outlives the wait. */
export async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
