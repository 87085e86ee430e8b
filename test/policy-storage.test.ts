/**
 * The storage policy (agent/policy/storage.ts) and downsampling (agent/policy/downsample.ts),
 * table-driven: how full the store is against a quota or a shared disk; which batches a plan
 * takes out, in which order, and that it never drops a batch whose file would not be emptied.
 */
import t from 'tap';
import {
  assessSpace, checkpointBytesFor, LOW_WATER, planReclaim, segmentBytesFor, stillFull, unreferencedSegments, type Candidate, type PlanInput, type SpaceInput,
} from '../agent/policy/storage.js';
import { downsample } from '../agent/policy/downsample.js';
import type { Reading } from '../agent/reading.js';

const MB = 1024 * 1024;

t.test('assessSpace: quota or disk, whichever is tighter; warn at 90 %, full at the budget', async (t) => {
  const base: SpaceInput = { usedBytes: 0, maxBytes: 0, fsFreeBytes: 100 * MB, fsTotalBytes: 200 * MB, minFreeRatio: 0.05 };
  const cases: [string, Partial<SpaceInput>, { level: string; bound: string; budgetBytes: number; needBytes?: number }][] = [
    ['empty store, big disk', {}, { level: 'ok', bound: 'disk', budgetBytes: 90 * MB }],
    ['quota below the disk', { maxBytes: 50 * MB, usedBytes: 10 * MB }, { level: 'ok', bound: 'quota', budgetBytes: 50 * MB }],
    ['90 % of the quota: warn', { maxBytes: 50 * MB, usedBytes: 45 * MB }, { level: 'warn', bound: 'quota', budgetBytes: 50 * MB, needBytes: 45 * MB - LOW_WATER * 50 * MB }],
    ['at the quota: full', { maxBytes: 50 * MB, usedBytes: 50 * MB }, { level: 'full', bound: 'quota', budgetBytes: 50 * MB, needBytes: 50 * MB - LOW_WATER * 50 * MB }],
    // Another program filled the disk: the store's own use is small, but the reserve is gone.
    ['shared disk filled by others', { usedBytes: 5 * MB, fsFreeBytes: 6 * MB }, { level: 'full', bound: 'disk', budgetBytes: 1 * MB }],
    ['disk tighter than the quota', { maxBytes: 500 * MB, usedBytes: 20 * MB, fsFreeBytes: 12 * MB }, { level: 'warn', bound: 'disk', budgetBytes: 22 * MB }],
    ['no room at all', { usedBytes: 3 * MB, fsFreeBytes: 0 }, { level: 'full', bound: 'disk', budgetBytes: 0, needBytes: 3 * MB }],
  ];
  for (const [name, over, want] of cases) t.match(assessSpace({ ...base, ...over }), want, name);
  const full = assessSpace({ ...base, maxBytes: 100, usedBytes: 100 });
  const warn = assessSpace({ ...base, maxBytes: 100, usedBytes: 92 });
  const ok = assessSpace({ ...base, maxBytes: 100, usedBytes: 50 });
  t.ok(stillFull(false, full));
  t.ok(stillFull(true, warn), 'full stays full until below the warning mark');
  t.notOk(stillFull(false, warn), 'a warning alone is not full');
  t.notOk(stillFull(true, ok));
});

const cand = (payloadId: number, segment: number | null, tasks: [string, 'pending' | 'failed' | 'delivered'][], over: Partial<Candidate> = {}): Candidate => ({
  payloadId, segment, bytes: 100, createdAt: payloadId, readings: 10, downsampled: false, tasks: tasks.map(([uplink, status]) => ({ uplink, status })), ...over,
});

function input(over: Partial<PlanInput>): PlanInput {
  return { candidates: [], segments: new Map(), active: null, priorities: new Map(), policy: 'drop-oldest', needBytes: 1, full: true, ...over };
}

t.test('planReclaim: delivered first (not a loss), then dead letters, then pending by priority and age; only files it empties', async (t) => {
  const segs = new Map([[1, 1000], [2, 1000], [3, 1000], [4, 1000]]);
  const cands = [
    cand(1, 1, [['a', 'delivered'], ['b', 'delivered']]),
    cand(2, 1, [['a', 'delivered'], ['b', 'delivered']]),
    cand(3, 2, [['a', 'failed'], ['b', 'delivered']]),
    cand(4, 2, [['a', 'pending'], ['b', 'delivered']]),
    cand(5, 3, [['a', 'delivered'], ['b', 'pending']]),
    cand(6, 3, [['a', 'delivered'], ['b', 'pending']]),
    cand(7, 4, [['a', 'pending'], ['b', 'pending']]),
  ];
  const priorities = new Map([['a', 0], ['b', 10]]);
  const cases: [string, Partial<PlanInput>, { reclaim: number[]; drop: [number, string][]; freed: number[] }][] = [
    ['short of space (warn): delivered only, even when it frees nothing more', { needBytes: 5000, full: false }, { reclaim: [1, 2], drop: [], freed: [1] }],
    ['need 1 file: the delivered file is enough', { needBytes: 1000 }, { reclaim: [1, 2], drop: [], freed: [1] }],
    ['need 2 files: then the dead letter and the low-priority pending batch of file 2', { needBytes: 2000 }, { reclaim: [1, 2], drop: [[3, 'dead_letter'], [4, 'oldest']], freed: [1, 2] }],
    ['need 3 files: a\'s batch (priority 0) before those b waits for (priority 10), which go oldest first until file 3 is empty', { needBytes: 3000 },
      { reclaim: [1, 2], drop: [[3, 'dead_letter'], [4, 'oldest'], [5, 'oldest'], [6, 'oldest']], freed: [1, 2, 3] }],
    ['reject-new never drops: delivered only', { needBytes: 4000, policy: 'reject-new' }, { reclaim: [1, 2], drop: [], freed: [1] }],
  ];
  for (const [name, over, want] of cases) {
    const p = planReclaim(input({ candidates: cands, segments: segs, priorities, ...over }));
    t.same({ reclaim: p.reclaim, drop: p.drop.map((d) => [d.payloadId, d.reason]), freed: p.freedSegments }, want, name);
    t.equal(p.freedBytes, want.freed.length * 1000, `${name}: bytes of the emptied files`);
  }
  const flat = planReclaim(input({ candidates: cands, segments: segs, priorities: new Map(), needBytes: 3000 }));
  t.same(flat.drop.map((d) => d.payloadId), [3, 4, 5, 6], 'equal priorities: oldest first');
});

t.test('planReclaim: a batch whose file is not emptied is not dropped (a loss that frees nothing)', async (t) => {
  const segs = new Map([[1, 1000], [2, 1000]]);
  // File 1 holds an old batch of a (priority 0) and one of b (priority 5); file 2 only a newer batch of a.
  const cands = [cand(1, 1, [['a', 'pending']]), cand(2, 1, [['b', 'pending']]), cand(3, 2, [['a', 'pending']])];
  const p = planReclaim(input({ candidates: cands, segments: segs, priorities: new Map([['a', 0], ['b', 5]]), needBytes: 1000 }));
  t.same(p.drop.map((d) => d.payloadId), [3], 'file 2 is emptied; the old batch of a in file 1 is left, file 1 keeps b');
  t.same(p.freedSegments, [2]);
});

t.test('planReclaim: downsample takes raw batches before any summary; the active file is rolled when emptied', async (t) => {
  const segs = new Map([[1, 1000], [2, 1000], [3, 500]]);
  const cands = [
    cand(1, 1, [['a', 'pending']], { downsampled: true }),
    cand(2, 2, [['a', 'pending']]),
    cand(3, 2, [['a', 'pending']]),
    cand(4, 3, [['a', 'pending']]),
  ];
  const p = planReclaim(input({ candidates: cands, segments: segs, policy: 'downsample', needBytes: 1000, active: 3 }));
  t.same(p.downsample, [2, 3], 'the raw batches of file 2 are merged');
  t.same(p.drop, [], 'the old summary is kept');
  const more = planReclaim(input({ candidates: cands, segments: segs, policy: 'downsample', needBytes: 2000, active: 3 }));
  t.same(more.downsample, [2, 3]);
  t.same(more.drop, [{ payloadId: 1, reason: 'oldest' }], 'once every raw batch is taken, the oldest summary goes');
  const act = planReclaim(input({ candidates: cands, segments: segs, needBytes: 2500, active: 3 }));
  t.same(act.freedSegments, [1, 2, 3]);
  t.ok(act.rollActive, 'the active file is among the emptied: roll it first');
  t.same(unreferencedSegments(cands, new Map([...segs, [9, 50], [10, 60]]), 10), [9], 'files no batch refers to (the active one aside)');
  t.same(planReclaim(input({ candidates: cands, segments: segs, needBytes: 0 })).drop, [], 'nothing needed, nothing taken');
});

t.test('segment and checkpoint sizes follow the budget', async (t) => {
  t.equal(segmentBytesFor(8 * MB), 512 * 1024);
  t.equal(segmentBytesFor(1 * MB), 256 * 1024, 'never below 256 KiB');
  t.equal(segmentBytesFor(100 * 1024 * MB), 32 * MB, 'never above 32 MiB');
  t.equal(checkpointBytesFor(8 * MB), 256 * 1024);
  t.equal(checkpointBytesFor(10 * 1024 * MB), 4096 * 1000);
});

const r = (point: string, ts: number, value: Reading['value'], quality: Reading['quality'] = 'good'): Reading => ({ device: 'm1', point, ts, value, unit: 'V', quality });

t.test('downsample: min/max/avg/count per point and interval; summaries merge by count; text keeps its last value', async (t) => {
  const out = downsample([
    r('v', 1000, 230), r('v', 30_000, 232), r('v', 59_999, 228, 'uncertain'), r('v', 60_000, 240),
    r('state', 10, 'run'), r('state', 50_000, 'stop'), r('i', 5, null),
  ], 60_000);
  t.same(out, [
    { device: 'm1', point: 'i', ts: 0, value: null, unit: 'V', quality: 'good', min: null, max: null, count: 1, intervalMs: 60_000 },
    { device: 'm1', point: 'state', ts: 0, value: 'stop', unit: 'V', quality: 'good', min: null, max: null, count: 2, intervalMs: 60_000 },
    { device: 'm1', point: 'v', ts: 0, value: 230, unit: 'V', quality: 'uncertain', min: 228, max: 232, count: 3, intervalMs: 60_000 },
    { device: 'm1', point: 'v', ts: 60_000, value: 240, unit: 'V', quality: 'good', min: 240, max: 240, count: 1, intervalMs: 60_000 },
  ]);
  const again = downsample([...out, r('v', 61_000, 250)], 120_000);
  const v = again.find((x) => x.point === 'v')!;
  t.same({ count: v.count, min: v.min, max: v.max }, { count: 5, min: 228, max: 250 }, 'summaries merge with raw readings');
  t.equal(v.value, (230 * 3 + 240 + 250) / 5, 'a mean weighted by count');
  const counters = downsample(Array.from({ length: 100 }, (_, i) => r('counter', i * 100, i + 1)), 1000);
  t.equal(counters.length, 10);
  t.same(counters.map((c) => [c.min, c.max, c.count]), Array.from({ length: 10 }, (_, i) => [i * 10 + 1, i * 10 + 10, 10]), 'a contiguous counter stays accountable: max - min + 1 = count');
});
