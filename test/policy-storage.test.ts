/**
 * The storage policy (agent/policy/storage.ts), downsampling (agent/policy/downsample.ts) and
 * store failures (agent/policy/store-health.ts),
 * table-driven: how full the store is against a quota or a shared disk; which segment files a
 * plan empties, in which order, and what becomes of their batches.
 */
import t from 'tap';
import {
  assessSpace, checkpointBytesFor, fateOf, LOW_WATER, planReclaim, segmentBytesFor, stillFull, type Plan, type PlanInput, type SegmentInfo, type SpaceInput,
} from '../agent/policy/storage.js';
import { downsample } from '../agent/policy/downsample.js';
import { classifyStoreError, probeDelayMs, rescueScope, type RescueScope, type StoreFailureKind } from '../agent/policy/store-health.js';
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

const seg = (id: number, over: Partial<SegmentInfo>): SegmentInfo => ({ id, bytes: 1000, batches: 10, pending: 0, rawPending: 0, failed: 0, keep: -Infinity, oldest: id * 100, ...over });

function input(over: Partial<PlanInput>): PlanInput {
  return { segments: [], active: null, policy: 'drop-oldest', needBytes: 1, full: true, ...over };
}

const ids = (p: Plan) => p.segments.map((s) => [s.id, s.fate]);

t.test('planReclaim: unreferenced, delivered (not a loss), dead letters, then pending by the priority waiting and age', async (t) => {
  const segs = [
    seg(1, {}), // delivered everywhere
    seg(2, { failed: 2 }), // dead letters and delivered
    seg(3, { pending: 4, rawPending: 4, keep: 0 }), // a (priority 0) still waits
    seg(4, { pending: 6, rawPending: 6, keep: 10 }), // b (priority 10) waits
    seg(5, { pending: 3, rawPending: 3, keep: 0, oldest: 900 }), // a waits, newer than 4
    seg(6, { batches: 0, bytes: 300 }), // left by a crash
  ];
  const cases: [string, Partial<PlanInput>, [number, string][]][] = [
    ['short of space (warn): delivered only', { needBytes: 5000, full: false }, [[6, 'unreferenced'], [1, 'reclaim']]],
    ['need little: the unreferenced file and the delivered one', { needBytes: 1200 }, [[6, 'unreferenced'], [1, 'reclaim']]],
    ['need more: then the dead letters', { needBytes: 2300 }, [[6, 'unreferenced'], [1, 'reclaim'], [2, 'dead_letter']]],
    ['more: then what only a waits for (priority 0), oldest first, before the older file b waits for (priority 10)', { needBytes: 4300 },
      [[6, 'unreferenced'], [1, 'reclaim'], [2, 'dead_letter'], [3, 'oldest'], [5, 'oldest']]],
    ['everything', { needBytes: 1e9 }, [[6, 'unreferenced'], [1, 'reclaim'], [2, 'dead_letter'], [3, 'oldest'], [5, 'oldest'], [4, 'oldest']]],
    ['reject-new never drops', { needBytes: 1e9, policy: 'reject-new' }, [[6, 'unreferenced'], [1, 'reclaim']]],
    ['nothing needed, nothing taken', { needBytes: 0 }, []],
  ];
  for (const [name, over, want] of cases) t.same(ids(planReclaim(input({ segments: segs, ...over }))), want, name);
  const p = planReclaim(input({ segments: segs, needBytes: 2300 }));
  t.equal(p.freedBytes, 2300, 'the bytes of the emptied files');
  t.same(segs.map((s) => fateOf(s, 'drop-oldest', true)), ['reclaim', 'dead_letter', 'oldest', 'oldest', 'oldest', 'unreferenced']);
});

t.test('planReclaim: downsample takes files with raw batches before any file of summaries; the active file is rolled when taken', async (t) => {
  const segs = [
    seg(1, { pending: 5, rawPending: 0, keep: 0 }), // summaries only
    seg(2, { pending: 5, rawPending: 5, keep: 0 }),
    seg(3, { pending: 5, rawPending: 2, keep: 0 }),
  ];
  t.same(ids(planReclaim(input({ segments: segs, policy: 'downsample', needBytes: 2000 }))), [[2, 'downsample'], [3, 'downsample']], 'raw batches first, oldest first');
  t.same(ids(planReclaim(input({ segments: segs, policy: 'downsample', needBytes: 3000 }))), [[2, 'downsample'], [3, 'downsample'], [1, 'oldest']],
    'then the oldest file of summaries is dropped, not summarised again');
  const act = planReclaim(input({ segments: segs, needBytes: 3000, active: 3 }));
  t.ok(act.rollActive, 'the active file is taken: roll it first');
  t.notOk(planReclaim(input({ segments: segs, needBytes: 1000, active: 3 })).rollActive);
  t.same(ids(planReclaim(input({ segments: [seg(7, { batches: 0 })], needBytes: 1000, active: 7 }))), [], 'the active file with nothing in it yet is left alone');
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

t.test('store failures: each error classified, what to rescue, the wait before the next attempt', async (t) => {
  const err = (code: string, cause?: unknown) => Object.assign(new Error(code), { code }, cause ? { cause } : {});
  const cases: [string, unknown, StoreFailureKind, RescueScope][] = [
    ['SQLite full', err('SQLITE_FULL'), 'full', 'none'],
    ['a segment append on a full disk', err('ENOSPC'), 'full', 'none'],
    ['a quota', err('EDQUOT'), 'full', 'none'],
    ['a write after ext4 went read-only', err('SQLITE_IOERR_WRITE'), 'io', 'since-checkpoint'],
    ['EIO', err('EIO'), 'io', 'since-checkpoint'],
    ['SQLite read-only', err('SQLITE_READONLY_DBMOVED'), 'readonly', 'since-checkpoint'],
    ['EROFS on a segment', err('EROFS'), 'readonly', 'since-checkpoint'],
    ['corrupt', err('SQLITE_CORRUPT'), 'corrupt', 'none'],
    ['not a database', err('SQLITE_NOTADB'), 'corrupt', 'none'],
    ['the directory gone', err('ENOENT'), 'vanished', 'all-readable'],
    ['cannot open', err('SQLITE_CANTOPEN'), 'vanished', 'all-readable'],
    ['another writer', err('SQLITE_BUSY'), 'busy', 'none'],
    ['wrapped in STORE_UNAVAILABLE', err('STORE_UNAVAILABLE', err('SQLITE_IOERR_SHORT_READ')), 'io', 'since-checkpoint'],
    ['anything else', new TypeError('bug'), 'other', 'since-checkpoint'],
  ];
  for (const [name, e, kind, scope] of cases) {
    const f = classifyStoreError(e);
    t.equal(f.kind, kind, `${name}: ${kind}`);
    t.equal(rescueScope(f.kind), scope, `${name}: rescue ${scope}`);
  }
  t.equal(classifyStoreError(err('SQLITE_IOERR_WRITE')).errno, 'SQLITE_IOERR_WRITE', 'the code kept as errno');
  const lo = () => 0;
  const hi = () => 1;
  t.same([0, 1, 2, 3].map((n) => probeDelayMs(n, lo)), [400, 800, 1600, 3200], 'doubling, -20 %');
  t.same([0, 1, 2, 3].map((n) => probeDelayMs(n, hi)), [600, 1200, 2400, 4800], '+20 %');
  t.equal(probeDelayMs(30, () => 0.5), 30_000, 'capped at 30 s');
});
