/**
 * The order of service and admission (agent/forward/order.ts decide()), table-driven: which
 * source goes next, which gate holds it and for how long, and that a refusal changes nothing.
 */
import t from 'tap';
import { decide, DUE_CHECK_MS, type Decision, type GateConfig, type Gates, type Heads } from '../agent/forward/order.js';
import { initialBreaker, record } from '../agent/policy/breaker.js';
import { emptyBudget, noteAttempt, type RetryBudget } from '../agent/policy/budget.js';

const T = 1_000_000;
const cfg: GateConfig = {
  breaker: { windowMs: 30_000, minCalls: 5, failureRate: 0.5, openMs: 10_000, halfOpenProbes: 3 },
  drain: { messagesPerSec: 50, readingsPerSec: 20_000 },
  retryBudget: { ratio: 0.1, minPerSec: 1 },
};
const full = (n: number) => ({ tokens: n, at: T });
const gates = (over: Partial<Gates> = {}): Gates => ({
  breaker: initialBreaker(T), msgBucket: full(50), readBucket: full(20_000), budget: emptyBudget(), throttle: 1, drainStartAt: 0, serverHoldUntil: 0, ...over,
});
/** A breaker opened by five link failures at T (opens for openMs x jitter in 0.8..1.2 with rand 0.5: openMs). */
function openBreaker() {
  let b = initialBreaker(T);
  for (let i = 0; i < 5; i++) b = record(cfg.breaker, b, T, false, false, () => 0.5);
  return b;
}
/** A budget spent: 20 retries and no first attempts in the window (min 1/s x 10 s = 10 allowed). */
function spent(): RetryBudget {
  let b = emptyBudget();
  for (let i = 0; i < 20; i++) b = noteAttempt(b, true, 10_000, T);
  return b;
}
const all: Heads = { live: { readings: 10 }, due: { readings: 10 }, backlog: { readings: 10 }, paced: { readings: 0 } };

const cases: [string, Heads, Partial<Gates>, Partial<Decision> & { kind: Decision['kind'] }][] = [
  ['nothing to send: idle', {}, {}, { kind: 'idle' }],
  ['live before everything', all, {}, { kind: 'take', source: 'live' }],
  ['then due retries', { due: all.due, backlog: all.backlog, paced: all.paced }, {}, { kind: 'take', source: 'due' }],
  ['then the backlog', { backlog: all.backlog, paced: all.paced }, {}, { kind: 'take', source: 'backlog' }],
  ['then paced devices', { paced: all.paced }, {}, { kind: 'take', source: 'paced' }],
  ['the open breaker holds every source until it may half-open', all, { breaker: openBreaker() }, { kind: 'wait', why: 'breaker', ms: 10_000 }],
  ['retries over budget wait a due check; the backlog goes meanwhile', { due: all.due, backlog: all.backlog }, { budget: spent() }, { kind: 'take', source: 'backlog' }],
  ['retries over budget alone: wait', { due: all.due }, { budget: spent() }, { kind: 'wait', why: 'due', ms: DUE_CHECK_MS }],
  ['live is never held by the budget or the drain rate', { live: all.live }, { budget: spent(), msgBucket: full(0), drainStartAt: T + 5000 }, { kind: 'take', source: 'live' }],
  ['a server\'s Retry-After holds every source, live data too', all, { serverHoldUntil: T + 1500 }, { kind: 'wait', why: 'server', ms: 1500 }],
  ['the server\'s hold is over: live first again', all, { serverHoldUntil: T }, { kind: 'take', source: 'live' }],
  ['the backlog waits for the drain start', { backlog: all.backlog }, { drainStartAt: T + 1234 }, { kind: 'wait', why: 'backlog', ms: 1234 }],
  ['the backlog waits for a message token (50/s: 20 ms)', { backlog: all.backlog }, { msgBucket: full(0) }, { kind: 'wait', why: 'backlog', ms: 20 }],
  ['throttled to half: 40 ms', { backlog: all.backlog }, { msgBucket: full(0), throttle: 0.5 }, { kind: 'wait', why: 'backlog', ms: 40 }],
  ['the backlog waits for reading tokens (100 more at 20,000/s: 5 ms)', { backlog: { readings: 100 } }, { readBucket: full(0) }, { kind: 'wait', why: 'backlog', ms: 5 }],
  ['held backlog, paced device goes', { backlog: all.backlog, paced: all.paced }, { msgBucket: full(0) }, { kind: 'take', source: 'paced' }],
  ['two held: the sooner wait', { due: all.due, backlog: all.backlog }, { budget: spent(), msgBucket: full(0) }, { kind: 'wait', why: 'backlog', ms: 20 }],
];

t.test('order of service and the gates', async (t) => {
  for (const [name, heads, over, want] of cases) {
    const g = gates(over);
    const before = JSON.stringify(g);
    const d = decide(heads, g, cfg, T);
    t.match(d, want, name);
    t.equal(JSON.stringify(g), before, `${name}: the gates given are not changed`);
  }
});

t.test('a take returns the gates to store: tokens spent, the breaker as admitted', async (t) => {
  const d = decide({ backlog: { readings: 100 } }, gates(), cfg, T);
  t.equal(d.kind, 'take');
  if (d.kind !== 'take') return;
  t.equal(d.gates.msgBucket.tokens, 49, 'one message token');
  t.equal(d.gates.readBucket.tokens, 19_900, 'one token a reading');
  t.equal(d.probe, false);

  const half = decide({ live: { readings: 1 } }, gates({ breaker: openBreaker() }), cfg, T + 10_000);
  t.match(half, { kind: 'take', source: 'live', probe: true }, 'past openMs: a half-open probe');
  if (half.kind === 'take') t.equal(half.gates.breaker.name, 'half_open');
});

t.test('the thermal factor shrinks the retry budget too', async (t) => {
  // 6 retries, no first attempts: allowed at minPerSec 1 (10 in the window), not at half (5).
  let b = emptyBudget();
  for (let i = 0; i < 6; i++) b = noteAttempt(b, true, 10_000, T);
  t.match(decide({ due: all.due }, gates({ budget: b }), cfg, T), { kind: 'take', source: 'due' }, 'full speed');
  t.match(decide({ due: all.due }, gates({ budget: b, throttle: 0.5 }), cfg, T), { kind: 'wait', why: 'due' }, 'throttled');
});
