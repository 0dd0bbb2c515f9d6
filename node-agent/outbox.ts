import { prettifyError } from 'zod';
import { MAX_FRAME_BYTES, nodeFrame, type ReportFrame } from '../protocol/frames.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { type AgentLogger, truncate } from './internal.js';

export interface OutboxOptions {
  /** Most reports kept; beyond it the oldest is dropped. */
  max: number;
  log: AgentLogger;
  /** Put the text on the current session; false when there is none (the report waits for `flush`). */
  send(text: string): boolean;
  /** Delays before sending a report again after `internal` or no answer: exponential, jittered, capped. */
  retry: BackoffOptions;
  /** A report neither acked nor refused within this is sent again (after a retry delay). */
  ackTimeoutMs: number;
}

interface Item {
  /** What the coordinator acks: `result` may have become `error` (see serialize). */
  type: ReportFrame['type'];
  text: string;
  /** After this nobody waits for the report (its attempt's deadline, plus slack). */
  expiresAt: number;
  /** Sends that failed in a row (`internal`, or no answer): sets the next retry delay. */
  failures: number;
  timer?: NodeJS.Timeout;
}

/**
 * A node's reports (accept, reject, result, error) the coordinator has not answered yet, one per
 * attempt (a later report of an attempt replaces an earlier one: a result implies the accept). Each
 * stays until the coordinator acks it or refuses it for good, and is sent again
 * - after `internal` (the coordinator failed on it) or no answer within `ackTimeoutMs`, with backoff;
 * - after every reconnect (`flush`), since a frame written to a socket that then drops may never arrive.
 * A report goes once its attempt's deadline has passed, or when the cap is reached (oldest first), so
 * a coordinator that never answers costs bounded memory and traffic.
 */
export class Outbox {
  private readonly items = new Map<string, Item>();

  constructor(private readonly options: OutboxOptions) {}

  /** Keep the report (replacing the attempt's earlier one) and send it now if connected. */
  add(attemptId: string, frame: ReportFrame, expiresAt: number): void {
    this.drop(attemptId);
    if (this.items.size >= this.options.max) {
      const oldest = this.items.keys().next().value as string;
      this.drop(oldest);
      this.options.log.warn({ attemptId: oldest }, 'outbox full: dropped the oldest unanswered report');
    }
    const item: Item = { ...this.serialize(attemptId, frame), expiresAt, failures: 0 };
    this.items.set(attemptId, item); // Map order: oldest first
    this.transmit(attemptId, item);
  }

  has(attemptId: string): boolean {
    return this.items.has(attemptId);
  }

  /** Send the attempt's pending report again now (e.g. the same assignment arrived twice). */
  resend(attemptId: string): void {
    const item = this.items.get(attemptId);
    if (item) this.transmit(attemptId, item);
  }

  /** The coordinator acked the attempt's `type` report, or refused it for good: stop sending it. */
  settle(attemptId: string, type: string): void {
    if (this.items.get(attemptId)?.type === type) this.drop(attemptId);
  }

  /** The coordinator failed on the attempt's `type` report (`internal`): send it again after a delay. */
  retryLater(attemptId: string, type: string): void {
    const item = this.items.get(attemptId);
    if (item?.type === type) this.failed(attemptId, item, 'the coordinator failed on it');
  }

  /** Forget the attempt's report, whatever it is (the attempt was cancelled). */
  drop(attemptId: string): void {
    clearTimeout(this.items.get(attemptId)?.timer);
    this.items.delete(attemptId);
  }

  /** A session is up: send every report now, with fresh retry delays. */
  flush(): void {
    for (const [attemptId, item] of this.items) {
      item.failures = 0;
      this.transmit(attemptId, item);
    }
  }

  /** The session is gone: no timers until the next `flush`; the reports are kept. */
  suspend(): void {
    for (const item of this.items.values()) clearTimeout(item.timer);
  }

  private transmit(attemptId: string, item: Item): void {
    clearTimeout(item.timer);
    if (Date.now() > item.expiresAt) {
      this.items.delete(attemptId);
      this.options.log.warn(
        { attemptId, type: item.type },
        'dropped a report never answered before its deadline',
      );
      return;
    }
    if (!this.options.send(item.text)) return;
    item.timer = setTimeout(() => this.failed(attemptId, item, 'no answer'), this.options.ackTimeoutMs);
  }

  private failed(attemptId: string, item: Item, why: string): void {
    clearTimeout(item.timer);
    const delayMs = backoffDelay(item.failures++, this.options.retry);
    this.options.log.warn({ attemptId, type: item.type, why, delayMs }, 'report not taken; sending it again');
    item.timer = setTimeout(() => this.transmit(attemptId, item), delayMs);
  }

  /**
   * JSON text of the report, or of an error report saying why it cannot be sent: an output JSON cannot
   * carry (BigInt, cycles), one the protocol refuses (NUL, lone surrogates, too deep), or one over the
   * coordinator's frame limit, which would close the socket on every re-send.
   */
  private serialize(attemptId: string, frame: ReportFrame): Pick<Item, 'type' | 'text'> {
    let problem: string;
    try {
      const text = JSON.stringify(frame);
      const bytes = Buffer.byteLength(text);
      const checked = nodeFrame.safeParse(frame);
      if (bytes > MAX_FRAME_BYTES)
        problem = `output too large to send: ${bytes} bytes, limit ${MAX_FRAME_BYTES}`;
      else if (!checked.success) problem = `output refused by the protocol: ${prettifyError(checked.error)}`;
      else return { type: frame.type, text };
    } catch (err) {
      problem = `output is not serialisable as JSON: ${(err as Error).message}`;
    }
    this.options.log.warn({ attemptId, problem }, 'reporting an error instead of the result');
    const message = truncate(problem, 2_000);
    return { type: 'error', text: JSON.stringify({ v: frame.v, type: 'error', attemptId, message }) };
  }
}
