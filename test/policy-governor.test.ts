/**
 * agent/policy/governor.ts: the thermal governor, table-driven over an explicit clock: hysteresis,
 * minimum dwell, unknown temperature, and the poll stride of a factor.
 */
import t from 'tap';
import { govern, initialGovernor, pollStride, type GovernorConfig, type GovernorState } from '../agent/policy/governor.js';

const cfg: GovernorConfig = { aboveC: 75, belowC: 70, factor: 0.25, minDwellMs: 30_000 };

t.test('a sequence of samples: hysteresis, dwell, unknown temperature', async (t) => {
  // [time s, temperature, throttled after, factor, change]
  const steps: Array<[number, number | null, boolean, number, string | null]> = [
    [0, 60, false, 1, null],
    [10, 76, false, 1, null], // hot, but the start state is younger than the dwell
    [30, 76, true, 0.25, 'throttle'],
    [40, 72, true, 0.25, null], // between the thresholds: stays
    [50, 69, true, 0.25, null], // cool, but throttled only 20 s ago
    [60, 69, false, 1, 'release'],
    [70, 74.9, false, 1, null], // just below aboveC
    [100, 75, true, 0.25, 'throttle'], // at aboveC
    [110, null, false, 1, 'release'], // sensor lost: released at once, dwell or not
    [120, 90, false, 1, null], // and the dwell starts again from the release
    [140, 90, true, 0.25, 'throttle'],
    [200, Number.NaN, false, 1, 'release'],
  ];
  let s: GovernorState = initialGovernor(0);
  for (const [at, temp, throttled, factor, change] of steps) {
    const r = govern(cfg, s, temp, at * 1000);
    t.equal(r.state.throttled, throttled, `t=${at}s ${temp} C: throttled ${throttled}`);
    t.equal(r.factor, factor, 'factor');
    t.equal(r.change, change, 'change');
    if (r.change) t.equal(r.state.since, at * 1000, 'the new state starts now');
    else t.equal(r.state, s, 'no change: the same state object');
    s = r.state;
  }
});

t.test('pollStride: every how many slots a throttled device is polled', async (t) => {
  const cases: Array<[number, number]> = [[1, 1], [2, 1], [0.5, 2], [0.25, 4], [0.3, 3], [0.1, 10], [0, 1], [-1, 1], [Number.NaN, 1]];
  for (const [f, want] of cases) t.equal(pollStride(f), want, `factor ${f}`);
});
