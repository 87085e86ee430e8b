/**
 * Ingest (agent/ingest.ts): per-device batching by size and age (injected clock, no timers),
 * group commit in one transaction per tick, idempotency keys, the bounded queue, and cursors
 * committed only together with the readings they cover.
 */
import t from 'tap';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { batchKeyTime, Ingest, newBatchKey } from '../agent/ingest.js';
import type { BatchConfig, StoreConfig } from '../agent/config/types.js';
import type { Reading } from '../agent/reading.js';
import { generateKey, loadKeyring, PayloadCodec, type EncodedPayload } from '../store/codec.js';
import { openDb, type DB } from '../store/db.js';
import { Store } from '../store/store.js';
import { Outbox, type CommitResult } from '../store/outbox.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const STORE: StoreConfig = {
  encryption: 'aes-256-gcm',
  keyFile: '/unused',
  keyId: 'k1',
  commitIntervalMs: 200,
  synchronous: 'NORMAL',
  busyTimeoutMs: 5000,
  maxQueuedReadings: 200000,
  retentionDays: 7,
  purgeCron: '17 3 * * *',
  maxBytes: 0,
  minFreeRatio: 0.05,
  fullPolicy: 'drop-oldest',
  downsampleMs: 60000,
  spoolDir: '/unused',
  spoolMaxBytes: 64 * 1024 * 1024,
};

/** A logger that records what it is told. */
function recordingLogger() {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const rec = (level: string) => (obj: Record<string, unknown>, msg?: string) => void lines.push({ level, obj, msg });
  const log = { warn: rec('warn'), error: rec('error'), info: rec('info'), debug: rec('debug'), trace: rec('trace'), fatal: rec('fatal') };
  return { log: log as unknown as Logger, lines };
}

let counter = 0;
function readings(device: string, n: number): Reading[] {
  return Array.from({ length: n }, () => {
    counter++;
    return { device, point: 'counter', ts: 1_700_000_000_000 + counter, value: counter, unit: '', quality: 'good' as const };
  });
}

interface Rig {
  db: DB;
  st: Store;
  dataDir: string;
  ingest: Ingest;
  outbox: Outbox;
  codec: PayloadCodec;
  clock: { now: number };
  commits: { batches: number; devices: string[] }[];
  results: CommitResult[];
  lines: ReturnType<typeof recordingLogger>['lines'];
}

function rig(t: TapTest, batch: BatchConfig, store: Partial<StoreConfig> = {}): Rig {
  const dir = tempDir(t);
  const dataDir = join(dir, 'data');
  const db = openDb(dataDir, { create: true });
  const st = Store.on(db);
  t.teardown(() => st.close());
  const keyFile = join(dir, 'keys', 'holdfast.key');
  generateKey(keyFile, 'k1');
  const codec = new PayloadCodec(loadKeyring(keyFile, 'k1'), 'k1');
  const outbox = st.outbox(['a', 'b']);
  const commits: Rig['commits'] = [];
  const real = outbox.commit.bind(outbox);
  outbox.commit = (batches, cursors) => {
    commits.push({ batches: batches.length, devices: batches.map((b) => b.device) });
    return real(batches, cursors);
  };
  const clock = { now: 0 };
  const { log, lines } = recordingLogger();
  const results: CommitResult[] = [];
  // Floor 0: the fixed 2023 stamps of these readings count as good (docs/clocks.md).
  const ingest = new Ingest(outbox, codec, batch, { ...STORE, ...store }, log, (r) => results.push(r), {
    mono: () => clock.now, wall: () => clock.now, boot: 'test-boot', floor: 0,
  });
  return { db, st, dataDir, ingest, outbox, codec, clock, commits, results, lines };
}

interface PayloadRow extends EncodedPayload {
  batch_key: string;
  device: string;
  reading_count: number;
  first_ts: number;
  last_ts: number;
  created_at: number;
}

const payloadRows = (st: Store) =>
  (st.db.prepare('SELECT batch_key, device, reading_count, first_ts, last_ts, created_at FROM payloads ORDER BY id').all() as PayloadRow[]).map((r) => ({
    ...r,
    ...st.payload(r.batch_key)!, // the body from its segment
  }));

const decode = (r: Rig, row: PayloadRow) => JSON.parse(r.codec.decodeText(row, row.batch_key)) as Reading[];

t.test('per-device batches sealed at maxReadings, committed by tick()', async (t) => {
  const r = rig(t, { maxReadings: 10, maxAgeMs: 1000 });
  const d1a = readings('d1', 5);
  const d2a = readings('d2', 5);
  const d1b = readings('d1', 5);
  t.ok(r.ingest.offer('d1', d1a, 5));
  t.ok(r.ingest.offer('d2', d2a, 5));
  t.equal(r.ingest.stats.queued, 10);
  t.equal(payloadRows(r.st).length, 0, 'nothing stored before tick');
  t.ok(r.ingest.offer('d1', d1b, 10), 'd1 reaches maxReadings and is sealed');
  t.equal(payloadRows(r.st).length, 0, 'sealing alone does not write');

  const res = r.ingest.tick();
  t.same(res, { committed: 1, readings: 10, duplicates: 0, collisions: [] });
  const rows = payloadRows(r.st);
  t.equal(rows.length, 1);
  t.match(rows[0], { device: 'd1', reading_count: 10, codec: 'zlib+aes256gcm', keyId: 'k1' });
  t.same(decode(r, rows[0]), [...d1a, ...d1b], 'exactly d1 readings, in order');
  t.equal(rows[0].first_ts, d1a[0].ts);
  t.equal(rows[0].last_ts, d1b[4].ts);
  t.equal(r.db.prepare('SELECT count(*) FROM recovery_tasks WHERE idempotency_key = ?').pluck().get(rows[0].batch_key), 2, 'a task per uplink');
  t.equal(r.outbox.cursor('d1'), 10);
  t.equal(r.outbox.cursor('d2'), 0, 'd2 is still open');
  t.equal(r.ingest.stats.queued, 5);
  t.match(r.ingest.stats, { committedBatches: 1, committedReadings: 10 });
  t.same(r.results, [res], 'onCommit told');

  t.equal(r.ingest.tick(), null, 'nothing sealed: no commit');
  t.equal(r.commits.length, 1, 'no empty transaction');
});

t.test('batches are sealed at maxAgeMs (injected clock)', async (t) => {
  const r = rig(t, { maxReadings: 100, maxAgeMs: 1000 });
  r.clock.now = 10_000;
  const d1 = readings('d1', 3);
  r.ingest.offer('d1', d1, 3);
  r.clock.now = 10_400;
  const d2 = readings('d2', 2);
  r.ingest.offer('d2', d2, 2);
  r.clock.now = 10_999;
  t.equal(r.ingest.tick(), null, 'd1 is 999 ms old: not yet');
  r.clock.now = 11_000;
  t.match(r.ingest.tick(), { committed: 1, readings: 3 }, 'd1 sealed at exactly maxAgeMs');
  t.same(payloadRows(r.st).map((x) => x.device), ['d1']);
  t.equal(payloadRows(r.st)[0].created_at, 11_000);
  r.ingest.offer('d2', readings('d2', 1), 3); // age counts from the batch's first reading
  r.clock.now = 11_400;
  t.match(r.ingest.tick(), { committed: 1, readings: 3 });
  t.same(payloadRows(r.st).map((x) => x.device), ['d1', 'd2']);
  t.equal(r.outbox.cursor('d2'), 3);
});

t.test('one transaction per tick for every sealed batch', async (t) => {
  const r = rig(t, { maxReadings: 4, maxAgeMs: 1000 });
  for (let i = 0; i < 3; i++) {
    r.ingest.offer('d1', readings('d1', 4), (i + 1) * 4);
    r.ingest.offer('d2', readings('d2', 4), (i + 1) * 4);
  }
  r.ingest.offer('d3', readings('d3', 1), 1);
  r.clock.now = 5000;
  const res = r.ingest.tick();
  t.equal(r.commits.length, 1, 'one commit call');
  t.equal(r.commits[0].batches, 7, '3 + 3 full batches and one aged one');
  t.same(new Set(r.commits[0].devices), new Set(['d1', 'd2', 'd3']));
  t.match(res, { committed: 7, readings: 25 });
  t.same([r.outbox.cursor('d1'), r.outbox.cursor('d2'), r.outbox.cursor('d3')], [12, 12, 1], 'the highest cursor per device');
  const keys = payloadRows(r.st).map((x) => x.batch_key);
  t.equal(new Set(keys).size, 7, 'a distinct key per batch');
  for (const k of keys) t.match(k, /^[A-Za-z0-9_-]{24}$/);

  // a failed commit keeps everything for the next tick
  const r2 = rig(t, { maxReadings: 2, maxAgeMs: 1000 });
  const real = r2.outbox.commit;
  let fail = true;
  r2.outbox.commit = (b, c) => {
    if (fail) {
      fail = false;
      throw new Error('disk I/O error');
    }
    return real(b, c);
  };
  r2.ingest.offer('d1', readings('d1', 2), 2);
  t.throws(() => r2.ingest.tick(), /disk I\/O/);
  t.equal(r2.outbox.cursor('d1'), 0);
  t.equal(r2.ingest.stats.queued, 2, 'still queued');
  t.match(r2.ingest.tick(), { committed: 1, readings: 2 }, 'committed at the next tick');
  t.equal(r2.outbox.cursor('d1'), 2);
  t.equal(r2.ingest.stats.queued, 0);
});

t.test('idempotency keys: 24 URL-safe chars, 42-bit ms timestamp + 102 random bits, unique, sorted by time', async (t) => {
  const t0 = 1_700_000_000_000;
  const keys = Array.from({ length: 1000 }, (_, i) => newBatchKey(t0 + Math.floor(i / 10)));
  t.equal(new Set(keys).size, 1000, '1000 keys distinct (ten per millisecond)');
  for (const [i, k] of keys.entries()) {
    if (!/^[A-Za-z0-9_-]{24}$/.test(k)) t.fail(`bad key ${k}`);
    if (batchKeyTime(k) !== t0 + Math.floor(i / 10)) t.fail(`key ${k} does not carry its time`);
  }
  t.pass('all keys well-formed, each carries its millisecond');
  // Sorted as text (SQLite's BINARY collation) by time: keys of a later millisecond sort after.
  for (let i = 10; i < keys.length; i++) {
    if (!(Buffer.compare(Buffer.from(keys[i - 10]), Buffer.from(keys[i])) < 0)) t.fail(`${keys[i - 10]} !< ${keys[i]}`);
  }
  const spread = Array.from({ length: 2000 }, (_, i) => newBatchKey(t0 + i * 7_919_000));
  t.same([...spread].sort(), spread, 'over 6 months of milliseconds too: every character position stays in order');
  t.ok(newBatchKey(t0) < newBatchKey(t0 + 1), 'the next millisecond sorts after');
  // High entropy: the random part (from the 8th character on) varies everywhere and uses the alphabet.
  const same = Array.from({ length: 1000 }, () => newBatchKey(t0));
  t.equal(new Set(same).size, 1000, '1000 keys of one millisecond distinct');
  t.equal(new Set(same.map((k) => k.slice(0, 7))).size, 1, 'they share the 7 timestamp characters');
  for (let i = 7; i < 24; i++) t.ok(new Set(same.map((k) => k[i])).size > 40, `position ${i} varies`);
  const chars = new Set(same.map((k) => k.slice(7)).join(''));
  t.ok(chars.size >= 60, `alphabet used: ${chars.size} of 64`);
  t.notMatch(newBatchKey(), /^-/, 'never starts like a command-line option (today)');
});

t.test('offer() refuses beyond store.maxQueuedReadings and counts the refusal', async (t) => {
  const r = rig(t, { maxReadings: 1000, maxAgeMs: 1000 }, { maxQueuedReadings: 100 });
  t.ok(r.ingest.offer('d1', readings('d1', 60), 60));
  t.ok(r.ingest.offer('d2', readings('d2', 40), 40), 'exactly full is accepted');
  t.equal(r.ingest.stats.queued, 100);
  t.notOk(r.ingest.offer('d1', readings('d1', 1), 61), 'one more is refused');
  t.equal(r.ingest.stats.refusedReadings, 1);
  t.notOk(r.ingest.offer('d3', readings('d3', 10), 10), 'another device too');
  t.equal(r.ingest.stats.refusedReadings, 11);
  t.equal(r.ingest.stats.queued, 100, 'refused readings are not queued');
  const warn = r.lines.filter((l) => l.level === 'warn' && l.obj.code === 'INGEST_QUEUE_FULL');
  t.ok(warn.length >= 1, 'INGEST_QUEUE_FULL logged');

  r.ingest.tick(true);
  t.equal(r.ingest.stats.queued, 0);
  const rows = payloadRows(r.st);
  t.same(rows.map((x) => [x.device, x.reading_count]), [
    ['d1', 60],
    ['d2', 40],
  ]);
  t.equal(r.outbox.cursor('d1'), 60, 'the refused offer did not move the cursor');
  t.equal(r.outbox.cursor('d3'), 0);
  t.ok(r.ingest.offer('d1', readings('d1', 100), 160), 'room again after the commit');
  t.notOk(r.ingest.offer('d1', readings('d1', 1), 161));
  t.equal(r.ingest.stats.refusedReadings, 12);
});

t.test('a cursor is committed only with the readings it covers', async (t) => {
  const r = rig(t, { maxReadings: 5, maxAgeMs: 1000 });
  r.ingest.offer('d1', readings('d1', 5), 5); // sealed (full)
  r.ingest.offer('d1', readings('d1', 3), 8); // open
  r.ingest.tick();
  t.equal(r.outbox.cursor('d1'), 5, 'the open batch cursor (8) is not committed');
  // what a restart sees: a fresh outbox on the same database
  t.equal(r.st.outbox(['a']).cursor('d1'), 5);

  // overflow: the open batch is sealed with its own cursor before the new readings join
  r.ingest.offer('d1', readings('d1', 3), 11); // 3 + 3 > 5: the [6..8] batch is sealed with cursor 8
  r.ingest.tick();
  t.equal(r.outbox.cursor('d1'), 8, 'cursor 8 with readings up to 8, not 11');
  const rows = payloadRows(r.st);
  t.same(rows.map((x) => x.reading_count), [5, 3]);

  // an offer without a cursor keeps the batch's last one
  r.ingest.offer('d1', readings('d1', 1));
  r.ingest.stop();
  t.equal(r.outbox.cursor('d1'), 11, 'stop() commits the rest with its cursor');
  t.equal(r.ingest.stats.queued, 0);
  t.equal(r.ingest.stats.committedReadings, 12);
});

t.test('start()/stop() use the commit interval; stop commits what is queued', async (t) => {
  const r = rig(t, { maxReadings: 1000, maxAgeMs: 60_000 }, { commitIntervalMs: 10_000 });
  r.ingest.start();
  r.ingest.start(); // idempotent
  r.ingest.offer('d1', readings('d1', 7), 7);
  r.ingest.stop();
  t.equal(r.outbox.cursor('d1'), 7);
  t.equal(payloadRows(r.st).length, 1);
  r.ingest.stop(); // nothing left: no error, no empty commit
  t.equal(r.commits.length, 1);
});
