/**
 * Token bucket and retry budget (agent/policy/budget.ts): exact token counts and wait
 * times at explicit `now` values, plus a seeded long run checking the rate is never beaten.
 */
import t from 'tap';
import {
  refill, take, fullBucket, budgetAllows, noteAttempt, emptyBudget, bucketMs, BUDGET_BUCKETS, type TokenBucket, type RetryBudget,
} from '../agent/policy/budget.js';
import { mulberry32 } from './helpers/rand.js';

const frozen = <T extends object>(o: T): T => Object.freeze(o);

t.test('refill (table)', async (t) => {
  const rows: [string, TokenBucket, number, number, number, TokenBucket][] = [
    // name, bucket, rate/s, burst, now, expected
    ['100 ms at 10/s adds 1', { tokens: 0, at: 0 }, 10, 5, 100, { tokens: 1, at: 100 }],
    ['capped at burst', { tokens: 0, at: 0 }, 10, 5, 10000, { tokens: 5, at: 10000 }],
    ['no time, no tokens', { tokens: 2, at: 500 }, 10, 5, 500, { tokens: 2, at: 500 }],
    ['clock backwards: no bonus, clock follows', { tokens: 2, at: 1000 }, 10, 5, 400, { tokens: 2, at: 400 }],
    ['above a lowered burst is cut', { tokens: 50, at: 0 }, 10, 5, 0, { tokens: 5, at: 0 }],
    ['rate 0 never refills', { tokens: 1, at: 0 }, 0, 5, 1e9, { tokens: 1, at: 1e9 }],
    ['fractional', { tokens: 0, at: 0 }, 3, 10, 500, { tokens: 1.5, at: 500 }],
  ];
  for (const [name, b, rate, burst, now, want] of rows) t.same(refill(frozen(b), rate, burst, now), want, name);
  t.same(fullBucket(20, 7), { tokens: 20, at: 7 });
});

t.test('take: exact grants and waits', async (t) => {
  const full = frozen({ tokens: 5, at: 0 });
  let r = take(full, 3, 10, 5, 0);
  t.same(r, { ok: true, bucket: { tokens: 2, at: 0 }, waitMs: 0 });
  r = take(r.bucket, 3, 10, 5, 0);
  t.same([r.ok, r.waitMs, r.bucket.tokens], [false, 100, 2], 'short by 1 token at 10/s: 100 ms');
  t.equal(take(r.bucket, 3, 10, 5, 99).ok, false, 'not a ms early');
  const later = take(r.bucket, 3, 10, 5, 100);
  t.same([later.ok, later.bucket.tokens], [true, 0]);
  t.same(take(full, 0, 10, 5, 0), { ok: true, bucket: { tokens: 5, at: 0 }, waitMs: 0 }, 'n = 0 is free');
  const never = take({ tokens: 0, at: 0 }, 1, 0, 5, 0);
  t.same([never.ok, never.waitMs], [false, Infinity], 'rate 0: no wait can help');
  t.equal(take({ tokens: 0.25, at: 0 }, 1, 3, 10, 0).waitMs, 250, 'waits round up to whole ms');
  t.equal(take({ tokens: 0.999, at: 0 }, 1, 1000, 10, 0).waitMs, 1, 'a tiny shortfall still waits 1 ms');
});

t.test('take: n above burst is allowed once the bucket is full', async (t) => {
  const empty = frozen({ tokens: 0, at: 0 });
  const r = take(empty, 50, 10, 5, 0);
  t.same([r.ok, r.waitMs], [false, 500], 'waits for burst (5 tokens at 10/s), not for 50');
  t.equal(take(empty, 50, 10, 5, 499).ok, false);
  const ok = take(empty, 50, 10, 5, 500);
  t.same([ok.ok, ok.bucket.tokens], [true, 0]);
  t.equal(take(empty, Infinity, 10, 5, 500).ok, true);
  t.equal(take(empty, NaN, 10, 5, 0).ok, true, 'NaN asks for nothing');
});

t.test('take at now + waitMs always succeeds (seeded)', async (t) => {
  const rand = mulberry32(3);
  let bad = 0;
  for (let i = 0; i < 5000; i++) {
    const rate = 1 + Math.floor(rand() * 50000);
    const burst = 1 + Math.floor(rand() * 1000);
    const b = { tokens: rand() * burst, at: 1e12 };
    const n = 1 + Math.floor(rand() * burst * 1.5);
    const r = take(b, n, rate, burst, 1e12);
    if (!r.ok && !take(r.bucket, n, rate, burst, 1e12 + r.waitMs).ok) bad++;
    if (!r.ok && r.waitMs > 1 && take(r.bucket, n, rate, burst, 1e12 + r.waitMs - 1).ok) bad++;
  }
  t.equal(bad, 0);
});

t.test('long run never beats burst + rate * elapsed', async (t) => {
  const rand = mulberry32(17);
  const rate = 50;
  const burst = 20;
  let b: TokenBucket = { tokens: burst, at: 0 };
  let now = 0;
  let granted = 0;
  for (let i = 0; i < 20000; i++) {
    now += Math.floor(rand() * 40);
    const n = 1 + Math.floor(rand() * 5);
    const r = take(b, n, rate, burst, now);
    if (r.ok) granted += n;
    b = r.bucket;
    if (granted > burst + (rate * now) / 1000 + 1e-6) break;
  }
  t.ok(granted <= burst + (rate * now) / 1000 + 1e-6, `granted ${granted} over ${now} ms`);
  t.ok(granted > 0.9 * (rate * now) / 1000, 'and a busy caller gets close to the rate');
});

/** A budget with `firsts` first attempts and `retries` retries noted at each of the given times. */
function budgetAt(W: number, firsts: [number, number][], retries: [number, number][]): RetryBudget {
  const events: [number, boolean][] = [];
  for (const [time, n] of firsts) for (let i = 0; i < n; i++) events.push([time, false]);
  for (const [time, n] of retries) for (let i = 0; i < n; i++) events.push([time, true]);
  events.sort((a, b) => a[0] - b[0]);
  let b = emptyBudget();
  for (const [time, isRetry] of events) b = noteAttempt(frozen(b), isRetry, W, time);
  return b;
}

t.test('retry budget: allowance = ratio * firsts + minPerSec * window', async (t) => {
  const W = 10000;
  const rows: [string, RetryBudget, number, number, boolean][] = [
    // name, budget, ratio, minPerSec, expected (now = 20000)
    ['empty', emptyBudget(), 0.2, 1, true],
    ['9 retries under the floor of 10', budgetAt(W, [], [[15000, 9]]), 0.2, 1, true],
    ['10 retries reach the floor', budgetAt(W, [], [[15000, 10]]), 0.2, 1, false],
    ['50 firsts add 10: 19 ok', budgetAt(W, [[15000, 50]], [[15000, 19]]), 0.2, 1, true],
    ['50 firsts add 10: 20 not', budgetAt(W, [[15000, 50]], [[15000, 20]]), 0.2, 1, false],
    ['old retries fall out', budgetAt(W, [], [[10000, 100]]), 0.2, 1, true],
    ['old firsts fall out too', budgetAt(W, [[10000, 50]], [[15000, 10]]), 0.2, 1, false],
    ['no floor, no firsts: nothing', emptyBudget(), 0.2, 0, false],
    ['ratio 0 with floor', budgetAt(W, [[15000, 1000]], [[15000, 10]]), 0, 1, false],
    ['fractional allowance 0.5: one retry', budgetAt(W, [], []), 0, 0.05, true],
    ['fractional allowance 0.5: not two', budgetAt(W, [], [[19000, 1]]), 0, 0.05, false],
    ['the newest bucket counts (19999 ms)', budgetAt(W, [], [[19999, 10]]), 0.2, 1, false],
    ['spread over the window, all count', budgetAt(W, [[11000, 25], [19999, 25]], [[11000, 10], [19000, 10]]), 0.2, 1, false],
    ['spread over the window: one under', budgetAt(W, [[11000, 25], [19999, 25]], [[11000, 10], [19000, 9]]), 0.2, 1, true],
    ['firsts at 10999 left with their bucket (start 10000)', budgetAt(W, [[10999, 50]], [[15000, 10]]), 0.2, 1, false],
    ['counts are not capped: 20000 firsts allow 4000 + 10', budgetAt(W, [[15000, 20000]], [[15000, 4009]]), 0.2, 1, true],
    ['counts are not capped: and not 4010', budgetAt(W, [[15000, 20000]], [[15000, 4010]]), 0.2, 1, false],
  ];
  for (const [name, b, ratio, minPerSec, want] of rows) t.equal(budgetAllows(b, ratio, minPerSec, W, 20000), want, name);
  // A budget that was not pruned (no noteAttempt since) still answers for `now` alone.
  const stale = budgetAt(W, [], [[15000, 10]]);
  t.equal(budgetAllows(stale, 0.2, 1, W, 24999), false, 'still inside at 24999');
  t.equal(budgetAllows(stale, 0.2, 1, W, 25000), true, 'bucket 15000 is exactly windowMs old at 25000: out');
});

t.test('bucket resolution: an attempt leaves the window with its bucket', async (t) => {
  const W = 10000;
  t.equal(BUDGET_BUCKETS, 10);
  t.same([bucketMs(10000), bucketMs(1000), bucketMs(1005), bucketMs(5), bucketMs(0)], [1000, 100, 101, 1, 1]);
  // 10 retries at 10999 sit in bucket [10000, 11000): inside while 10000 > now - W.
  const b = budgetAt(W, [], [[10999, 10]]);
  t.same(b.buckets, [{ start: 10000, firstAttempts: 0, retries: 10 }]);
  t.equal(budgetAllows(b, 0.2, 1, W, 10999), false, 'fresh');
  t.equal(budgetAllows(b, 0.2, 1, W, 19999), false, 'inside until the bucket start is windowMs old');
  t.equal(budgetAllows(b, 0.2, 1, W, 20000), true, 'out at 20000: 1 ms short of an exact window (20999), never longer');
  // An attempt never counts longer than windowMs, whatever its place in its bucket.
  for (const at of [10000, 10001, 10500, 10999]) {
    const one = budgetAt(W, [], [[at, 1]]);
    t.equal(budgetAllows(one, 0, 0.1, W, at + W), true, `an attempt at ${at} is out at ${at + W}`);
    t.equal(budgetAllows(one, 0, 0.1, W, 10000 + W - 1), false, `an attempt at ${at} is in at ${10000 + W - 1}`);
  }
});

t.test('noteAttempt counts per bucket, prunes and stays bounded', async (t) => {
  const W = 1000; // buckets of 100 ms
  let b = frozen(emptyBudget());
  b = noteAttempt(b, false, W, 0);
  b = noteAttempt(frozen(b), true, W, 500);
  b = noteAttempt(frozen(b), true, W, 999);
  t.same(b.buckets, [
    { start: 0, firstAttempts: 1, retries: 0 },
    { start: 500, firstAttempts: 0, retries: 1 },
    { start: 900, firstAttempts: 0, retries: 1 },
  ]);
  b = noteAttempt(frozen(b), false, W, 1000);
  t.same(b.buckets.map((k) => k.start), [500, 900, 1000], 'a bucket exactly windowMs old is dropped');
  b = noteAttempt(frozen(b), true, W, 1600);
  b = noteAttempt(frozen(b), true, W, 1650);
  t.same(b.buckets, [
    { start: 900, firstAttempts: 0, retries: 1 },
    { start: 1000, firstAttempts: 1, retries: 0 },
    { start: 1600, firstAttempts: 0, retries: 2 },
  ], 'same bucket: counted, not appended');

  const input = frozen({ buckets: frozen([frozen({ start: 1600, firstAttempts: 0, retries: 2 })]) });
  const next = noteAttempt(input, true, W, 1601);
  t.same(input.buckets, [{ start: 1600, firstAttempts: 0, retries: 2 }], 'input untouched');
  t.same(next.buckets, [{ start: 1600, firstAttempts: 0, retries: 3 }]);

  // A million attempts, one per ms: never more than BUDGET_BUCKETS + 1 buckets, and the counts are exact.
  let big = emptyBudget();
  let most = 0;
  for (let now = 0; now < 1_000_000; now++) {
    big = noteAttempt(big, now % 4 === 0, 10000, now);
    most = Math.max(most, big.buckets.length);
  }
  t.ok(most <= BUDGET_BUCKETS + 1, `at most ${BUDGET_BUCKETS + 1} buckets (saw ${most})`);
  const inWindow = big.buckets.reduce((n, k) => n + k.firstAttempts + k.retries, 0);
  t.equal(inWindow, 10 * 1000, 'at 999999 the buckets 990000..999000 are inside: 10 x 1000 attempts');

  // The clock goes backwards: the buckets stay in start order and both count.
  let back = noteAttempt(emptyBudget(), true, W, 5000);
  back = noteAttempt(frozen(back), true, W, 3000);
  t.same(back.buckets.map((k) => k.start), [3000, 5000]);
  t.equal(budgetAllows(back, 0, 2, W, 3000), false, 'both retries count: 2 is not under a floor of 2');
  t.equal(budgetAllows(back, 0, 3, W, 3000), true, '2 < 3');
});

t.test('budget and noteAttempt together throttle a retry storm', async (t) => {
  let b = emptyBudget();
  let sent = 0;
  for (let now = 0; now < 60000; now += 10) {
    if (now % 1000 === 0) b = noteAttempt(b, false, 10000, now); // one first attempt per second
    if (budgetAllows(b, 0.5, 1, 10000, now)) { b = noteAttempt(b, true, 10000, now); sent++; }
  }
  // Steady state: per 10 s window, 10 firsts * 0.5 + 1/s * 10 s = 15 retries.
  t.ok(sent >= 80 && sent <= 15 * 6 + 15, `sent ${sent} retries in 60 s`);
});
