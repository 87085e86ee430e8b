/**
 * The clock machinery against a real SQLite store (segments, encryption) with a hand-driven clock
 * (agent/clock.ts manualClock): ingest flags readings stamped below the floor; ClockWatch records
 * steps (live, and while the agent was stopped in the same boot), moves pending wall times with
 * them, clamps schedules that lie beyond the cap, and re-bases stored unsynced batches once the
 * clock is good: a batch never sent is rewritten under its key, one already tried is kept, one
 * of a boot that never had a good clock stays flagged. Events keep their real length.
 */
import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import { Ingest } from '../agent/ingest.js';
import { ClockWatch } from '../agent/clock-watch.js';
import { manualClock } from '../agent/clock.js';
import type { BatchConfig, StoreConfig } from '../agent/config/types.js';
import type { Reading } from '../agent/reading.js';
import { generateKey, loadKeyring, PayloadCodec } from '../store/codec.js';
import { openDb, type DB } from '../store/db.js';
import { Store } from '../store/store.js';
import { clampSchedules, rebaseForStep } from '../store/clock.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const FLOOR = Date.UTC(2026, 10, 1);
const NOW = Date.UTC(2026, 11, 4, 12);
const YEAR = 365 * 86_400_000;
const T1970 = 3_600_000;
const BATCH: BatchConfig = { maxReadings: 100, maxAgeMs: 1000 };
const STORE = { commitIntervalMs: 100, synchronous: 'NORMAL', busyTimeoutMs: 5000, maxQueuedReadings: 100_000, retentionDays: 7, purgeCron: '17 3 * * *' } as unknown as StoreConfig;
const log = pino({ level: 'silent' });

function store(t: TapTest): { db: DB; st: Store; codec: PayloadCodec; dataDir: string } {
  const dir = tempDir(t);
  const keyFile = join(dir, 'keys', 'k');
  generateKey(keyFile, 'k1');
  const dataDir = join(dir, 'data');
  const db = openDb(dataDir, { create: true });
  const st = Store.on(db);
  t.teardown(() => st.close());
  return { db, st, codec: new PayloadCodec(loadKeyring(keyFile, 'k1'), 'k1'), dataDir };
}

const q = (db: DB, sql: string, ...p: unknown[]) => db.prepare(sql).pluck().get(...p) as number;
const rows = (db: DB, sql: string, ...p: unknown[]) => db.prepare(sql).all(...p) as Record<string, unknown>[];
const reading = (device: string, ts: number, value: number): Reading => ({ device, point: 'counter', ts, value, unit: '', quality: 'good' });

function watch(st: Store, codec: PayloadCodec, clock: ReturnType<typeof manualClock>, events = st.events(clock)) {
  return new ClockWatch({ clock, store: () => st, events, codec, log, caps: [{ uplink: 'a', capMs: 10_000 }], intervalMs: 3_600_000 });
}

t.test('ingest flags readings below the floor, and re-bases them in memory once the clock is good', async (t) => {
  const { db, st, codec } = store(t);
  const clock = manualClock(T1970, 1_000_000, FLOOR);
  const ingest = new Ingest(st.outbox(['a']), codec, BATCH, STORE, log, () => {}, clock);
  ingest.offer('d1', [reading('d1', clock.wall(), 1)]);
  ingest.tick(true);
  clock.advance(500);
  ingest.offer('d2', [reading('d2', clock.wall(), 1)]);
  clock.stepWall(NOW - clock.wall()); // NTP sets the clock before d2's batch is sealed
  clock.advance(500);
  ingest.offer('d2', [reading('d2', clock.wall(), 2)]);
  ingest.tick(true);
  const body = (device: string) => {
    const key = q(db, 'SELECT batch_key FROM payloads WHERE device = ?', device) as unknown as string;
    return JSON.parse(codec.decodeText(st.payload(key)!, key)) as Reading[];
  };
  t.same(body('d1'), [{ ...reading('d1', T1970, 1), clock: 'unsynced', mono: 1_000_000 }], 'stored flagged, with its monotonic time');
  t.same(rows(db, 'SELECT boot_id AS boot, readings, state FROM clock_batches'), [{ boot: 'test-boot', readings: 1, state: 'unsynced' }], 'the store flags the batch');
  t.same(body('d2'), [{ ...reading('d2', NOW, 1), clock: 'rebased' }, reading('d2', NOW + 500, 2)], 'sealed after the clock was set: re-based before it was stored');
  t.same([ingest.stats.unsyncedReadings, ingest.stats.rebasedReadings], [2, 1]);
});

t.test('a step moves pending wall times; delivered, failed and fresh rows stay; schedules beyond the cap are clamped', async (t) => {
  const { db, st, codec } = store(t);
  const clock = manualClock(NOW + YEAR, 1_000_000, FLOOR);
  const ingest = new Ingest(st.outbox(['a']), codec, BATCH, STORE, log, () => {}, clock);
  for (let i = 1; i <= 4; i++) {
    ingest.offer(`d${i}`, [reading(`d${i}`, clock.wall(), i)]);
  }
  ingest.tick(true);
  const at = NOW + YEAR;
  db.exec(`UPDATE recovery_tasks SET next_attempt_at = ${at + 2000}, first_attempt_at = ${at - 5000}, retry_count = 1 WHERE id = 1`);
  db.exec(`UPDATE recovery_tasks SET status = 'delivered', first_attempt_at = ${at - 5000} WHERE id = 2`);
  db.exec(`UPDATE recovery_tasks SET status = 'failed', first_attempt_at = ${at - 5000} WHERE id = 3`);
  const events = st.events(clock);
  events.open({ scope: 'uplink', subject: 'a', kind: 'outage', at });
  clock.advance(3000);
  clock.stepWall(-YEAR);
  const w = watch(st, codec, clock, events);
  w.tick(); // first look: no kept state for this boot yet, nothing to compare
  t.equal(w.steps, 0, 'a first look of a boot sees no step');
  t.equal(q(db, 'SELECT next_attempt_at FROM recovery_tasks WHERE id = 1'), NOW + 3000 + 10_000, 'a year-ahead retry is clamped to now + cap');
  t.equal(q(db, 'SELECT started_at FROM recovery_events WHERE kind = ? AND ended_at IS NULL', 'outage'), NOW + 3000, 'an open event in the future starts now');
  w.stop();

  // A live step, after the first look.
  db.exec(`UPDATE recovery_tasks SET next_attempt_at = ${clock.wall() + 2000}, first_attempt_at = ${clock.wall() - 5000} WHERE id = 1`);
  const w2 = watch(st, codec, clock, events);
  w2.tick();
  clock.advance(1000);
  clock.stepWall(YEAR);
  w2.tick();
  w2.stop();
  t.equal(w2.steps, 1, 'the step is seen');
  const ev = rows(db, `SELECT code, detail FROM recovery_events WHERE kind = 'clock_step'`);
  t.equal(ev.length, 1, 'one clock_step event');
  t.equal(ev[0].code, 'CLOCK_STEP');
  const detail = JSON.parse(ev[0].detail as string) as { stepMs: number; whileStopped: boolean; moved: { schedules: number; firstAttempts: number } };
  t.same([detail.stepMs, detail.whileStopped, detail.moved.schedules, detail.moved.firstAttempts], [YEAR, false, 1, 1], 'its size, and what moved');
  t.equal(q(db, 'SELECT next_attempt_at - ? FROM recovery_tasks WHERE id = 1', clock.wall()), 1000, 'the retry is still due 1 s after the step');
  t.equal(q(db, 'SELECT ? - first_attempt_at FROM recovery_tasks WHERE id = 1', clock.wall()), 6000, 'its age is still 6 s');
  t.equal(q(db, 'SELECT first_attempt_at FROM recovery_tasks WHERE id = 2'), at - 5000, 'a delivered task is history: untouched');
  t.equal(q(db, 'SELECT first_attempt_at FROM recovery_tasks WHERE id = 3'), at - 5000, 'so is a dead letter');
  t.equal(q(db, 'SELECT next_attempt_at FROM recovery_tasks WHERE id = 4'), 0, 'a fresh task stays fresh');
  clock.advance(2000);
  t.equal(events.close('uplink', 'a', 'outage', clock.wall()), 6000, 'the outage lasted 6 s on the monotonic clock, whatever the wall clock did');

  t.same(rebaseForStep(db, -1000), { schedules: 1, firstAttempts: 1, events: 0 }, 'rebaseForStep reports what it moved');
  t.same(clampSchedules(db, clock.wall(), [{ uplink: 'a', capMs: 60_000 }]), { schedules: 0, events: 0 }, 'nothing beyond the cap: nothing clamped');
});

t.test('a step while the agent was stopped, in the same boot, is seen at the next start', async (t) => {
  const { db, st, codec } = store(t);
  const clock = manualClock(NOW + YEAR, 1_000_000, FLOOR);
  const first = watch(st, codec, clock);
  first.tick();
  first.stop();
  clock.advance(60_000);
  clock.stepWall(-YEAR);
  const second = watch(st, codec, clock);
  second.tick();
  second.stop();
  const d = JSON.parse(q(db, `SELECT detail FROM recovery_events WHERE kind = 'clock_step'`) as unknown as string) as { stepMs: number; whileStopped: boolean };
  t.same([d.stepMs, d.whileStopped], [-YEAR, true], 'recorded as a step while stopped');
  const other = watch(st, codec, manualClock(NOW, 5, FLOOR, 'another-boot'));
  other.tick();
  other.stop();
  t.equal(q(db, `SELECT count(*) FROM recovery_events WHERE kind = 'clock_step'`), 1, 'another boot has another monotonic clock: nothing to compare');
});

t.test('once the clock is good: never-sent batches rewritten, tried ones kept, another boot unrebasable', async (t) => {
  const { db, st, codec } = store(t);
  const clock = manualClock(T1970, 2_000_000, FLOOR);
  const events = st.events(clock);
  const w = watch(st, codec, clock, events);
  w.tick();
  t.equal(q(db, `SELECT count(*) FROM recovery_events WHERE kind = 'unsynced' AND code = 'CLOCK_UNSYNCED' AND ended_at IS NULL`), 1, 'an open CLOCK_UNSYNCED event');
  const ingest = new Ingest(st.outbox(['a', 'b']), codec, BATCH, STORE, log, () => {}, clock);
  for (const d of ['fresh', 'tried', 'sent']) ingest.offer(d, [reading(d, clock.wall(), 1), reading(d, clock.wall() + 1, 2)]);
  ingest.tick(true);
  // A batch from a boot whose clock never became good (the board rebooted first).
  const lost = new Ingest(st.outbox(['a']), codec, BATCH, STORE, log, () => {}, manualClock(T1970 + 5, 10, FLOOR, 'old-boot'));
  lost.offer('old', [reading('old', T1970 + 5, 1)]);
  lost.tick(true);
  const tq = st.tasks('a');
  const id = (device: string) => q(db, `SELECT t.id FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id WHERE p.device = ? AND t.uplink = 'a'`, device);
  tq.flush([{ id: id('tried'), ok: false, requestAt: clock.wall(), code: 'ETIMEDOUT', message: 'm', faultClass: 'network', retryClass: 'soft', status: 'pending', nextAttemptAt: clock.wall() + 1000 }]);
  tq.flush([{ id: id('sent'), ok: true, requestAt: clock.wall(), ackAt: clock.wall() + 5 }]);
  const keyOf = (device: string) => q(db, 'SELECT batch_key FROM payloads WHERE device = ?', device) as unknown as string;
  const before = st.payload(keyOf('tried'))!;

  clock.advance(4000);
  clock.stepWall(NOW - clock.wall());
  w.tick();
  w.stop();
  const state = Object.fromEntries(rows(db, 'SELECT p.device, c.state FROM clock_batches c JOIN payloads p ON p.id = c.payload_id').map((r) => [r.device, r.state]));
  t.same(state, { fresh: 'rebased', tried: 'kept', sent: 'kept', old: 'unrebasable' }, 'each batch by what can be done with it');
  const fresh = JSON.parse(codec.decodeText(st.payload(keyOf('fresh'))!, keyOf('fresh'))) as Reading[];
  t.same(fresh.map((r) => [r.ts, r.clock, r.mono]), [[NOW - 4000, 'rebased', undefined], [NOW - 3999, 'rebased', undefined]], 're-based to when they were really taken');
  t.same([q(db, 'SELECT first_ts FROM payloads WHERE device = ?', 'fresh'), q(db, 'SELECT last_ts FROM payloads WHERE device = ?', 'fresh')], [NOW - 4000, NOW - 3999], 'the row says so too');
  t.same(st.payload(keyOf('tried'))!.body, before.body, 'a tried batch is the same bytes (an upstream may hold it)');
  const old = JSON.parse(codec.decodeText(st.payload(keyOf('old'))!, keyOf('old'))) as Reading[];
  t.equal(old[0].clock, 'unsynced', 'the other boot\'s reading keeps its flag');
  const unsynced = rows(db, `SELECT ended_at AS endedAt, duration_ms AS ms FROM recovery_events WHERE kind = 'unsynced'`);
  t.same(unsynced, [{ endedAt: NOW, ms: 4000 }], 'the unsynchronised spell closed with its real length');
  const rebase = JSON.parse(q(db, `SELECT detail FROM recovery_events WHERE kind = 'clock_rebase'`) as unknown as string) as { rebased: number; kept: number; unrebasable: number };
  t.same([rebase.rebased, rebase.kept, rebase.unrebasable], [1, 2, 1], 'a clock_rebase event counts them');
  t.equal(q(db, `SELECT count(*) FROM recovery_events WHERE kind = 'clock_step'`), 1, 'and the step is recorded');

  db.exec(`DELETE FROM recovery_tasks WHERE payload_id = (SELECT id FROM payloads WHERE device = 'sent'); DELETE FROM payloads WHERE device = 'sent'`);
  t.equal(q(db, `SELECT count(*) FROM clock_batches`), 3, 'a purged batch takes its flag row with it');
});

t.test('a clock that falls below the floor after being good: the step is recorded once, the good offset kept', async (t) => {
  const { db, st, codec } = store(t);
  const clock = manualClock(NOW, 1_000_000, FLOOR);
  const w = watch(st, codec, clock);
  w.tick();
  clock.advance(1000);
  clock.stepWall(T1970 - clock.wall()); // an RTC reset while running
  w.tick();
  w.stop();
  const again = watch(st, codec, clock);
  again.tick(); // a restart in the same boot: the offset it finds is the one last seen
  again.stop();
  t.equal(q(db, `SELECT count(*) FROM recovery_events WHERE kind = 'clock_step'`), 1, 'one step, not a second one at the restart');
  t.same(rows(db, 'SELECT offset_ms AS seen, synced, good_offset_ms AS good FROM clock_boots'), [{ seen: T1970 - 1_001_000, synced: 0, good: NOW - 1_000_000 }], 'the last seen offset, and the last good one');
});
