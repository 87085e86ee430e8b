/**
 * The circuit breaker state machine (agent/policy/breaker.ts). Explicit `now` values and
 * pinned or seeded rand() replace fake timers; inputs are deep-frozen so any mutation throws.
 */
import t from 'tap';
import type { BreakerConfig } from '../agent/config/types.js';
import {
  admit, initialBreaker, record, reset, transition, addOutcome, emptyWindow, outcomeList, MAX_OUTCOMES, CHUNK_RUNS,
  type BreakerState, type Outcome, type OutcomeWindow,
} from '../agent/policy/breaker.js';
import { mulberry32, fixed, ALMOST_ONE } from './helpers/rand.js';

const cfg: BreakerConfig = { windowMs: 10000, minCalls: 5, failureRate: 0.5, openMs: 1000, halfOpenProbes: 3 };
const half = fixed(0.5);

function freeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) freeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Records outcomes (true = ok) at successive ms from `at`, freezing each state on the way. */
function run(s: BreakerState, at: number, oks: boolean[], c: BreakerConfig = cfg): BreakerState {
  oks.forEach((ok, i) => { s = record(c, freeze(s), at + i, ok, false, half); });
  return s;
}

/** A breaker opened at t=1000 with openUntil exactly 2000 (rand 0.5 -> openMs * 1.0). */
function openBreaker(): BreakerState {
  const s = run(initialBreaker(0), 996, [false, false, false, false, false]);
  if (s.name !== 'open' || s.openUntil !== 2000) throw new Error(`setup: ${JSON.stringify(s)}`);
  return s;
}

t.test('initial and reset', async (t) => {
  const s = initialBreaker(123);
  t.same(s, { name: 'closed', since: 123, openUntil: 0, outcomes: emptyWindow(), probesInFlight: 0, probeSuccesses: 0 });
  t.same(outcomeList(s.outcomes), []);
  const a = admit(cfg, s, 200);
  t.same([a.allowed, a.probe, a.retryAt], [true, false, undefined]);
  const r = reset(5000);
  t.same(r, initialBreaker(5000));
  t.equal(transition(openBreaker(), r), 'open->closed');
});

t.test('opening needs minCalls and the failure rate (table)', async (t) => {
  const rows: [string, boolean[], 'closed' | 'open'][] = [
    ['4 failures: below minCalls', [false, false, false, false], 'closed'],
    ['5 failures', [false, false, false, false, false], 'open'],
    ['3 ok 2 failed = 0.4', [true, true, true, false, false], 'closed'],
    ['3 ok 3 failed = 0.5', [true, true, true, false, false, false], 'open'],
    ['100 ok', Array(100).fill(true), 'closed'],
    ['ok, then failures reaching 0.5 at call 10', [...Array(5).fill(true), ...Array(5).fill(false)], 'open'],
    ['alternating, 2 of 5 failed', [true, false, true, false, true], 'closed'],
  ];
  for (const [name, oks, expected] of rows) t.equal(run(initialBreaker(0), 1, oks).name, expected, name);
  // failureRate just above what was observed keeps it closed.
  t.equal(run(initialBreaker(0), 1, [true, true, true, false, false, false], { ...cfg, failureRate: 0.51 }).name, 'closed');
});

t.test('it opens on the call that crosses the threshold, and reports the transition', async (t) => {
  const before = run(initialBreaker(0), 1, [false, false, false, false]);
  const after = record(cfg, freeze(before), 5, false, false, half);
  t.equal(transition(before, after), 'closed->open');
  t.equal(after.since, 5);
  const calm = run(initialBreaker(0), 1, [false, false]);
  t.equal(transition(calm, run(calm, 6, [true])), undefined, 'no transition when the name stays');
  t.equal(run(before, 6, [true]).name, 'open', '4 failed of 5 opens even on a success');
});

t.test('outcomes older than windowMs do not count', async (t) => {
  const s = run(initialBreaker(0), 0, [false, false, false, false]); // at 0..3
  const later = record(cfg, s, 10003, false, false, half); // 0..3 are all >= windowMs old
  t.equal(later.name, 'closed');
  t.same(outcomeList(later.outcomes), [{ at: 10003, ok: false }]);
});

t.test('window boundary is exclusive', async (t) => {
  const s = run(initialBreaker(0), 0, [false, false, false, false]); // at 0,1,2,3
  const inside = record(cfg, s, 9999, false, false, half); // 0..3 all > -1
  t.equal(inside.name, 'open');
  const edge = record(cfg, s, 10000, false, false, half); // 0 is exactly windowMs old: out
  t.equal(edge.name, 'closed');
  t.same(outcomeList(edge.outcomes).map((o) => o.at), [1, 2, 3, 10000]);
  const later = record(cfg, s, 20000, false, false, half);
  t.same(outcomeList(later.outcomes).map((o) => o.at), [20000]);
});

t.test('the window is bounded to MAX_OUTCOMES', async (t) => {
  t.equal(MAX_OUTCOMES, 1000);
  let s = initialBreaker(0);
  for (let i = 0; i < 2500; i++) s = record(cfg, s, 100, true, false, half);
  t.equal(s.outcomes.calls, 1000);
  t.equal(outcomeList(s.outcomes).length, 1000);
  // The cut drops the oldest: after k failures the window is k failed of 1000, so it opens at k = 500.
  let k = 0;
  while (s.name === 'closed' && k < 2000) { s = record(cfg, s, 101, false, false, half); k++; }
  t.equal(s.name, 'open');
  t.equal(k, 500);
});

t.test('open window is jittered +-20%', async (t) => {
  const trip = (r: () => number, now: number) => {
    let s = initialBreaker(0);
    for (let i = 0; i < 5; i++) s = record(cfg, s, now, false, false, r);
    return s.openUntil - now;
  };
  t.equal(trip(fixed(0), 50000), 800);
  t.equal(trip(fixed(0.5), 50000), 1000);
  t.equal(trip(fixed(ALMOST_ONE), 50000), 1200);
  const rand = mulberry32(2024);
  const ws = Array.from({ length: 2000 }, (_, i) => trip(rand, i * 100000));
  t.ok(ws.every((w) => Number.isInteger(w) && w >= 800 && w <= 1200), 'all within [0.8, 1.2] * openMs');
  t.ok(Math.min(...ws) < 820 && Math.max(...ws) > 1180, 'spread across the window');
  t.ok(new Set(ws).size > 300, 'a fleet does not probe in step');
});

t.test('open refuses until openUntil, then half-open admits probes', async (t) => {
  const s = freeze(openBreaker());
  const early = admit(cfg, s, 1999);
  t.same([early.allowed, early.probe, early.retryAt], [false, false, 2000]);
  t.equal(early.state, s, 'refusal while open leaves the state as it is');
  const first = admit(cfg, s, 2000);
  t.same([first.allowed, first.probe], [true, true]);
  t.equal(first.state.name, 'half_open');
  t.equal(first.state.probesInFlight, 1);
  t.equal(transition(s, first.state), 'open->half_open');
});

t.test('half-open allows exactly halfOpenProbes in flight', async (t) => {
  for (const probes of [1, 2, 3, 5]) {
    const c = { ...cfg, halfOpenProbes: probes };
    let s: BreakerState = freeze(openBreaker());
    let admitted = 0;
    for (let i = 0; i < probes + 3; i++) {
      const a = admit(c, s, 2000 + i);
      if (a.allowed) { admitted++; t.ok(a.probe); } else t.equal(a.retryAt, a.state.openUntil, 'refused probe says when slots are presumed lost');
      s = freeze(a.state);
    }
    t.equal(admitted, probes, `${probes} probes`);
    t.equal(s.probesInFlight, probes);
    // One success frees a slot (unless it closes the breaker).
    s = record(c, s, 2100, true, true, half);
    if (probes === 1) t.equal(s.name, 'closed', 'a single probe success closes');
    else {
      t.equal(s.probesInFlight, probes - 1);
      t.ok(admit(c, s, 2101).allowed, 'a freed slot admits another probe');
    }
  }
});

t.test('halfOpenProbes successes close with an empty window', async (t) => {
  let s: BreakerState = openBreaker();
  for (let i = 0; i < 3; i++) s = freeze(admit(cfg, s, 2000).state);
  s = record(cfg, s, 2010, true, true, half);
  s = record(cfg, s, 2011, true, true, half);
  t.equal(s.name, 'half_open');
  t.equal(s.probeSuccesses, 2);
  const closed = record(cfg, freeze(s), 2012, true, true, half);
  t.equal(transition(s, closed), 'half_open->closed');
  t.same(closed, initialBreaker(2012));
});

t.test('a failed probe reopens with a fresh jittered window', async (t) => {
  let s: BreakerState = openBreaker();
  s = freeze(admit(cfg, s, 2000).state);
  s = freeze(admit(cfg, s, 2000).state);
  s = record(cfg, s, 2050, true, true, half);
  for (const [r, w] of [[0, 800], [0.5, 1000], [ALMOST_ONE, 1200]] as const) {
    const re = record(cfg, s, 3000, false, true, fixed(r));
    t.equal(transition(s, re), 'half_open->open');
    t.equal(re.openUntil - 3000, w);
    t.equal(re.probeSuccesses, 0);
    t.equal(admit(cfg, re, 3000 + w - 1).allowed, false);
    t.equal(admit(cfg, re, 3000 + w).allowed, true);
  }
});

t.test('stale outcomes are ignored', async (t) => {
  const open = freeze(openBreaker());
  t.equal(record(cfg, open, 1500, true, false, half), open, 'outcome while open');
  t.equal(record(cfg, open, 1500, false, true, half), open, 'late probe failure while open');
  const ho = freeze(admit(cfg, open, 2000).state);
  t.equal(record(cfg, ho, 2001, false, false, half), ho, 'non-probe failure while half-open');
  const closed = record(cfg, freeze(initialBreaker(0)), 5, true, true, half);
  t.equal(closed.outcomes.calls, 1, 'a probe outcome after closing counts as a normal outcome');
  t.same(outcomeList(closed.outcomes), [{ at: 5, ok: true }]);
});

t.test('lost probes: after the probe deadline the slots are presumed free', async (t) => {
  let s: BreakerState = openBreaker();
  for (let i = 0; i < 3; i++) s = freeze(admit(cfg, s, 2000).state);
  t.equal(s.openUntil, 3000, 'probe deadline = half-open start + openMs');
  t.equal(admit(cfg, s, 2999).allowed, false);
  const a = admit(cfg, s, 3000);
  t.same([a.allowed, a.probe, a.state.probesInFlight, a.state.openUntil], [true, true, 1, 4000]);
  // A late record of a presumed-lost probe never drives the count negative.
  let z = a.state;
  for (let i = 0; i < 3; i++) z = record({ ...cfg, halfOpenProbes: 10 }, z, 3001, true, true, half);
  t.equal(z.probesInFlight, 0);
});

t.test('inputs are never mutated', async (t) => {
  const s = run(initialBreaker(0), 1, [true, false, true]);
  const snapshot = JSON.stringify(s);
  record(cfg, s, 10, false, false, half);
  admit(cfg, s, 10);
  t.equal(JSON.stringify(s), snapshot);
});

/** The window as a plain list, the way it was specified: filter by age, then keep the newest MAX_OUTCOMES. */
function reference(list: readonly Outcome[], ok: boolean, windowMs: number, now: number): Outcome[] {
  const kept = [...list, { at: now, ok }].filter((o) => o.at > now - windowMs);
  return kept.length > MAX_OUTCOMES ? kept.slice(kept.length - MAX_OUTCOMES) : kept;
}

t.test('the counted window equals the plain list, call for call (seeded, clock steps back too)', async (t) => {
  for (const seed of [1, 2, 3]) {
    const rand = mulberry32(seed);
    let w: OutcomeWindow = emptyWindow();
    let list: Outcome[] = [];
    let now = 1_000_000;
    let bad = 0;
    let backSteps = 0;
    let capped = 0;
    for (let i = 0; i < 30000 && bad === 0; i++) {
      const r = rand();
      const dense = i % 6000 < 3000; // dense phases overflow MAX_OUTCOMES, sparse ones expire by age
      if (r < 0.4) now += 0; // same ms: runs merge
      else if (r < 0.995) now += Math.floor(rand() * (dense ? 4 : 60));
      else if (r < 0.998) now += 2000 + Math.floor(rand() * 9000); // a pause: most of the window expires
      else {
        now -= Math.floor(rand() * 3000); // the clock steps back
        backSteps++;
      }
      const ok = rand() < (i % 5000 < 2500 ? 0.9 : 0.3);
      const windowMs = i % 7000 < 6000 ? 10000 : 300;
      w = addOutcome(freeze(w), ok, windowMs, now);
      list = reference(list, ok, windowMs, now);
      const failures = list.filter((o) => !o.ok).length;
      if (w.calls !== list.length || w.failures !== failures) bad++;
      if (list.length === MAX_OUTCOMES) capped++;
      if (i % 97 === 0 && JSON.stringify(outcomeList(w)) !== JSON.stringify(list)) bad++;
      if (w.chunks.some((c) => c.length === 0 || c.length > CHUNK_RUNS)) bad++;
    }
    t.equal(bad, 0, `seed ${seed}: same calls, failures and outcomes as the plain list (${backSteps} clock steps back, ${capped} calls at the cap)`);
    t.ok(backSteps > 10 && capped > 1000, 'the run went through clock steps back and through the MAX_OUTCOMES cap');
    t.same(outcomeList(w), list, `seed ${seed}: final window`);
  }
});

t.test('runs: same ms and result are counted, not repeated; a busy window stays small', async (t) => {
  let w = emptyWindow();
  for (let i = 0; i < 5; i++) w = addOutcome(freeze(w), true, 10000, 100);
  w = addOutcome(freeze(w), false, 10000, 100);
  w = addOutcome(freeze(w), true, 10000, 100);
  t.same(w.chunks, [[{ at: 100, ok: true, n: 5 }, { at: 100, ok: false, n: 1 }, { at: 100, ok: true, n: 1 }]]);
  t.same([w.calls, w.failures], [7, 1]);
  // 1000 calls a second for a minute: the window holds MAX_OUTCOMES calls in a handful of chunks.
  let s = initialBreaker(0);
  for (let i = 0; i < 60000; i++) s = record(cfg, s, Math.floor(i / 10), true, false, half);
  t.equal(s.outcomes.calls, MAX_OUTCOMES);
  const runs = s.outcomes.chunks.reduce((n, c) => n + c.length, 0);
  t.ok(runs <= MAX_OUTCOMES / 10 + 1, `one run per ms: ${runs} runs`);
  t.ok(s.outcomes.chunks.length <= Math.ceil(runs / CHUNK_RUNS) + 1, `${s.outcomes.chunks.length} chunks`);
});
