/**
 * Output to a slow line without losing any of it. Text is queued, line ends become CRLF, lines
 * longer than WIDTH are wrapped, and the queue is written in small chunks: never more while the
 * stream's write() has returned false (until 'drain': the serialport stream and a socket both
 * buffer in memory and say so), and, on a serial line, no faster than the line itself carries
 * (baud / 10 bytes a second for 8N1), so a USB adapter's or a terminal server's buffer never
 * overflows and the peer's terminal keeps up. `flushed()` resolves once everything is handed over.
 */
import type { Writable } from 'node:stream';

export const WIDTH = 72;
const CHUNK = 64;

/** Wraps one line at WIDTH columns, at a space when there is one. */
export function wrap(line: string, width = WIDTH): string[] {
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    let cut = rest.lastIndexOf(' ', width);
    if (cut < width / 2) cut = width;
    out.push(rest.slice(0, cut).trimEnd());
    rest = `  ${rest.slice(cut).trimStart()}`;
  }
  out.push(rest);
  return out;
}

export class PacedOutput {
  private queue: Buffer[] = [];
  private busy = false;
  private closed = false;
  private waiters: (() => void)[] = [];
  /** Bytes a second the line carries; null: no pacing beyond backpressure (a local socket). */
  private readonly rate: number | null;

  constructor(
    private readonly stream: Writable,
    baud: number | null,
  ) {
    this.rate = baud === null ? null : baud / 10;
  }

  /** Raw text (echo, prompts): line ends are the caller's. */
  raw(s: string): void {
    if (s === '' || this.closed) return;
    this.queue.push(Buffer.from(s, 'latin1'));
    this.pump();
  }

  /** Lines of text, each wrapped and ended by CRLF. */
  lines(...text: string[]): void {
    const out = text.flatMap((t) => t.split('\n')).flatMap((l) => wrap(l.replace(/\r/g, '')));
    this.raw(out.map((l) => `${l}\r\n`).join(''));
  }

  /** Resolves once the queue is empty (or the stream is gone). */
  flushed(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((res) => this.waiters.push(res));
  }

  /** Bytes still queued. */
  get pending(): number {
    return this.queue.reduce((n, b) => n + b.length, 0);
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.settle();
  }

  private settle(): void {
    if (this.busy && !this.closed) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private next(): Buffer | null {
    const head = this.queue[0];
    if (!head) return null;
    if (head.length <= CHUNK) return this.queue.shift()!;
    this.queue[0] = head.subarray(CHUNK);
    return head.subarray(0, CHUNK);
  }

  private pump(): void {
    if (this.busy || this.closed) return;
    const chunk = this.next();
    if (!chunk) return this.settle();
    this.busy = true;
    const go = () => {
      this.busy = false;
      if (this.closed || this.stream.destroyed) return this.close();
      this.pump();
    };
    let ok: boolean;
    try {
      ok = this.stream.write(chunk);
    } catch {
      return this.close();
    }
    // The time the line takes to carry this chunk: the next one goes when it has.
    const wait = this.rate === null ? 0 : Math.ceil((chunk.length * 1000) / this.rate);
    const after = () => (wait > 0 ? setTimeout(go, wait).unref() : setImmediate(go));
    if (ok) after();
    else this.stream.once('drain', after);
  }
}
