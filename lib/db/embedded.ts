import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * Embedded PostgreSQL for the zero-setup mode: PGlite (PostgreSQL 18 in WASM) behind a local
 * PostgreSQL wire-protocol server, so the rest of the code always talks to a URL through `pg` /
 * `@prisma/adapter-pg`, exactly as against a real server.
 *
 * Limits (PGlite is ONE single-user backend session shared by every connection):
 * - queries run one at a time; more connections add no throughput, so keep pools small (2–4).
 * - the sum of every client pool's `max` must stay ≤ `maxConnections`: the server answers an extra
 *   connection with "Too many connections" and closes it, which pg reports as a protocol error.
 * - a connection holding an open transaction blocks all the others until it ends, so never await
 *   another connection's query from inside an interactive transaction (it would wait forever).
 * - session state is shared: SET, advisory locks (re-entrant for everyone), LISTEN, temp tables.
 * - one process per data dir: PGlite has no lock of its own and two instances on one directory diverge
 *   and corrupt it, so `<dataDir>.lock` (holding the pid) guards it.
 */

export interface EmbeddedPostgresOptions {
  /** Directory to persist to (conventionally `<DATA_DIR>/pglite`); undefined = in memory. */
  dataDir?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind; default 127.0.0.1 (never expose it: it accepts any password). */
  host?: string;
  /** Connections accepted at once, across all pools of all clients. Default 64. */
  maxConnections?: number;
}

export interface EmbeddedPostgres {
  /** A `postgresql://` URL for pg / Prisma (`sslmode=disable`: the server does not speak TLS). */
  url: string;
  /** Close the server and PGlite cleanly (end your pools first). Safe to call twice. */
  stop(): Promise<void>;
}

interface Queued {
  handlerId: number;
  message: Uint8Array | null; // null = reset the session after its owner disconnected
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (err: Error) => void;
}

const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);
const READY_FOR_QUERY = 0x5a; // 'Z', 6 bytes: type, int32 length 5, status
const IDLE = 0x49; // 'I': no transaction open
const TERMINATE = 0x58; // 'X'

/**
 * Replaces pglite-socket 0.2.17's query queue, which serialises single *messages* and pins a
 * connection only inside an explicit transaction. An extended-protocol batch (Parse/Bind/…/Sync) can
 * then interleave with another connection's batch and bind to the other's unnamed statement — seen
 * here with >64 KB parameters ("bind message supplies 1 parameters, but prepared statement requires 2",
 * or silently wrong rows), electric-sql/pglite#1046 — and one internal throw leaves the queue stuck.
 * This queue keeps the session pinned to a connection until the backend reports ReadyForQuery idle.
 */
class PinnedQueryQueue {
  #queue: Queued[] = [];
  #owner: number | null = null; // connection the session is pinned to
  #current: number | null = null; // connection whose message is executing
  #running = false;
  #done: Promise<void> = Promise.resolve();

  constructor(private readonly db: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ handlerId, message, onData, resolve, reject });
      this.#drain();
    });
  }

  getQueueLength(): number {
    return this.#queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    const [gone, kept] = partition(this.#queue, (q) => q.handlerId === handlerId);
    this.#queue = kept;
    for (const q of gone) q.reject(new Error('connection closed'));
  }

  /** Called on disconnect: end whatever the connection left open, then serve the others. Never rejects. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.#owner !== handlerId && this.#current !== handlerId) return;
    await new Promise<number>((resolve) => {
      this.#queue.unshift({ handlerId, message: null, onData: () => {}, resolve, reject: () => resolve(0) });
      this.#drain();
    });
  }

  /** Resolves when no query is running (used before closing PGlite). */
  async idle(): Promise<void> {
    while (this.#running) await this.#done;
  }

  #drain(): void {
    if (this.#running) return;
    this.#running = true;
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    for (;;) {
      const i = this.#owner === null ? 0 : this.#queue.findIndex((q) => q.handlerId === this.#owner);
      const item = i >= 0 ? this.#queue.splice(i, 1)[0] : undefined;
      if (!item) {
        this.#running = false; // in the same tick as the emptiness check, so no enqueue is missed
        return;
      }
      this.#current = item.handlerId;
      try {
        item.resolve(item.message ? await this.#exec(item.message, item.onData) : await this.#reset());
      } catch (err) {
        this.#owner = this.db.closed || !this.db.isInTransaction() ? null : item.handlerId;
        item.reject(err instanceof Error ? err : new Error(String(err)));
      } finally {
        this.#current = null;
      }
    }
  }

  async #exec(message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    let bytes = 0;
    const tail = new Uint8Array(6);
    await this.db.runExclusive(() =>
      this.db.execProtocolRawStream(message, {
        onRawData: (data) => {
          bytes += data.length;
          keepTail(tail, data);
          onData(data);
        },
      }),
    );
    // Pinned until the backend is idle again: mid-batch (no ReadyForQuery yet) or inside a transaction.
    // Terminate has no reply; if it leaves a transaction open, the disconnect's reset rolls it back.
    const idle =
      message[0] === TERMINATE
        ? !this.db.isInTransaction()
        : tail[0] === READY_FOR_QUERY && tail[4] === 5 && tail[5] === IDLE;
    this.#owner = idle ? null : (this.#current as number);
    return bytes;
  }

  async #reset(): Promise<number> {
    try {
      await this.db.runExclusive(() => this.db.execProtocolRaw(SYNC)); // ends an unfinished batch
      if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
    } finally {
      this.#owner = null;
    }
    return 0;
  }
}

function partition<T>(items: T[], pred: (item: T) => boolean): [T[], T[]] {
  return [items.filter(pred), items.filter((item) => !pred(item))];
}

/** Keep the last 6 bytes of a stream (ReadyForQuery is 6 bytes and always comes last). */
function keepTail(tail: Uint8Array, data: Uint8Array): void {
  if (data.length >= 6) {
    tail.set(data.subarray(data.length - 6));
  } else {
    tail.copyWithin(0, data.length);
    tail.set(data, 6 - data.length);
  }
}

/**
 * Start PGlite (in memory, or persisted in `dataDir`) behind a PostgreSQL wire server.
 * First start of a new data dir runs initdb (~5 s); reopening takes ~1 s.
 * Data survives `stop()` and also a SIGKILL of this process: PGlite writes through to the files
 * (fsync off, so only an OS crash or power loss can lose the last commits).
 * @example const pgEmbedded = await startEmbeddedPostgres({ dataDir: path.join(config.dataDir, 'pglite') });
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const unlock = options.dataDir ? await lockDataDir(options.dataDir) : async () => {};
  let db: PGlite;
  try {
    if (options.dataDir) await mkdir(options.dataDir, { recursive: true });
    db = await createPGlite(options.dataDir);
  } catch (err) {
    await unlock();
    throw err;
  }
  const queue = new PinnedQueryQueue(db);
  const server = new PGLiteSocketServer({
    db,
    port: options.port ?? 0,
    host: options.host ?? '127.0.0.1',
    maxConnections: options.maxConnections ?? 64,
  });
  installQueue(server, queue);
  try {
    await server.start();
  } catch (err) {
    await db.close();
    await unlock();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    url: `postgresql://postgres:postgres@${server.getServerConn()}/postgres?sslmode=disable`,
    stop: () => {
      stopping ??= (async () => {
        await server.stop(); // detaching the handlers queues their session resets
        await queue.idle();
        await db.close();
        await unlock();
      })();
      return stopping;
    },
  };
}

const heldLocks = new Set<string>();

/**
 * Take `<dataDir>.lock` for this process. A lock whose process is gone (e.g. SIGKILLed) is stale and
 * taken over; a pid equal to ours but not held here is a previous life (containers reuse pids).
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = `${path.resolve(dataDir)}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, String(process.pid), { flag: 'wx' });
      heldLocks.add(file);
      return async () => {
        heldLocks.delete(file);
        await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
      const inUse = pid === process.pid ? heldLocks.has(file) : pid > 0 && isAlive(pid);
      if (inUse) {
        throw new Error(
          `Embedded database ${dataDir} is in use by process ${pid}; stop it first ` +
            `(or delete ${file} if no such coordinator is running).`,
        );
      }
      await rm(file, { force: true });
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Fresh in-memory clusters are cloned from one initdb per process: ~0.5 s instead of ~2–5 s. */
let memoryTemplate: Promise<Blob | File> | undefined;

async function createPGlite(dataDir: string | undefined): Promise<PGlite> {
  if (dataDir) return PGlite.create({ dataDir });
  if (memoryTemplate) return PGlite.create({ loadDataDir: await memoryTemplate });
  const db = await PGlite.create();
  memoryTemplate ??= db.dumpDataDir('none'); // still pristine: nothing has run on it yet
  await memoryTemplate;
  return db;
}

/**
 * Swap in {@link PinnedQueryQueue}. The server creates its handlers with `this.queryQueue`, a private
 * field in the pinned 0.2.17; fail loudly if an upgrade renames it rather than silently keep the bug.
 */
function installQueue(server: PGLiteSocketServer, queue: PinnedQueryQueue): void {
  const target = server as unknown as { queryQueue?: { enqueue?: unknown } };
  if (typeof target.queryQueue?.enqueue !== 'function') {
    throw new Error('@electric-sql/pglite-socket changed: re-check lib/db/embedded.ts PinnedQueryQueue');
  }
  (target as { queryQueue: unknown }).queryQueue = queue;
}
