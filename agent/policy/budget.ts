/**
 * Two small rate limits, pure and clock-free (the caller passes `now`, epoch or monotonic ms).
 *
 * Token bucket: paces the backlog drain after a recovery (readingsPerSec, messagesPerSec) so
 * a gateway that buffered a day of data does not flood a broker that just came back.
 *   - tokens refill at ratePerSec up to `burst`; a bucket above burst (burst lowered by a
 *     config reload) is cut down to it.
 *   - a request for n > burst tokens could never be met; it is treated as a request for
 *     `burst` tokens, i.e. allowed once the bucket is full, so one oversized batch cannot
 *     wedge the drain.
 *   - if `now` goes backwards, nothing is refilled and the bucket's clock moves to `now`:
 *     no bonus tokens and no stall until the clock catches up.
 *   - waitMs is rounded up to a whole ms (at least 1), and comparisons allow 1e-9 tokens of
 *     float error, so take() at now + waitMs succeeds. With ratePerSec <= 0 a short bucket
 *     never refills and waitMs is Infinity: the caller must not pass that to setTimeout.
 *
 * Retry budget: during an outage every lane retries; retries must not crowd out first
 * attempts or multiply load on a struggling upstream (the "retry storm"). Within a sliding
 * window, retries are allowed while
 *     retries < ratio * firstAttempts + minPerSec * windowMs / 1000
 * The minPerSec term keeps a trickle of retries going when there are no first attempts at
 * all (a lane draining only its backlog). Timestamps are kept only for the window, and at
 * most MAX_BUDGET_ENTRIES of each kind (the oldest dropped), so memory stays bounded.
 * An entry exactly windowMs old is outside the window.
 */

export interface TokenBucket {
  tokens: number;
  at: number;
}

const EPSILON = 1e-9;

/** A bucket that starts full: a lane may send `burst` at once before pacing begins. */
export function fullBucket(burst: number, now: number): TokenBucket {
  return { tokens: Math.max(0, burst), at: now };
}

/** Tokens accrued since `b.at`, capped at `burst`. The returned bucket's clock is `now`. */
export function refill(b: TokenBucket, ratePerSec: number, burst: number, now: number): TokenBucket {
  const cap = Math.max(0, burst);
  const elapsed = Math.max(0, now - b.at);
  const added = ratePerSec > 0 ? (elapsed * ratePerSec) / 1000 : 0;
  return { tokens: Math.min(cap, Math.max(0, b.tokens) + added), at: now };
}

/**
 * Takes min(n, burst) tokens if they are there. If not, nothing is taken, `bucket` is the
 * refilled bucket (store it) and `waitMs` says how long until the tokens will be there.
 */
export function take(
  b: TokenBucket,
  n: number,
  ratePerSec: number,
  burst: number,
  now: number,
): { ok: boolean; bucket: TokenBucket; waitMs: number } {
  const bucket = refill(b, ratePerSec, burst, now);
  const need = Number.isNaN(n) ? 0 : Math.max(0, Math.min(n, Math.max(0, burst)));
  if (bucket.tokens + EPSILON >= need) {
    return { ok: true, bucket: { tokens: Math.max(0, bucket.tokens - need), at: bucket.at }, waitMs: 0 };
  }
  const waitMs = ratePerSec > 0 ? Math.ceil(((need - bucket.tokens) * 1000) / ratePerSec) : Infinity;
  return { ok: false, bucket, waitMs: Math.max(1, waitMs) };
}

export interface RetryBudget {
  firstAttempts: readonly number[];
  retries: readonly number[];
}

/** Per kind, timestamps kept at most. */
export const MAX_BUDGET_ENTRIES = 10000;

export function emptyBudget(): RetryBudget {
  return { firstAttempts: [], retries: [] };
}

function inWindow(stamps: readonly number[], windowMs: number, now: number): number[] {
  const kept = stamps.filter((t) => t > now - windowMs);
  return kept.length > MAX_BUDGET_ENTRIES ? kept.slice(kept.length - MAX_BUDGET_ENTRIES) : kept;
}

function countInWindow(stamps: readonly number[], windowMs: number, now: number): number {
  let n = 0;
  for (const t of stamps) if (t > now - windowMs) n++;
  return n;
}

/**
 * May one more retry go out now? Counts only timestamps inside the window, so a budget
 * that was not pruned recently (no noteAttempt for a while) still answers correctly.
 */
export function budgetAllows(b: RetryBudget, ratio: number, minPerSec: number, windowMs: number, now: number): boolean {
  const firsts = countInWindow(b.firstAttempts, windowMs, now);
  const retries = countInWindow(b.retries, windowMs, now);
  return retries < ratio * firsts + (minPerSec * windowMs) / 1000;
}

/** Notes an attempt (a retry or a first attempt) made at `now`; returns the pruned budget. */
export function noteAttempt(b: RetryBudget, isRetry: boolean, windowMs: number, now: number): RetryBudget {
  const firstAttempts = isRetry ? b.firstAttempts : [...b.firstAttempts, now];
  const retries = isRetry ? [...b.retries, now] : b.retries;
  return { firstAttempts: inWindow(firstAttempts, windowMs, now), retries: inWindow(retries, windowMs, now) };
}
