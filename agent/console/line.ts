/**
 * The line discipline of a dumb terminal, on our side of the wire (a serial console has no
 * kernel line editing: the peer sends raw keystrokes). Bytes in; echo, finished lines and
 * refusals out. Printable ASCII is kept and echoed (not while a password is typed); BS (0x08)
 * and DEL (0x7f) erase one character ("\b \b"); Ctrl-U erases the line, Ctrl-C abandons it;
 * CR, LF or CRLF end it. Escape sequences (arrow keys: ESC [ A) and every other control
 * character or non-ASCII byte are ignored, and the line says how many were. A line longer than
 * MAX_LINE is refused as a whole: a bell at the first character too many, a reason at its end.
 */
export const MAX_LINE = 72;

export type LineEvent =
  | { type: 'line'; text: string; ignored: number }
  | { type: 'refused'; reason: string }
  | { type: 'cancel' };

export interface Fed {
  /** What to echo back (already CRLF). */
  echo: string;
  events: LineEvent[];
}

export class LineEditor {
  private buf = '';
  private overlong = false;
  private ignored = 0;
  private lastCr = false;
  /** 0: normal; 1: after ESC; 2: inside CSI (ESC [ ... final byte). */
  private esc = 0;
  /** False while a password is typed: nothing is echoed. */
  echo = true;

  feed(data: Buffer): Fed {
    let echo = '';
    const events: LineEvent[] = [];
    for (const b of data) {
      const afterCr = this.lastCr;
      this.lastCr = false;
      if (this.esc === 1) {
        this.esc = b === 0x5b || b === 0x4f ? 2 : 0;
        continue;
      }
      if (this.esc === 2) {
        if (b >= 0x40 && b <= 0x7e) this.esc = 0;
        continue;
      }
      if (b === 0x0d || b === 0x0a) {
        if (b === 0x0a && afterCr) continue;
        this.lastCr = b === 0x0d;
        echo += '\r\n';
        events.push(this.end());
      } else if (b === 0x08 || b === 0x7f) {
        if (this.buf.length > 0 && !this.overlong) {
          this.buf = this.buf.slice(0, -1);
          if (this.echo) echo += '\b \b';
        }
      } else if (b === 0x15) {
        if (this.echo && !this.overlong) echo += '\b \b'.repeat(this.buf.length);
        this.buf = '';
      } else if (b === 0x03) {
        echo += '^C\r\n';
        this.reset();
        events.push({ type: 'cancel' });
      } else if (b === 0x1b) {
        this.esc = 1;
      } else if (b >= 0x20 && b < 0x7f) {
        if (this.overlong) continue;
        if (this.buf.length >= MAX_LINE) {
          this.overlong = true;
          echo += '\x07';
          continue;
        }
        this.buf += String.fromCharCode(b);
        if (this.echo) echo += String.fromCharCode(b);
      } else {
        this.ignored++;
      }
    }
    return { echo, events };
  }

  private end(): LineEvent {
    const e: LineEvent = this.overlong
      ? { type: 'refused', reason: `line too long (more than ${MAX_LINE} characters): refused, nothing done` }
      : { type: 'line', text: this.buf, ignored: this.ignored };
    this.reset();
    return e;
  }

  private reset(): void {
    this.buf = '';
    this.overlong = false;
    this.ignored = 0;
    this.esc = 0;
  }
}
