/**
 * ADAPTIVE retry timing (agent/policy/adaptive.ts). Seeded and pinned rand() sources and
 * explicit elapsed values: each case states the regime, the centre or the bounds it must
 * fall in. The last test simulates outages against EXPONENTIAL_BACKOFF and prints the numbers.
 */
import t from 'tap';
import { adaptiveDelay, adaptivePlan, summarize, quantile, HISTORY_LIMIT, MIN_HISTORY, MIN_JITTER } from '../agent/policy/adaptive.js';
import type { AdaptiveConfig, OutageHistory } from '../agent/policy/adaptive.js';
import { nextDelay } from '../agent/policy/retry.js';
import { mulberry32, fixed, ALMOST_ONE } from './helpers/rand.js';

const BASE = 1000;
const MAX = 300000;
const cfg = (over: Partial<AdaptiveConfig> = {}): AdaptiveConfig => ({ baseMs: BASE, maxMs: MAX, jitter: 0.2, ...over });
const hist = (durationsMs: number[]): OutageHistory => ({ durationsMs });
/** 50 outages of 57..63 s (13 levels, 500 ms apart): "all about 60 s". p50 = 60 s, p90 = 62.5 s. */
const ABOUT_60S = hist(Array.from({ length: 50 }, (_, i) => 60000 + (((i * 7) % 13) - 6) * 500));

t.test('quantile and summarize', async (t) => {
  t.equal(quantile([], 0.5), 0);
  t.equal(quantile([7], 0.9), 7);
  t.equal(quantile([10, 20, 30, 40, 50], 0.5), 30);
  t.equal(quantile([10, 20, 30, 40, 50], 0.9), 46, 'type 7: interpolates between order statistics');
  t.equal(quantile([Number.MAX_VALUE, Number.MAX_VALUE], 0.5), Number.MAX_VALUE, 'no overflow');
  const rows: [string, number[], { n: number; p50: number; p90: number }][] = [
    ['empty', [], { n: 0, p50: 0, p90: 0 }],
    ['five', [50, 10, 40, 20, 30], { n: 5, p50: 30, p90: 46 }],
    ['junk ignored', [NaN, 10, -5, 20, Infinity, 30, -Infinity, 40, 50], { n: 5, p50: 30, p90: 46 }],
    ['zeros kept', [0, 0, 0, 0, 0], { n: 5, p50: 0, p90: 0 }],
    ['about 60 s', ABOUT_60S.durationsMs.slice(), { n: 50, p50: 60000, p90: 62500 }],
    ['one huge outage does not move p50/p90', [...Array(49).fill(60000), 1e12], { n: 50, p50: 60000, p90: 60000 }],
    ['only the most recent 50', [...Array(100).fill(5000), ...Array(50).fill(60000)], { n: 50, p50: 60000, p90: 60000 }],
    ['50 usable counted from the end, past junk', [...Array(10).fill(5000), ...Array(45).fill(60000), NaN, -1, ...Array(5).fill(60000)], { n: 50, p50: 60000, p90: 60000 }],
  ];
  for (const [name, durations, expected] of rows) t.same(summarize(hist(durations)), expected, name);
  t.equal(HISTORY_LIMIT, 50);
  t.same(summarize({ durationsMs: undefined as unknown as number[] }), { n: 0, p50: 0, p90: 0 }, 'a missing array is an empty history');
});

t.test('fallback: fewer than MIN_HISTORY usable outages is exponential full jitter from baseMs', async (t) => {
  t.equal(MIN_HISTORY, 5);
  const short = hist([60000, 60000, 60000, 60000, NaN, -1]);
  const rows: [string, OutageHistory, number, number, number][] = [
    // name, history, elapsed, rand, expected
    ['empty, e 0, r 0: the floor', hist([]), 0, 0, 1000],
    ['empty, e 0, r ~1: cap 2 base', hist([]), 0, ALMOST_ONE, 2000],
    ['4 usable + junk, e 0, r .5', short, 0, 0.5, 1500],
    ['e 10 s: cap 2e = 20 s, r .5', short, 10000, 0.5, 10500],
    ['e 10 s, r ~1', short, 10000, ALMOST_ONE, 20000],
    ['e 1 h: cap maxMs', short, 3600000, ALMOST_ONE, MAX],
    ['e 1 h, r 0: still the floor (full jitter)', short, 3600000, 0, 1000],
    ['one huge outage alone is no evidence', hist([1e12]), 0, 0.5, 1500],
  ];
  for (const [name, h, e, r, expected] of rows) {
    t.equal(adaptivePlan(cfg(), h, e).regime, 'fallback', `${name}: regime`);
    t.equal(adaptiveDelay(cfg(), h, e, fixed(r)), expected, name);
  }
  // Exponential in elapsed time: the mean interval roughly doubles with the time elapsed.
  const rand = mulberry32(3);
  const mean = (e: number) => Array.from({ length: 4000 }, () => adaptiveDelay(cfg(), hist([]), e, rand)).reduce((a, b) => a + b, 0) / 4000;
  const m4 = mean(4000);
  const m8 = mean(8000);
  t.ok(m4 > 4000 && m4 < 5000 && m8 > 8000 && m8 < 9000, `mean ~ (base + 2e) / 2: e 4 s -> ${m4}, e 8 s -> ${m8}`);
});

t.test('history all ~60 s: sparse while young, dense around 60 s, backing off beyond p90', async (t) => {
  const rows: [number, string, number, number][] = [
    // elapsed, regime, centre at least, centre at most (un-jittered)
    [0, 'early', 30000, 30000], // (60 - 0) / 2
    [5000, 'early', 27500, 27500], // (60 - 5) / 2: >= 25 x baseMs
    [30000, 'early', 15000, 15000],
    [50000, 'early', 5000, 5000],
    [55000, 'early', 2500, 2500], // closing in: halving the gap
    [56000, 'early', BASE, 2 * BASE],
    [57000, 'early', BASE, 2 * BASE], // 57 s: 1.625 s (the hazard target)
    [58000, 'early', BASE, 2 * BASE],
    [59000, 'typical', BASE, 2 * BASE],
    [60000, 'typical', BASE, BASE], // at the median: probe at the floor
    [62000, 'typical', BASE, BASE],
    [62500, 'tail', BASE, BASE], // p90: exponential backoff restarts at baseMs
    [65000, 'tail', 3500, 3500], // base + (e - p90)
    [70000, 'tail', 8500, 8500],
    [120000, 'tail', 58500, 58500],
    [600000, 'tail', MAX, MAX], // capped
  ];
  for (const [e, regime, lo, hi] of rows) {
    const p = adaptivePlan(cfg(), ABOUT_60S, e);
    t.equal(p.regime, regime, `e ${e}: regime`);
    t.ok(p.centreMs >= lo && p.centreMs <= hi, `e ${e}: centre ${p.centreMs} in [${lo}, ${hi}]`);
    t.ok(p.lowMs >= BASE && p.highMs <= MAX && p.lowMs <= p.centreMs && p.centreMs <= p.highMs, `e ${e}: window [${p.lowMs}, ${p.highMs}]`);
    // The drawn interval stays within +-20 % of the centre (cut at baseMs).
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const d = adaptiveDelay(cfg(), ABOUT_60S, e, fixed(r));
      if (d < Math.max(BASE, Math.floor(p.centreMs * 0.8)) || d > Math.ceil(p.centreMs * 1.2)) t.fail(`e ${e} r ${r}: ${d} outside the window`);
    }
  }
  t.equal(adaptiveDelay(cfg(), ABOUT_60S, 5000, fixed(0.5)), 27500, 'early, centre draw');
  t.equal(adaptiveDelay(cfg(), ABOUT_60S, 5000, fixed(0)), 22000, 'early, -20 %');
  t.equal(adaptiveDelay(cfg(), ABOUT_60S, 60000, fixed(0)), 1000, 'dense, floor');
  t.equal(adaptiveDelay(cfg(), ABOUT_60S, 60000, fixed(ALMOST_ONE)), 1200, 'dense: window cut at baseMs is [base, 1.2 base]');
});

t.test('hazard target: a bimodal history probes early for the short mode, then sparsely until the long one', async (t) => {
  // 30 blips of 4..6 s, 20 outages of 116..124 s.
  const h = hist([...Array.from({ length: 30 }, (_, i) => 4000 + i * 70), ...Array.from({ length: 20 }, (_, i) => 116000 + i * 400)]);
  t.ok(adaptivePlan(cfg(), h, 0).centreMs <= 5000, 'e 0: the first probe comes within the blip mode');
  t.equal(adaptivePlan(cfg(), h, 4500).centreMs, BASE, 'e 4.5 s: inside the blip mode, dense');
  const gap = adaptivePlan(cfg(), h, 10000);
  t.ok(gap.centreMs >= 40000, `e 10 s: blips are over, long mode far away: sparse (${gap.centreMs})`);
  t.ok(adaptivePlan(cfg(), h, 118000).centreMs <= 2 * BASE, 'e 118 s: inside the long mode, dense');
  // A wide mode (110..129 s) is probed less densely than a tight one: the interval follows the spread.
  const wide = hist([...h.durationsMs.slice(0, 30), ...Array.from({ length: 20 }, (_, i) => 110000 + i * 1000)]);
  const w = adaptivePlan(cfg(), wide, 112000).centreMs;
  t.ok(w > 2 * BASE && w <= 5000, `e 112 s in a 19 s wide mode: ${w}`);
  t.equal(adaptivePlan(cfg(), h, 200000).regime, 'tail');
});

t.test('never below baseMs, never above maxMs, always an integer', async (t) => {
  const rand = mulberry32(2024);
  let bad = 0;
  let calls = 0;
  for (let i = 0; i < 20000; i++) {
    const baseMs = 1 + Math.floor(rand() * 5000);
    const maxMs = baseMs + Math.floor(rand() * 600000);
    const n = Math.floor(rand() * 70);
    const scale = 10 ** (rand() * 7);
    const durations = Array.from({ length: n }, () => {
      const x = rand();
      return x < 0.03 ? NaN : x < 0.06 ? -x : x < 0.08 ? 0 : x < 0.09 ? 1e15 : rand() * scale;
    });
    const e = rand() < 0.05 ? 1e300 : rand() * scale * 3;
    const c = { baseMs, maxMs, jitter: rand() };
    const d = adaptiveDelay(c, hist(durations), e, rand);
    calls++;
    if (!Number.isInteger(d) || d < baseMs || d > maxMs) {
      bad++;
      if (bad < 5) t.fail(`base ${baseMs} max ${maxMs} e ${e} n ${n} -> ${d}`);
    }
  }
  t.equal(bad, 0, `${calls} draws within [baseMs, maxMs]`);
  t.equal(adaptiveDelay(cfg({ baseMs: 5000, maxMs: 2000 }), ABOUT_60S, 5000, fixed(0.5)), 2000, 'maxMs < baseMs: maxMs is the hard ceiling');
  t.equal(adaptiveDelay(cfg({ baseMs: 7000, maxMs: 7000 }), ABOUT_60S, 5000, fixed(ALMOST_ONE)), 7000, 'baseMs = maxMs: no room');
  t.equal(adaptiveDelay(cfg({ baseMs: NaN, maxMs: NaN }), hist([]), 0, fixed(0.5)), 1, 'broken config: 1 ms, not NaN');
  for (const r of [-1, 1, 2, NaN]) {
    const d = adaptiveDelay(cfg(), ABOUT_60S, 5000, fixed(r));
    t.ok(d >= 22000 && d <= 33000, `rand ${r} clamped -> ${d}`);
  }
  let n = 0;
  adaptiveDelay(cfg(), ABOUT_60S, 5000, () => (n++, 0.5));
  t.equal(n, 1, 'rand() is called exactly once');
});

t.test('jitter spreads the fleet', async (t) => {
  const seq = (seed: number, e: number) => Array.from({ length: 20 }, ((r) => () => adaptiveDelay(cfg(), ABOUT_60S, e, r))(mulberry32(seed)));
  t.not(seq(1, 5000).join(','), seq(2, 5000).join(','), 'two seeds differ (early)');
  t.not(seq(1, 60000).join(','), seq(2, 60000).join(','), 'two seeds differ (dense)');
  const rows: [string, AdaptiveConfig, number, number, number][] = [
    // name, cfg, elapsed, expected min spread (max - min over 1000 draws), distinct values at least
    ['early, jitter .2', cfg(), 5000, 0.35 * 27500, 500],
    ['dense, jitter .2 (one-sided at the floor)', cfg(), 60000, 0.15 * BASE, 150],
    ['tail, jitter .2', cfg(), 120000, 0.35 * 58500, 500],
    ['jitter 0 still +-MIN_JITTER', cfg({ jitter: 0 }), 5000, 1.5 * MIN_JITTER * 27500, 500],
    ['jitter NaN counts as 0', cfg({ jitter: NaN }), 5000, 1.5 * MIN_JITTER * 27500, 500],
    ['dense with jitter 0', cfg({ jitter: 0 }), 60000, 0.07 * BASE, 50],
    ['fallback is full jitter', cfg(), 0, 0.9 * BASE, 500],
  ];
  for (const [name, c, e, spread, distinct] of rows) {
    const h = name.startsWith('fallback') ? hist([]) : ABOUT_60S;
    const rand = mulberry32(e + 17);
    const ds = Array.from({ length: 1000 }, () => adaptiveDelay(c, h, e, rand));
    const s = Math.max(...ds) - Math.min(...ds);
    t.ok(s >= spread, `${name}: spread ${s} >= ${spread}`);
    t.ok(new Set(ds).size >= distinct, `${name}: ${new Set(ds).size} distinct values`);
  }
  const rand = mulberry32(8);
  const ds = Array.from({ length: 20000 }, () => adaptiveDelay(cfg(), ABOUT_60S, 5000, rand));
  const mean = ds.reduce((a, b) => a + b, 0) / ds.length;
  t.ok(Math.abs(mean - 27500) < 150, `uniform around the centre: mean ${mean}`);
});

t.test('monotonic sanity', async (t) => {
  const at = (e: number) => adaptiveDelay(cfg(), ABOUT_60S, e, fixed(0.5));
  let prev = Infinity;
  for (let e = 0; e <= 56000; e += 1000) {
    const d = at(e);
    if (d > prev) t.fail(`approaching the typical end the interval shrinks: e ${e} -> ${d} > ${prev}`);
    prev = d;
  }
  prev = 0;
  for (let e = 62500; e <= 1200000; e += 2500) {
    const d = at(e);
    if (d < prev) t.fail(`beyond p90 the interval grows: e ${e} -> ${d} < ${prev}`);
    prev = d;
  }
  t.equal(prev, 270000, 'reaches maxMs (the middle of the window cut at maxMs)');
  prev = 0;
  for (let e = 0; e <= 1e6; e += 5000) {
    const p = adaptivePlan(cfg(), hist([]), e);
    if (p.highMs < prev) t.fail(`fallback cap shrinks at e ${e}`);
    prev = p.highMs;
  }
  // Tail probe times: the distance beyond p90 at least doubles per probe (exponential).
  let e = 62500;
  const beyond: number[] = [];
  for (let i = 0; i < 8; i++) {
    e += at(e);
    beyond.push(e - 62500);
  }
  for (let i = 1; i < beyond.length; i++) {
    if (beyond[i] < Math.min(2 * beyond[i - 1], MAX)) t.fail(`tail probe ${i}: ${beyond[i]} < 2 x ${beyond[i - 1]}`);
  }
  t.pass(`tail probes beyond p90: ${beyond.join(', ')} ms`);
  // The more past outages outlasted e, the later the next probe: a longer history mode, a longer wait.
  const w40 = adaptivePlan(cfg(), hist(Array(20).fill(40000)), 5000).centreMs;
  const w80 = adaptivePlan(cfg(), hist(Array(20).fill(80000)), 5000).centreMs;
  t.ok(w40 < w80, `early wait grows with the typical duration: ${w40} < ${w80}`);
});

t.test('degenerate histories', async (t) => {
  // All zeros: every past outage ended at once, so any outage still open is beyond p90.
  const zeros = hist(Array(50).fill(0));
  t.equal(adaptivePlan(cfg(), zeros, 0).regime, 'tail');
  t.equal(adaptivePlan(cfg(), zeros, 0).centreMs, BASE);
  t.equal(adaptivePlan(cfg(), zeros, 10000).centreMs, 11000, 'backs off from the floor');
  // Junk is ignored: the same plan as the usable durations alone.
  const clean = [30000, 31000, 32000, 33000, 34000];
  const dirty = [NaN, 30000, -1, 31000, Infinity, 32000, -Infinity, 33000, 34000, NaN];
  for (const e of [0, 10000, 31500, 40000]) t.same(adaptivePlan(cfg(), hist(dirty), e), adaptivePlan(cfg(), hist(clean), e), `junk ignored at e ${e}`);
  t.equal(adaptivePlan(cfg(), hist([NaN, NaN, NaN, NaN, NaN, NaN, 5000]), 0).regime, 'fallback', 'only one usable');
  // A single huge outage among typical ones changes nothing around the typical end and stays capped.
  const huge = hist([...ABOUT_60S.durationsMs.slice(1), 1e12]);
  for (const e of [5000, 30000, 58000, 60000]) {
    const a = adaptivePlan(cfg(), huge, e).centreMs;
    const b = adaptivePlan(cfg(), ABOUT_60S, e).centreMs;
    t.ok(Math.abs(a - b) <= 0.1 * b, `e ${e}: ${a} ~ ${b}`);
  }
  t.ok(adaptivePlan(cfg(), huge, 58000).centreMs <= 2 * BASE, 'still dense around 60 s');
  t.equal(adaptiveDelay(cfg(), huge, 1e11, fixed(ALMOST_ONE)), MAX, 'deep in the huge outage: maxMs');
  t.equal(adaptiveDelay(cfg(), hist(Array(50).fill(1e308)), 0, fixed(ALMOST_ONE)), MAX, 'absurd durations: maxMs');
  // Bad elapsed values count as 0.
  for (const e of [NaN, -5000, -Infinity]) t.same(adaptivePlan(cfg(), ABOUT_60S, e), adaptivePlan(cfg(), ABOUT_60S, 0), `elapsed ${e}`);
  t.equal(adaptivePlan(cfg(), ABOUT_60S, Infinity).centreMs, MAX, 'elapsed Infinity: the longest outage there is, maxMs');
  t.equal(adaptivePlan(cfg(), hist([]), Infinity).highMs, MAX, 'fallback with elapsed Infinity: cap maxMs');
});

/**
 * Outages drawn from a synthetic distribution; the lane probes until a probe lands after the
 * outage's end. probes = attempts per outage (the successful one included); lag = time from the
 * outage's end to the successful probe. EXPONENTIAL_BACKOFF uses nextDelay with the attempt
 * count; ADAPTIVE uses the recorded history of the previous outages (most recent 50, starting
 * empty, so the first 5 outages use the fallback), recorded as the agent would record them:
 * outage start to successful reconnect (true duration + lag).
 */
t.test('simulation: fewer probes than EXPONENTIAL_BACKOFF, detection lag within the bound', async (t) => {
  const retry = { strategy: 'EXPONENTIAL_BACKOFF' as const, baseMs: BASE, maxMs: MAX, jitter: 0.2 };
  const normal = (r: () => number) => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const dists: [string, (r: () => number) => number][] = [
    ['normal 60 s +- 5 s', (r) => Math.max(0, 60000 + 5000 * normal(r))],
    ['log-normal median 30 s, sigma 1', (r) => 30000 * Math.exp(normal(r))],
    ['bimodal 70 % ~5 s, 30 % ~120 s', (r) => (r() < 0.7 ? 5000 : 120000) * Math.exp(0.3 * normal(r))],
    ['exponential mean 45 s', (r) => -45000 * Math.log(1 - r())],
  ];
  const N = 2000;
  const probe = (next: (attempt: number, elapsed: number) => number, end: number) => {
    let at = 0;
    for (let k = 1; ; k++) {
      at += next(k, at);
      if (at >= end) return { probes: k, lag: at - end, at };
    }
  };
  for (const [name, gen] of dists) {
    const r = mulberry32(77);
    const re = mulberry32(1);
    const ra = mulberry32(2);
    const recorded: number[] = [];
    let outage = 0, pe = 0, le = 0, pa = 0, la = 0;
    for (let i = 0; i < N; i++) {
      const end = gen(r);
      outage += end;
      const x = probe((k) => nextDelay(retry, { attempt: k, prevDelayMs: 0 }, re), end);
      const history = hist(recorded.slice(-HISTORY_LIMIT));
      const y = probe((_, elapsed) => adaptiveDelay(retry, history, elapsed, ra), end);
      recorded.push(y.at);
      pe += x.probes; le += x.lag; pa += y.probes; la += y.lag;
    }
    const s = (ms: number) => `${(ms / N / 1000).toFixed(2)} s`;
    t.comment(`${name}: mean outage ${s(outage)}; EXPONENTIAL_BACKOFF ${(pe / N).toFixed(2)} probes, lag ${s(le)}; ADAPTIVE ${(pa / N).toFixed(2)} probes, lag ${s(la)}`);
    t.ok(pa < pe, `${name}: ADAPTIVE uses fewer probes (${(pa / N).toFixed(2)} < ${(pe / N).toFixed(2)})`);
    // The stated bound: mean detection lag at most 30 % of the mean outage and at most half of EXPONENTIAL_BACKOFF's.
    t.ok(la <= 0.3 * outage, `${name}: lag ${s(la)} <= 30 % of the mean outage ${s(outage)}`);
    t.ok(la <= 0.5 * le, `${name}: lag ${s(la)} <= half of EXPONENTIAL_BACKOFF's ${s(le)}`);
  }
});
