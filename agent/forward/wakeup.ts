/**
 * When a lane runs next: one timer at a time, the earliest asked for; 0 means the next turn of the
 * event loop (setImmediate, not a >= 1 ms timer), and replaces a later timed run.
 */
import { safeTimeout } from '../../drivers/timer.js';

/** What sets the timed runs: safeTimeout, or a test's fake timers on its manual clock. */
export type After = (fn: () => void, ms: number) => { clear(): void };

export class Wakeup {
  private timer: { clear(): void } | null = null;
  private at = Infinity;
  private immediate: NodeJS.Immediate | null = null;
  private stopped = false;

  constructor(
    private readonly run: () => void,
    private readonly now: () => number,
    private readonly after: After = safeTimeout,
  ) {}

  /** Runs after `ms` unless an earlier run is already set. */
  in(ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) {
      this.clearTimer();
      this.immediate ??= setImmediate(() => {
        this.immediate = null;
        this.run();
      });
      return;
    }
    if (this.immediate) return;
    const at = this.now() + ms;
    if (this.timer && at >= this.at) return;
    this.timer?.clear();
    this.at = at;
    this.timer = this.after(() => {
      this.timer = null;
      this.at = Infinity;
      this.run();
    }, ms);
  }

  /** No run any more, ever. */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = null;
  }

  private clearTimer(): void {
    this.timer?.clear();
    this.timer = null;
    this.at = Infinity;
  }
}
