/**
 * Timers that cannot overflow. Node keeps a timer's delay in a signed 32-bit int: a delay above
 * 2^31-1 ms (24.8 days), a negative one or NaN becomes 1 ms with a TimeoutOverflowWarning, so a
 * deadline computed from a wall clock that jumped a year ahead turns into a hot loop. Every
 * computed delay goes through here: clamped to [0, TIMER_MAX_MS], and a longer wait re-arms on
 * the monotonic clock until it is really due (Infinity never fires).
 *
 * It lives in drivers/ because that is the lowest room both agent/ and drivers/ may import;
 * store/ and hardware/ only arm constant delays.
 */

/** The longest delay Node's timers hold. */
export const TIMER_MAX_MS = 2 ** 31 - 1;

export interface SafeTimer {
  /** Cancels it (idempotent). */
  clear(): void;
  /** Lets the process exit while only this timer is pending. */
  unref(): SafeTimer;
}

/** `ms` clamped to what setTimeout holds: NaN and negatives 0, above the limit the limit. */
export function clampDelay(ms: number, max = TIMER_MAX_MS): number {
  if (!(ms > 0)) return 0;
  return ms > max ? max : ms;
}

/**
 * Runs `fn` once after `ms` (monotonic). `max` is the longest single setTimeout (tests make it
 * small to see the re-arming).
 */
export function safeTimeout(fn: () => void, ms: number, max = TIMER_MAX_MS): SafeTimer {
  const at = ms > 0 ? performance.now() + ms : 0;
  let timer: NodeJS.Timeout | null = null;
  let unref = false;
  const arm = (delay: number) => {
    timer = setTimeout(fire, clampDelay(delay, max));
    if (unref) timer.unref();
  };
  const fire = () => {
    const left = at - performance.now();
    // Node may fire a whole-ms timer a fraction early: under 1 ms counts as due.
    if (left >= 1) return arm(left);
    timer = null;
    fn();
  };
  arm(ms > 0 ? ms : 0);
  const handle: SafeTimer = {
    clear() {
      if (timer) clearTimeout(timer);
      timer = null;
    },
    unref() {
      unref = true;
      timer?.unref();
      return handle;
    },
  };
  return handle;
}

/** setInterval with its period clamped to [1, TIMER_MAX_MS] (a period of 0 or NaN would spin). */
export function safeInterval(fn: () => void, ms: number): NodeJS.Timeout {
  return setInterval(fn, Math.max(1, clampDelay(ms)));
}

/** Resolves true when `p` settles (either way) within `ms`, false when the time ran out first. */
export function within(p: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!p) return Promise.resolve(true);
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(() => true, () => true),
    new Promise<boolean>((res) => (timer = setTimeout(() => res(false), clampDelay(ms)))),
  ]).finally(() => clearTimeout(timer));
}
