/**
 * Retry timing (agent/policy/retry.ts). Seeded and pinned rand() sources replace fake
 * timers: each case states the exact interval or the exact bounds it must fall in.
 */
import t from 'tap';
import type { RetryConfig, RetryStrategy } from '../agent/config/types.js';
import { nextDelay, shouldGiveUp, MAX_EXPONENT } from '../agent/policy/retry.js';
import { mulberry32, fixed, sequence, ALMOST_ONE } from './helpers/rand.js';

type Cfg = Pick<RetryConfig, 'strategy' | 'baseMs' | 'maxMs' | 'jitter'>;
const cfg = (strategy: RetryStrategy, over: Partial<Cfg> = {}): Cfg => ({ strategy, baseMs: 100, maxMs: 10000, jitter: 0.2, ...over });

t.test('exact intervals at pinned draws', async (t) => {
  const rows: [string, Cfg, number, number, number, number][] = [
    // name, cfg, attempt, prevDelayMs, rand, expected
    ['exp a1 r0 hits the 10% floor', cfg('EXPONENTIAL_BACKOFF'), 1, 0, 0, 10],
    ['exp a1 r~1 is the cap', cfg('EXPONENTIAL_BACKOFF'), 1, 0, ALMOST_ONE, 100],
    ['exp a3 r.5', cfg('EXPONENTIAL_BACKOFF'), 3, 0, 0.5, 200],
    ['exp a7 r~1', cfg('EXPONENTIAL_BACKOFF'), 7, 0, ALMOST_ONE, 6400],
    ['exp a8 capped at maxMs', cfg('EXPONENTIAL_BACKOFF'), 8, 0, 0.5, 5000],
    ['exp a8 r~1 = maxMs', cfg('EXPONENTIAL_BACKOFF'), 8, 0, ALMOST_ONE, 10000],
    ['exp attempt 0 counts as 1', cfg('EXPONENTIAL_BACKOFF'), 0, 0, 0.5, 50],
    ['exp floor tiny base still >= 1', cfg('EXPONENTIAL_BACKOFF', { baseMs: 1 }), 1, 0, 0, 1],
    ['decorrelated first: prev defaults to base', cfg('DECORRELATED_JITTER'), 1, 0, 0, 100],
    ['decorrelated first r.5 -> between(100,300)', cfg('DECORRELATED_JITTER'), 1, 0, 0.5, 200],
    ['decorrelated prev 1000 r.5', cfg('DECORRELATED_JITTER'), 2, 1000, 0.5, 1550],
    ['decorrelated capped', cfg('DECORRELATED_JITTER'), 9, 1e6, 0.5, 10000],
    ['decorrelated negative prev counts as base', cfg('DECORRELATED_JITTER'), 2, -5, ALMOST_ONE, 300],
    ['linear a3 r0 -20%', cfg('LINEAR'), 3, 0, 0, 240],
    ['linear a3 r.5 centre', cfg('LINEAR'), 3, 0, 0.5, 300],
    ['linear a3 r~1 +20%', cfg('LINEAR'), 3, 0, ALMOST_ONE, 360],
    ['linear at cap r0', cfg('LINEAR'), 200, 0, 0, 8000],
    ['linear at cap r.5 (window cut at maxMs)', cfg('LINEAR'), 200, 0, 0.5, 9000],
    ['linear at cap r~1', cfg('LINEAR'), 200, 0, ALMOST_ONE, 10000],
    ['linear no jitter', cfg('LINEAR', { jitter: 0 }), 4, 0, 0.9, 400],
    ['fixed r0', cfg('FIXED'), 5, 0, 0, 80],
    ['fixed r.5', cfg('FIXED'), 5, 0, 0.5, 100],
    ['fixed r~1', cfg('FIXED'), 5, 0, ALMOST_ONE, 120],
    ['fixed no jitter', cfg('FIXED', { jitter: 0 }), 50, 0, 0.3, 100],
    ['fixed base above maxMs is capped', cfg('FIXED', { baseMs: 1000, maxMs: 500, jitter: 0 }), 1, 0, 0.3, 500],
  ];
  for (const [name, c, attempt, prevDelayMs, r, expected] of rows) {
    t.equal(nextDelay(c, { attempt, prevDelayMs }, fixed(r)), expected, name);
  }
});

t.test('exponential: every draw within [floor, cap], cap monotonic and <= maxMs', async (t) => {
  const c = cfg('EXPONENTIAL_BACKOFF', { baseMs: 250, maxMs: 60000 });
  const rand = mulberry32(42);
  let prevCap = 0;
  let bad = 0;
  for (let attempt = 1; attempt <= 40; attempt++) {
    const cap = Math.min(c.maxMs, c.baseMs * 2 ** (attempt - 1));
    t.ok(cap >= prevCap, `cap non-decreasing at attempt ${attempt}`);
    prevCap = cap;
    const floor = Math.round(Math.min(c.baseMs, cap) * 0.1);
    for (let i = 0; i < 200; i++) {
      const d = nextDelay(c, { attempt, prevDelayMs: 0 }, rand);
      if (!Number.isInteger(d) || d < floor || d > cap || d > c.maxMs) bad++;
    }
  }
  t.equal(bad, 0, 'no draw outside its bounds');
});

t.test('exponential is full jitter: mean ~ cap/2 and well spread', async (t) => {
  const c = cfg('EXPONENTIAL_BACKOFF');
  const rand = mulberry32(7);
  const ds = Array.from({ length: 20000 }, () => nextDelay(c, { attempt: 20, prevDelayMs: 0 }, rand));
  const mean = ds.reduce((a, b) => a + b, 0) / ds.length;
  t.ok(Math.abs(mean - 5000) < 150, `mean ${mean} ~ 5000`);
  t.ok(Math.min(...ds) < 200 && Math.max(...ds) > 9800, 'spans the range');
  t.ok(new Set(ds).size > 5000, 'many distinct values');
});

t.test('overflow: huge and broken attempt numbers stay finite, integer and capped', async (t) => {
  t.ok(MAX_EXPONENT < 1000);
  for (const strategy of ['EXPONENTIAL_BACKOFF', 'DECORRELATED_JITTER', 'LINEAR', 'FIXED'] as const) {
    for (const attempt of [1000, 1024, 1e6, Number.MAX_SAFE_INTEGER, Infinity, NaN, -3]) {
      for (const r of [0, 0.5, ALMOST_ONE]) {
        const d = nextDelay(cfg(strategy), { attempt, prevDelayMs: 1e308 }, fixed(r));
        t.ok(Number.isInteger(d) && d >= 1 && d <= 10000, `${strategy} attempt ${attempt} r ${r} -> ${d}`);
      }
    }
  }
  t.equal(nextDelay(cfg('EXPONENTIAL_BACKOFF'), { attempt: 1000, prevDelayMs: 0 }, fixed(0.5)), 5000, 'attempt 1000 is exactly at the cap');
});

t.test('decorrelated chain: each interval in [base, min(max, 3*prev)]', async (t) => {
  const c = cfg('DECORRELATED_JITTER', { baseMs: 50, maxMs: 20000 });
  const rand = mulberry32(99);
  let prev = 0;
  let bad = 0;
  let reachedCap = false;
  for (let attempt = 1; attempt <= 2000; attempt++) {
    const d = nextDelay(c, { attempt, prevDelayMs: prev }, rand);
    const hi = Math.min(c.maxMs, 3 * (prev > 0 ? prev : c.baseMs));
    if (!Number.isInteger(d) || d < c.baseMs || d > Math.ceil(hi)) bad++;
    if (d > 15000) reachedCap = true;
    prev = d;
  }
  t.equal(bad, 0);
  t.ok(reachedCap, 'grows towards maxMs');
});

t.test('linear and fixed: within +-jitter of the centre and never above maxMs', async (t) => {
  const rand = mulberry32(5);
  let bad = 0;
  for (const strategy of ['LINEAR', 'FIXED'] as const) {
    for (const jitter of [0, 0.1, 0.5, 1]) {
      const c = cfg(strategy, { baseMs: 300, maxMs: 5000, jitter });
      for (let attempt = 1; attempt <= 30; attempt++) {
        const centre = Math.min(c.maxMs, strategy === 'LINEAR' ? c.baseMs * attempt : c.baseMs);
        const d = nextDelay(c, { attempt, prevDelayMs: 0 }, rand);
        const lo = Math.max(1, Math.floor(centre * (1 - jitter)));
        const hi = Math.min(c.maxMs, Math.ceil(centre * (1 + jitter)));
        if (d < lo || d > hi) bad++;
      }
    }
  }
  t.equal(bad, 0);
});

t.test('server hint', async (t) => {
  const exp = cfg('EXPONENTIAL_BACKOFF');
  t.equal(nextDelay(exp, { attempt: 1, prevDelayMs: 0 }, fixed(0), 2000), 2000, 'hint raises a short interval to the hint');
  t.equal(nextDelay(exp, { attempt: 1, prevDelayMs: 0 }, fixed(ALMOST_ONE), 2000), 2200, 'up to +10%');
  t.equal(nextDelay(exp, { attempt: 1, prevDelayMs: 0 }, sequence(0.5, 0.5), 60000), 63000, 'a hint above maxMs raises the ceiling');
  t.equal(nextDelay(exp, { attempt: 1, prevDelayMs: 0 }, fixed(ALMOST_ONE), 60000), 66000, 'ceiling is hint * 1.1');
  t.equal(nextDelay(cfg('LINEAR'), { attempt: 50, prevDelayMs: 0 }, fixed(0.5), 100), 5000, 'a small hint does not shorten the interval');
  t.equal(nextDelay(exp, { attempt: 8, prevDelayMs: 0 }, sequence(ALMOST_ONE, 0), 9500), 10000, 'computed above hint: still capped at maxMs');
  for (const bogus of [0, -1, NaN, Infinity]) {
    t.equal(nextDelay(exp, { attempt: 3, prevDelayMs: 0 }, fixed(0.5), bogus), 200, `hint ${bogus} ignored`);
  }
  const rand = mulberry32(11);
  let bad = 0;
  for (let i = 0; i < 2000; i++) {
    const hint = 1 + Math.floor(rand() * 100000);
    const strategy = (['EXPONENTIAL_BACKOFF', 'DECORRELATED_JITTER', 'LINEAR', 'FIXED'] as const)[i % 4];
    const d = nextDelay(cfg(strategy), { attempt: 1 + (i % 20), prevDelayMs: 500 }, rand, hint);
    if (d < hint || d > Math.max(10000, Math.floor(hint * 1.1))) bad++;
  }
  t.equal(bad, 0, 'always in [hint, max(maxMs, 1.1 * hint)]');
});

t.test('rand() out of range is clamped, not trusted', async (t) => {
  for (const r of [-1, 1, 2, NaN]) {
    const d = nextDelay(cfg('EXPONENTIAL_BACKOFF'), { attempt: 3, prevDelayMs: 0 }, fixed(r));
    t.ok(d >= 10 && d <= 400, `rand ${r} -> ${d}`);
  }
});

t.test('shouldGiveUp', async (t) => {
  const c = { maxAttempts: 5, maxAgeMs: 60000 };
  const rows: [number, number, number, boolean][] = [
    // attempts, firstAttemptAt, now, expected
    [0, 1000, 1000, false],
    [4, 1000, 60999, false],
    [5, 1000, 1000, true],
    [6, 1000, 1000, true],
    [1, 1000, 61000, true],
    [1, 1000, 61001, true],
    [4, 1000, 60999.5, false],
  ];
  for (const [attempts, first, now, expected] of rows) {
    t.equal(shouldGiveUp(c, attempts, first, now), expected, `attempts ${attempts} age ${now - first}`);
  }
});
