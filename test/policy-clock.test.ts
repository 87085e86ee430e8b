/**
 * agent/policy/clock.ts, table-driven with explicit clocks: step detection from the offset of the
 * wall clock over the monotonic one, ages that a step cannot make absurd, flagging and re-basing
 * readings stamped below the floor.
 */
import t from 'tap';
import { firstLook, flagUnsynced, judgeAge, look, rebaseReadings, scheduleCap, STEP_THRESHOLD_MS, wallAge } from '../agent/policy/clock.js';
import type { Reading } from '../agent/reading.js';

const FLOOR = Date.UTC(2026, 10, 1);
const NOW = Date.UTC(2026, 11, 4, 12);
const YEAR = 365 * 86_400_000;
const MONO = 5_000_000;

t.test('look: steps, drift and the floor', async (t) => {
  const s = { offset: NOW - MONO, synced: true, persisted: NOW - MONO };
  const cases: Array<{ name: string; wall: number; mono: number; step: number | null; became: string | null; persist: boolean }> = [
    { name: 'both clocks ran 1 s: no step', wall: NOW + 1000, mono: MONO + 1000, step: null, became: null, persist: false },
    { name: 'a 400 ms slew is drift, and not written', wall: NOW + 1400, mono: MONO + 1000, step: null, became: null, persist: false },
    { name: 'drift past half the threshold is written', wall: NOW + 1000 + STEP_THRESHOLD_MS / 2 + 1, mono: MONO + 1000, step: null, became: null, persist: true },
    { name: 'a year back, to before the floor', wall: NOW - YEAR + 1000, mono: MONO + 1000, step: -YEAR, became: 'unsynced', persist: true },
    { name: 'forward by 2 s', wall: NOW + 3000, mono: MONO + 1000, step: 2000, became: null, persist: true },
    { name: 'back below the floor (an RTC reset)', wall: 86_400_000, mono: MONO + 1000, step: 86_400_000 - 1000 - NOW, became: 'unsynced', persist: true },
    { name: 'a stopped wall clock while mono runs 5 s: a step of -5 s', wall: NOW, mono: MONO + 5000, step: -5000, became: null, persist: true },
  ];
  for (const c of cases) {
    const l = look(s, c.wall, c.mono, FLOOR);
    t.equal(l.step, c.step, `${c.name}: step`);
    t.equal(l.became, c.became, `${c.name}: became`);
    t.equal(l.persist, c.persist, `${c.name}: persist`);
    t.equal(l.state.offset, c.wall - c.mono, `${c.name}: the offset follows`);
  }
  const ahead = { offset: NOW + YEAR - MONO, synced: true, persisted: NOW + YEAR - MONO };
  const back = look(ahead, NOW + 1000, MONO + 1000, FLOOR);
  t.same([back.step, back.became, back.state.synced], [-YEAR, null, true], 'a year ahead, NTP steps it back to now: a step, still synced');
  const from1970 = { offset: 3_600_000 - MONO, synced: false, persisted: 3_600_000 - MONO };
  const l = look(from1970, NOW, MONO + 1000, FLOOR);
  t.equal(l.became, 'synced', '1970 -> now: synced');
  t.equal(l.step, NOW - 3_600_000 - 1000, 'and a forward step of ~56 years');
});

t.test('firstLook: compared with what the store kept for this boot', async (t) => {
  t.same(firstLook(undefined, NOW, MONO, FLOOR), { state: { offset: NOW - MONO, synced: true, persisted: NOW - MONO }, step: null, became: 'synced', persist: true }, 'first run of a boot: nothing to compare');
  t.equal(firstLook({ offset: NOW - MONO, synced: true }, NOW + 10_000, MONO + 10_000, FLOOR).step, null, 'a restart 10 s later: no step');
  t.equal(firstLook({ offset: NOW + YEAR - MONO, synced: true }, NOW + 10_000, MONO + 10_000, FLOOR).step, -YEAR, 'stepped back a year while stopped');
  const l = firstLook({ offset: 1000 - MONO, synced: false }, NOW, MONO + 60_000, FLOOR);
  t.equal(l.became, 'synced', 'stopped unsynchronised, started synchronised');
  t.equal(l.step, NOW - 1000 - 60_000);
  t.equal(firstLook(undefined, 5000, MONO, FLOOR).became, null, 'a first run below the floor');
  t.equal(firstLook(undefined, 5000, MONO, FLOOR).state.synced, false);
});

t.test('wallAge and judgeAge', async (t) => {
  const cases: Array<{ name: string; first: number | null; wall: number; seen?: { mono: number; age: number }; mono?: number; wallAge: number | null; judged: number }> = [
    { name: 'a first attempt', first: null, wall: NOW, wallAge: 0, judged: 0 },
    { name: 'an ordinary age', first: NOW - 60_000, wall: NOW, wallAge: 60_000, judged: 60_000 },
    { name: 'first tried in 1970 by an unsynchronised clock, judged now: unknown, 0', first: 3_600_000, wall: NOW, wallAge: null, judged: 0 },
    { name: 'first tried in 1970, still 1970: a real age', first: 3_600_000, wall: 3_660_000, wallAge: 60_000, judged: 60_000 },
    { name: 'first attempt in the future (clock stepped back): unknown', first: NOW + YEAR, wall: NOW, wallAge: null, judged: 0 },
    { name: 'seen 10 s old, mono ran 5 s, the wall jumped a year: 15 s', first: NOW, wall: NOW + YEAR, seen: { mono: MONO, age: 10_000 }, mono: MONO + 5000, wallAge: YEAR, judged: 15_000 },
    { name: 'seen, the wall age smaller: the wall age', first: NOW - 3000, wall: NOW, seen: { mono: MONO, age: 10_000 }, mono: MONO + 5000, wallAge: 3000, judged: 3000 },
    { name: 'seen, wall age unknown (1970 stamp): the monotonic bound', first: 3_600_000, wall: NOW, seen: { mono: MONO, age: 2000 }, mono: MONO + 7000, wallAge: null, judged: 9000 },
    { name: 'seen, mono went nowhere', first: NOW - 50_000, wall: NOW, seen: { mono: MONO, age: 1000 }, mono: MONO - 5, wallAge: 50_000, judged: 1000 },
  ];
  for (const c of cases) {
    t.equal(wallAge(c.first, c.wall, FLOOR), c.wallAge, `${c.name}: wallAge`);
    t.equal(judgeAge(c.first, c.wall, FLOOR, c.seen, c.mono ?? MONO), c.judged, `${c.name}: judgeAge`);
  }
});

const reading = (ts: number, extra: Partial<Reading> = {}): Reading => ({ device: 'd', point: 'p', ts, value: 1, unit: '', quality: 'good', ...extra });

t.test('flagUnsynced: readings below the floor get clock=unsynced and their monotonic time', async (t) => {
  const wall = 3_600_000;
  const rs = [reading(wall - 250), reading(wall), reading(NOW), reading(wall - 10, { clock: 'rebased' })];
  t.equal(flagUnsynced(rs, wall, MONO, FLOOR), 2, 'two flagged');
  t.same(rs[0], reading(wall - 250, { clock: 'unsynced', mono: MONO - 250 }), 'its monotonic time from the clocks now');
  t.same(rs[1], reading(wall, { clock: 'unsynced', mono: MONO }));
  t.same(rs[2], reading(NOW), 'a reading at or above the floor is left alone');
  t.same(rs[3], reading(wall - 10, { clock: 'rebased' }), 'an already marked reading is left alone');
});

t.test('rebaseReadings: ts = mono + a good offset', async (t) => {
  const offset = NOW - MONO;
  const rs: Array<Partial<Reading>> = [reading(5000, { clock: 'unsynced', mono: MONO - 2000 }), reading(NOW), reading(5000, { clock: 'unsynced' }), reading(6000, { clock: 'unsynced', mono: NaN })];
  t.equal(rebaseReadings(rs, offset), 1, 'only a flagged reading with a monotonic time');
  t.same(rs[0], reading(NOW - 2000, { clock: 'rebased' }), 're-based, the monotonic time dropped');
  t.same(rs[1], reading(NOW));
  t.equal(rs[2].clock, 'unsynced', 'no monotonic time: keeps its flag');
  t.equal(rs[3].clock, 'unsynced', 'a bad monotonic time: keeps its flag');
});

t.test('scheduleCap: the longer of the retry cap and the hold, with their jitter', async (t) => {
  t.equal(scheduleCap({ maxMs: 60_000, hardFailureHoldMs: 60_000 }), 73_000);
  t.equal(scheduleCap({ maxMs: 300_000, hardFailureHoldMs: 60_000 }), 331_000);
});
