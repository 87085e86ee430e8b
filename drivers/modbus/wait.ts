/**
 * Waiting for a moment on performance.now()'s clock (monotonic, sub-microsecond) to within a few
 * tens of microseconds, never before it.
 *
 * Node timers count whole milliseconds: setTimeout(1.75) fires just after 1 ms (the fraction is
 * dropped), setTimeout(2) just after 2 ms, and later under load. A t3.5 of 1.75 ms (every baud rate
 * above 19200) waited with timers alone therefore costs 2-3 ms, a third more than the line needs.
 * waitUntil() sleeps on a timer for the whole milliseconds that surely end before `t`, then polls
 * the clock from setImmediate for the rest (under ~1.3 ms): the event loop keeps serving I/O and
 * other timers meanwhile, at the price of a busy core for that remainder.
 */
import { performance } from 'node:perf_hooks';
import { clampDelay } from '../timer.js';

/** A timer is trusted to wake no later than this after its whole milliseconds (a margin over its usual lateness). */
const TIMER_SLACK_MS = 0.3;

/** Resolves true at or after `t` (performance.now() time), false if `signal` aborts first. */
export function waitUntil(t: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    const onAbort = () => {
      clearTimeout(timer);
      clearImmediate(immediate);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const step = () => {
      timer = undefined;
      immediate = undefined;
      const left = t - performance.now();
      if (left <= 0) {
        signal?.removeEventListener('abort', onAbort);
        return resolve(true);
      }
      const whole = Math.floor(left - TIMER_SLACK_MS);
      if (whole >= 1) timer = setTimeout(step, clampDelay(whole));
      else immediate = setImmediate(step);
    };
    step();
  });
}

