/** What the demo's parts share: its errors, the cleanups it runs at the end, and the live status line. */
export const POLL_MS = 250;

/** Thrown for anything that should end the demo with a readable message (no stack trace). */
export class DemoError extends Error {}

export const cleanups: Array<() => Promise<void>> = [];

export class UsageError extends DemoError {}

// terminal

/** One live status line: rewritten in place on a terminal; elsewhere printed only when `key` changes. */
export function statusLine() {
  const tty = process.stdout.isTTY;
  let last: string | undefined;
  return {
    update(text: string, key = text) {
      if (tty) process.stdout.write(`\r\x1b[K${text}`);
      else if (key !== last) process.stdout.write(`${text}\n`);
      last = key;
    },
    done() {
      if (tty && last !== undefined) process.stdout.write('\n');
      last = undefined;
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
