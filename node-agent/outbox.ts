import { MAX_FRAME_BYTES, type NodeFrame } from '../protocol/frames.js';
import { type AgentLogger, truncate } from './internal.js';

/**
 * Result and error frames the coordinator has not acked yet, by attemptId, oldest first. A frame
 * written to a socket that then drops may never have arrived, so each one stays here until acked and
 * is re-sent after every reconnect; it goes once its attempt's deadline has passed (nobody waits for it
 * any more) or when the cap is reached (oldest first), so a coordinator that never acks costs bounded
 * memory.
 */
export class Outbox {
  private readonly items = new Map<string, { text: string; expiresAt: number }>();

  constructor(
    private readonly max: number,
    private readonly log: AgentLogger,
  ) {}

  /** Serialize and keep the frame; returns the text to send. */
  add(attemptId: string, frame: NodeFrame, expiresAt: number): string {
    const text = this.serialize(attemptId, frame);
    if (this.items.size >= this.max) {
      const oldest = this.items.keys().next().value as string;
      this.items.delete(oldest);
      this.log.warn({ attemptId: oldest }, 'outbox full: dropped the oldest unacked result');
    }
    this.items.delete(attemptId); // re-insert: Map order stays oldest first
    this.items.set(attemptId, { text, expiresAt });
    return text;
  }

  /**
   * JSON text of the frame, or of an error frame saying why it cannot be sent: an output JSON cannot
   * carry (BigInt, cycles), or one over the coordinator's frame limit, which would close the socket on
   * every re-send.
   */
  private serialize(attemptId: string, frame: NodeFrame): string {
    let problem: string;
    try {
      const text = JSON.stringify(frame);
      const bytes = Buffer.byteLength(text);
      if (bytes <= MAX_FRAME_BYTES) return text;
      problem = `output too large to send: ${bytes} bytes, limit ${MAX_FRAME_BYTES}`;
    } catch (err) {
      problem = `output is not serialisable as JSON: ${(err as Error).message}`;
    }
    this.log.warn({ attemptId, problem }, 'reporting an error instead of the result');
    return JSON.stringify({ v: frame.v, type: 'error', attemptId, message: truncate(problem, 2_000) });
  }

  get(attemptId: string): string | undefined {
    return this.items.get(attemptId)?.text;
  }

  delete(attemptId: string): void {
    this.items.delete(attemptId);
  }

  /** Texts to re-send now; drops those past their deadline. */
  pending(now = Date.now()): string[] {
    const texts: string[] = [];
    for (const [attemptId, item] of this.items) {
      if (item.expiresAt >= now) {
        texts.push(item.text);
        continue;
      }
      this.items.delete(attemptId);
      this.log.warn({ attemptId }, 'dropped a result that was never acked before its deadline');
    }
    return texts;
  }
}
