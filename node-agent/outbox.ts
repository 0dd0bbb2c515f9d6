import type { NodeFrame } from '../protocol/frames.js';
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
    let text: string;
    try {
      text = JSON.stringify(frame);
    } catch (err) {
      // A backend returned something JSON cannot carry (BigInt, cycles): report that instead.
      const message = truncate(`output is not serialisable as JSON: ${(err as Error).message}`, 2_000);
      text = JSON.stringify({ v: frame.v, type: 'error', attemptId, message });
    }
    if (this.items.size >= this.max) {
      const oldest = this.items.keys().next().value as string;
      this.items.delete(oldest);
      this.log.warn({ attemptId: oldest }, 'outbox full: dropped the oldest unacked result');
    }
    this.items.delete(attemptId); // re-insert: Map order stays oldest first
    this.items.set(attemptId, { text, expiresAt });
    return text;
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
