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
 * all (a lane draining only its backlog).
 *
 * Attempts are counted, not stored: each is added to the counter of its bucket, a slice of
 * bucketMs(windowMs) = ceil(windowMs / BUDGET_BUCKETS) ms (1 s for a 10 s window) that starts at
 * a multiple of bucketMs. A bucket is inside the window while its start is: start > now - windowMs.
 * So an attempt counts for at most windowMs (like an exact window) and at least
 * windowMs - bucketMs + 1 ms (it may leave up to one bucket early), and an attempt exactly
 * windowMs old is always outside. After noteAttempt a budget holds only buckets inside the
 * window, at most BUDGET_BUCKETS + 1 of them whatever the attempt rate, so noteAttempt and
 * budgetAllows cost O(BUDGET_BUCKETS), not O(attempts in the window). A bucket stamped later than
 * `now` (the clock went backwards) is inside the window and counts until it leaves it: the budget
 * errs towards fewer retries, never towards a burst.
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

export interface BudgetBucket {
  /** Start of the bucket (ms, a multiple of the bucket width used when it was opened). */
  start: number;
  firstAttempts: number;
  retries: number;
}

export interface RetryBudget {
  /** Counters per bucket, oldest first; at most BUDGET_BUCKETS + 1 after noteAttempt. */
  buckets: readonly BudgetBucket[];
}

/** Buckets per window: the resolution of the retry budget's sliding window. */
export const BUDGET_BUCKETS = 10;

/** Width of one bucket for a window: ceil(windowMs / BUDGET_BUCKETS), at least 1 ms. */
export function bucketMs(windowMs: number): number {
  return Math.max(1, Math.ceil(windowMs / BUDGET_BUCKETS));
}

export function emptyBudget(): RetryBudget {
  return { buckets: [] };
}

/**
 * May one more retry go out now? Counts only buckets inside the window, so a budget that was
 * not pruned recently (no noteAttempt for a while) still answers correctly.
 */
export function budgetAllows(b: RetryBudget, ratio: number, minPerSec: number, windowMs: number, now: number): boolean {
  const edge = now - windowMs;
  let firsts = 0;
  let retries = 0;
  for (const k of b.buckets) {
    if (k.start > edge) {
      firsts += k.firstAttempts;
      retries += k.retries;
    }
  }
  return retries < ratio * firsts + (minPerSec * windowMs) / 1000;
}

/**
 * Notes an attempt (a retry or a first attempt) made at `now`; returns a new budget without the
 * buckets that left the window. Never mutates `b`.
 */
export function noteAttempt(b: RetryBudget, isRetry: boolean, windowMs: number, now: number): RetryBudget {
  const width = bucketMs(windowMs);
  const start = Math.floor(now / width) * width;
  const edge = now - windowMs;
  const kept: BudgetBucket[] = [];
  let mine: BudgetBucket | undefined;
  for (const k of b.buckets) {
    if (k.start <= edge) continue;
    if (k.start === start) {
      mine = { start, firstAttempts: k.firstAttempts + (isRetry ? 0 : 1), retries: k.retries + (isRetry ? 1 : 0) };
      kept.push(mine);
    } else kept.push(k);
  }
  if (!mine) {
    mine = { start, firstAttempts: isRetry ? 0 : 1, retries: isRetry ? 1 : 0 };
    // Keep the buckets in start order even when the clock went backwards.
    let i = kept.length;
    while (i > 0 && kept[i - 1].start > start) i--;
    kept.splice(i, 0, mine);
  }
  return { buckets: kept };
}
