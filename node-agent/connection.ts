import { EventEmitter, once } from 'node:events';
import WebSocket from 'ws';
import { CLOSE_KEY_REVOKED, CLOSE_REPLACED, CLOSE_UNAUTHORIZED } from '../protocol/frames.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { type AgentLogger, raceTimeout } from './internal.js';

export interface ConnectionOptions {
  /** ws(s)://…/api/nodes/connect of each coordinator address, tried in turn. */
  urls: string[];
  apiKey: string;
  backoff: BackoffOptions;
  /** A session established this long resets the backoff. */
  stableAfterMs: number;
  /** Limit for the TCP/TLS/HTTP upgrade. */
  handshakeTimeoutMs: number;
  log: AgentLogger;
}

export interface ConnectionEvents {
  /** A socket is open: say hello. */
  open: [];
  message: [data: Buffer, isBinary: boolean];
  /** The current socket is gone (a redial is already scheduled unless closed or refused). */
  close: [info: { opened: boolean; code: number; reason: string }];
  /** The coordinator refused or revoked the key: no more redials. */
  refused: [error: Error];
}

/**
 * The socket mechanics under NodeAgent: one WebSocket to the coordinator at a time, authenticated
 * on the upgrade, redialled with backoff until close() or a refused key, and abandoned when it goes
 * silent (a half-open TCP connection otherwise looks open forever). With several coordinator
 * addresses, every failed dial and every disconnect moves on to the next one (round robin); the
 * backoff grows once per round, so a live address is found fast. It knows nothing of frames.
 */
export class CoordinatorConnection extends EventEmitter<ConnectionEvents> {
  /** Dials after the first one. */
  redials = 0;
  private ws: WebSocket | undefined;
  private closing = false;
  /** Failed dials and disconnects since the last stable session. */
  private attempt = 0;
  private index = 0;
  private lastSeen = 0;
  private timers: { redial?: NodeJS.Timeout; stable?: NodeJS.Timeout; liveness?: NodeJS.Timeout } = {};

  constructor(private readonly options: ConnectionOptions) {
    super();
  }

  /** The address dialled last (or being dialled). */
  get url(): string {
    return this.options.urls[this.index] as string;
  }

  dial(): void {
    if (this.closing) return;
    const { apiKey, handshakeTimeoutMs } = this.options;
    const url = this.url;
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${apiKey}` },
      handshakeTimeout: handshakeTimeoutMs,
    });
    this.ws = ws;
    const seen = {
      opened: false,
      httpStatus: undefined as number | undefined,
      error: undefined as string | undefined,
    };
    // A coordinator may refuse the key with an HTTP status instead of accepting and closing with 4401.
    ws.on('unexpected-response', (_req, res) => {
      seen.httpStatus = res.statusCode;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      seen.opened = true;
      this.lastSeen = Date.now();
      this.emit('open');
    });
    ws.on('message', (data, isBinary) => {
      this.lastSeen = Date.now();
      if (ws === this.ws) this.emit('message', data as Buffer, isBinary);
    });
    ws.on('pong', () => {
      this.lastSeen = Date.now();
    });
    ws.on('error', (err) => {
      seen.error = err.message;
    });
    ws.on('close', (code, reason) => {
      if (ws !== this.ws) return;
      this.ws = undefined;
      this.clearTimers();
      this.emit('close', { opened: seen.opened, code, reason: reason.toString() });
      if (code === CLOSE_KEY_REVOKED) {
        this.closing = true;
        this.emit('refused', new Error(`the coordinator revoked the node key (${code}); not reconnecting`));
        return;
      }
      if (code === CLOSE_UNAUTHORIZED || seen.httpStatus === 401 || seen.httpStatus === 403) {
        this.closing = true;
        const status = seen.httpStatus ?? code;
        this.emit('refused', new Error(`the coordinator refused the node key (${status}); not reconnecting`));
        return;
      }
      if (this.closing) return;
      if (code === CLOSE_REPLACED) {
        this.options.log.warn(
          'another connection with this node key replaced this one: is a second agent using it?',
        );
      }
      const { urls } = this.options;
      const delayMs = backoffDelay(Math.floor(this.attempt++ / urls.length), this.options.backoff);
      this.index = (this.index + 1) % urls.length;
      const msg = seen.opened ? 'disconnected; reconnecting' : 'could not connect; retrying';
      const next = urls.length > 1 ? { next: this.url } : {};
      this.options.log.warn(
        { url, code, httpStatus: seen.httpStatus, error: seen.error, delayMs, ...next },
        msg,
      );
      this.timers.redial = setTimeout(() => {
        this.redials++;
        this.dial();
      }, delayMs);
    });
  }

  /** The session is up (hello acked): ping every `intervalMs`, and reset the backoff once it is stable. */
  established(intervalMs: number): void {
    this.timers.stable = setTimeout(() => {
      this.attempt = 0;
    }, this.options.stableAfterMs);
    this.timers.liveness = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastSeen > Math.max(3 * intervalMs, 3_000)) {
        this.options.log.warn('coordinator silent for too long; reconnecting');
        ws.terminate();
      } else {
        ws.ping();
      }
    }, intervalMs);
  }

  /** Drop this socket and redial (e.g. the hello was never acked). */
  drop(): void {
    this.ws?.terminate();
  }

  send(text: string): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(text, (err) => {
      if (err) this.options.log.debug({ err: err.message }, 'send failed');
    });
    return true;
  }

  /** Stop redialling and close the socket normally (1000); resolves once it is closed. */
  async close(): Promise<void> {
    this.closing = true;
    this.clearTimers();
    const ws = this.ws;
    if (!ws) return;
    const closed = once(ws, 'close');
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'node stopping');
    else ws.terminate();
    if (!(await raceTimeout(closed, 2_000))) ws.terminate();
  }

  private clearTimers(): void {
    clearTimeout(this.timers.redial);
    clearTimeout(this.timers.stable);
    clearInterval(this.timers.liveness);
    this.timers = {};
  }
}
