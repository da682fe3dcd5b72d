import type { Io } from './output.js';

/**
 * One line of progress on stderr. In a terminal it is redrawn in place; otherwise (a pipe,
 * a log file, CI) each change is printed as a plain line of its own, never a carriage return.
 */
export class ProgressLine {
  readonly #io: Io;
  readonly #tty: boolean;
  #last = '';

  constructor(io: Io) {
    this.#io = io;
    this.#tty = io.err.isTTY === true;
  }

  update(text: string): void {
    if (text === this.#last) return;
    this.#last = text;
    if (this.#tty) this.#io.err.write(`\r\x1b[2K${text}`);
    else this.#io.err.write(`${text}\n`);
  }

  /** The final state; in a terminal it ends the line. */
  finish(text: string): void {
    if (this.#tty) {
      this.#io.err.write(`\r\x1b[2K${text}\n`);
    } else if (text !== this.#last) {
      this.#io.err.write(`${text}\n`);
    }
    this.#last = text;
  }
}

/** `[#########...........]  45%` */
export function bar(done: number, total: number, width = 24): string {
  const ratio = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}%`;
}
