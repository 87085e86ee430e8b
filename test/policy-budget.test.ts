/**
 * Token bucket and retry budget (agent/policy/budget.ts): exact token counts and wait
 * times at explicit `now` values, plus a seeded long run checking the rate is never beaten.
 */
import t from 'tap';
import {
  refill, take, fullBucket, budgetAllows, noteAttempt, emptyBudget, MAX_BUDGET_ENTRIES, type TokenBucket, type RetryBudget,
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

t.test('retry budget: allowance = ratio * firsts + minPerSec * window', async (t) => {
  const W = 10000;
  const at = (n: number, time: number) => Array(n).fill(time) as number[];
  const rows: [string, RetryBudget, number, number, boolean][] = [
    // name, budget, ratio, minPerSec, expected (now = 20000)
    ['empty', emptyBudget(), 0.2, 1, true],
    ['9 retries under the floor of 10', { firstAttempts: [], retries: at(9, 15000) }, 0.2, 1, true],
    ['10 retries reach the floor', { firstAttempts: [], retries: at(10, 15000) }, 0.2, 1, false],
    ['50 firsts add 10: 19 ok', { firstAttempts: at(50, 15000), retries: at(19, 15000) }, 0.2, 1, true],
    ['50 firsts add 10: 20 not', { firstAttempts: at(50, 15000), retries: at(20, 15000) }, 0.2, 1, false],
    ['old retries fall out', { firstAttempts: [], retries: at(100, 10000) }, 0.2, 1, true],
    ['old firsts fall out too', { firstAttempts: at(50, 10000), retries: at(10, 15000) }, 0.2, 1, false],
    ['no floor, no firsts: nothing', emptyBudget(), 0.2, 0, false],
    ['ratio 0 with floor', { firstAttempts: at(1000, 15000), retries: at(10, 15000) }, 0, 1, false],
    ['fractional allowance 0.5: one retry', { firstAttempts: [], retries: [] }, 0, 0.05, true],
    ['fractional allowance 0.5: not two', { firstAttempts: [], retries: [19000] }, 0, 0.05, false],
  ];
  for (const [name, b, ratio, minPerSec, want] of rows) t.equal(budgetAllows(b, ratio, minPerSec, W, 20000), want, name);
});

t.test('noteAttempt prunes, appends and bounds', async (t) => {
  const W = 1000;
  let b = frozen(emptyBudget());
  b = noteAttempt(b, false, W, 0);
  b = noteAttempt(frozen(b), true, W, 500);
  b = noteAttempt(frozen(b), true, W, 999);
  t.same(b, { firstAttempts: [0], retries: [500, 999] });
  b = noteAttempt(frozen(b), false, W, 1000);
  t.same(b, { firstAttempts: [1000], retries: [500, 999] }, 'an entry exactly windowMs old is dropped');
  b = noteAttempt(frozen(b), true, W, 1600);
  t.same(b, { firstAttempts: [1000], retries: [999, 1600] });

  t.equal(MAX_BUDGET_ENTRIES, 10000);
  const big = frozen({ firstAttempts: frozen(Array.from({ length: 10000 }, (_, i) => i)), retries: frozen([] as number[]) });
  const next = noteAttempt(big, false, 1e9, 10001);
  t.equal(next.firstAttempts.length, 10000);
  t.same([next.firstAttempts[0], next.firstAttempts[9999]], [1, 10001], 'the oldest is dropped, the newest kept');
  t.equal(big.firstAttempts.length, 10000, 'input untouched');
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
