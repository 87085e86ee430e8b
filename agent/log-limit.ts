/**
 * Logging at a low rate. The first occurrence of a key is logged at once; later ones at most
 * once per interval, with how many were left out in between. A gateway whose collector refuses
 * every export (or whose self-metrics endpoint is down for a week) writes a few lines an hour to
 * its flash, not one per attempt. Keys are bounded: beyond `maxKeys` the oldest is forgotten.
 */
export interface LogDecision {
  /** Log this occurrence now. */
  log: boolean;
  /** Occurrences of this key left out since the last one logged (only meaningful when log). */
  suppressed: number;
}

export class LogLimiter {
  private readonly keys = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
    private readonly maxKeys = 64,
  ) {}

  /** One occurrence of `key`: whether to log it, and how many were left out before it. */
  take(key: string): LogDecision {
    const t = this.now();
    const k = this.keys.get(key);
    if (k && t - k.at < this.intervalMs) {
      k.suppressed++;
      return { log: false, suppressed: 0 };
    }
    const suppressed = k?.suppressed ?? 0;
    this.keys.delete(key); // re-inserted last: Map order is the eviction order
    if (this.keys.size >= this.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    this.keys.set(key, { at: t, suppressed: 0 });
    return { log: true, suppressed };
  }

  /** The condition behind `key` cleared: forgets it and returns the occurrences left out since the last log. */
  clear(key: string): number {
    const k = this.keys.get(key);
    this.keys.delete(key);
    return k?.suppressed ?? 0;
  }
}
