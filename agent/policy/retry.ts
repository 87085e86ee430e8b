/**
 * Retry timing: how long a lane waits after a failed attempt, and when it stops trying.
 *
 * Pure and deterministic: no clock, no timers, no Math.random. The caller passes `now` and a
 * `rand: () => number` in [0, 1), so tests replay a seeded sequence instead of faking timers.
 *
 * Why jitter at all: after an outage every gateway in a fleet sees the broker come back at
 * the same moment. Un-jittered backoff makes them all retry in lock-step and knock it over
 * again. Each strategy below therefore spreads its intervals:
 *
 *   EXPONENTIAL_BACKOFF  AWS "full jitter": uniform in [0, cap) with cap = min(maxMs,
 *                        baseMs * 2^(attempt-1)). Pure full jitter can return ~0 ms, which
 *                        turns a retry into a hot loop, so the result is floored at
 *                        10 % of min(baseMs, cap). (The floor is deliberately small: a
 *                        larger one would re-synchronise the fleet at the floor value.)
 *   DECORRELATED_JITTER  AWS "decorrelated jitter": uniform in [baseMs, prevDelayMs * 3),
 *                        capped at maxMs; prevDelayMs <= 0 counts as baseMs, and a
 *                        prevDelayMs above maxMs (raised by a hint) counts as maxMs.
 *   LINEAR               baseMs * attempt, capped at maxMs, then +- cfg.jitter (a fraction).
 *   FIXED                baseMs (capped at maxMs), then +- cfg.jitter.
 *
 * For LINEAR and FIXED the +-jitter window is cut at maxMs and the result drawn uniformly
 * from what is left ([c*(1-j), min(maxMs, c*(1+j))]). Clamping after drawing instead would
 * pile half the fleet onto exactly maxMs once the cap is reached: lock-step again.
 *
 * maxMs is a hard ceiling of every computed interval. The one exception is a server hint
 * (MQTT 0x89 server busy with a default, HTTP Retry-After, gRPC RetryInfo): the server knows
 * better than our table, so the result is at least hintMs plus up to 10 % jitter, and the
 * ceiling rises to max(maxMs, hintMs * 1.1) for that one interval.
 *
 * 2^attempt overflows to Infinity past attempt ~1024 and loses meaning long before; the
 * exponent is capped at MAX_EXPONENT, where baseMs * 2^e already exceeds any maxMs.
 *
 * Every result is an integer number of milliseconds, at least 1 (0 would be a hot loop).
 * `rand` is called exactly once for the strategy and once more when a hint is given.
 */
import type { RetryConfig } from '../config/types.js';

export interface RetryState {
  /** Failures so far: 1 after the first failure. Values < 1 count as 1. */
  attempt: number;
  /** The previous interval (ms); used by DECORRELATED_JITTER. 0 before the first retry. */
  prevDelayMs: number;
}

/** The exponent cap: 2^40 ms is ~35 years, far above any configurable maxMs. */
export const MAX_EXPONENT = 40;
/** EXPONENTIAL_BACKOFF never returns less than this fraction of min(baseMs, cap). */
export const EXPONENTIAL_FLOOR_FRACTION = 0.1;
/** A server hint is jittered upwards by up to this fraction. */
export const HINT_JITTER_FRACTION = 0.1;

type DelayConfig = Pick<RetryConfig, 'strategy' | 'baseMs' | 'maxMs' | 'jitter'>;

/** A rand() draw forced into [0, 1) so a misbehaving source cannot escape the bounds. */
export function draw(rand: () => number): number {
  const r = rand();
  if (!Number.isFinite(r) || r < 0) return 0;
  return r >= 1 ? 1 - Number.EPSILON : r;
}

/** A positive finite number, or the fallback. */
export function positive(x: number, fallback: number): number {
  return Number.isFinite(x) && x > 0 ? x : fallback;
}

/** Uniform in [lo, hi); hi <= lo yields lo. */
function between(lo: number, hi: number, r: number): number {
  return hi <= lo ? lo : lo + (hi - lo) * r;
}

/** c +- jitter fraction, with the window cut at maxMs (see header). */
function jittered(center: number, jitter: number, maxMs: number, r: number): number {
  const j = Number.isFinite(jitter) ? Math.min(1, Math.max(0, jitter)) : 0;
  const lo = Math.min(center * (1 - j), maxMs);
  const hi = Math.min(center * (1 + j), maxMs);
  return between(lo, hi, r);
}

/** The interval before the next attempt, in integer ms (>= 1). */
export function nextDelay(cfg: DelayConfig, state: RetryState, rand: () => number, hintMs?: number): number {
  const baseMs = positive(cfg.baseMs, 1);
  const maxMs = positive(cfg.maxMs, baseMs);
  const attempt = Number.isFinite(state.attempt) ? Math.max(1, Math.floor(state.attempt)) : 1;

  let delay: number;
  switch (cfg.strategy) {
    // ADAPTIVE chooses link reconnect intervals from the outage history (agent/policy/adaptive.ts,
    // used by the lane); a single task's retry has no history of its own, so it backs off exponentially.
    case 'ADAPTIVE':
    case 'EXPONENTIAL_BACKOFF': {
      const exponent = Math.min(attempt - 1, MAX_EXPONENT);
      const cap = Math.min(maxMs, baseMs * 2 ** exponent);
      delay = Math.max(cap * draw(rand), Math.min(baseMs, cap) * EXPONENTIAL_FLOOR_FRACTION);
      break;
    }
    case 'DECORRELATED_JITTER': {
      // prev is clamped to maxMs so a wild value (1e308 * 3 = Infinity) cannot make NaN.
      const prev = Math.min(maxMs, positive(state.prevDelayMs, baseMs));
      delay = Math.min(maxMs, between(baseMs, Math.max(baseMs, prev * 3), draw(rand)));
      break;
    }
    case 'LINEAR':
      // attempt <= 2^53 so baseMs * attempt is finite; min() caps it.
      delay = jittered(Math.min(maxMs, baseMs * attempt), cfg.jitter, maxMs, draw(rand));
      break;
    case 'FIXED':
      delay = jittered(Math.min(maxMs, baseMs), cfg.jitter, maxMs, draw(rand));
      break;
    default: {
      // An unknown strategy (config bypassed validation): behave like FIXED without jitter.
      const never: never = cfg.strategy;
      void never;
      delay = Math.min(maxMs, baseMs);
    }
  }
  let ceiling = maxMs;

  if (hintMs !== undefined && Number.isFinite(hintMs) && hintMs > 0) {
    const hinted = hintMs + draw(rand) * HINT_JITTER_FRACTION * hintMs;
    delay = Math.max(delay, hinted);
    ceiling = Math.max(maxMs, hintMs * (1 + HINT_JITTER_FRACTION));
  }

  const top = Math.max(1, Math.floor(ceiling));
  if (Number.isNaN(delay)) delay = top; // unreachable with sane input; never hand NaN to a timer
  return Math.min(top, Math.max(1, Math.round(delay)));
}

/**
 * True when a task has used up its attempts or its age: the caller dead-letters it with
 * RETRY_LIMIT_EXCEEDED. `attempts` counts attempts made so far (failures included).
 */
export function shouldGiveUp(
  cfg: Pick<RetryConfig, 'maxAttempts' | 'maxAgeMs'>,
  attempts: number,
  firstAttemptAt: number,
  now: number,
): boolean {
  return attempts >= cfg.maxAttempts || now - firstAttemptAt >= cfg.maxAgeMs;
}
