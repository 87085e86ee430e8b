/**
 * Never delete what you cannot account for (store/open-store.ts, store/salvage.ts), on real
 * files: a database emptied, deleted, with a garbage header, truncated or with a rotten page,
 * while segment files are present, is quarantined (moved, not deleted), and a new one is built
 * from every row and record that can be read: no segment file is deleted, cursors come back,
 * delivered batches stay delivered where a row says so, and the report counts what was
 * recovered and what was lost.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { newBatchKey } from '../agent/ingest.js';
import { PayloadCodec } from '../store/codec.js';
import { DB_FILE, openDb, type DB } from '../store/db.js';
import { inspectDb, QUARANTINE_DIR } from '../store/open-store.js';
import type { SealedBatch } from '../store/outbox.js';
import { listSegments, segmentDir, segmentName } from '../store/segments.js';
import { Store } from '../store/store.js';
import { rebaseStored } from '../store/clock-rebase.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
const codec = new PayloadCodec(null, null);
const PAGE = 4096;

function mk(device: string, counter: number): SealedBatch {
  const key = newBatchKey();
  const json = JSON.stringify([{ device, point: 'counter', ts: counter, value: counter, unit: '', quality: 'good' }]);
  return { key, hash: createHash('sha256').update(json).digest(), device, readingCount: 1, firstTs: counter, lastTs: counter, createdAt: 1000 + counter, payload: codec.encode(json, key), cursor: counter };
}

/** A store with `n` committed batches of two devices, uplinks a and b; the first `delivered` delivered to a. Closed. */
function build(t: TapTest, n: number, delivered: number, rollBytes?: number): { dataDir: string; keys: string[]; segFiles: Map<number, number> } {
  const dataDir = join(tempDir(t), 'data');
  const db = openDb(dataDir, { create: true });
  const store = Store.on(db, { rollBytes });
  const outbox = store.outbox(['a', 'b']);
  const keys: string[] = [];
  for (let i = 1; i <= n; i += 5) {
    const bs = Array.from({ length: Math.min(5, n - i + 1) }, (_, k) => mk(k % 2 ? 'dev-b' : 'dev-a', i + k));
    const cursors = new Map<string, number>();
    for (const b of bs) cursors.set(b.device, b.cursor!);
    outbox.commit(bs, cursors);
    keys.push(...bs.map((b) => b.key));
  }
  db.prepare(`UPDATE recovery_tasks SET status = 'delivered', retry_count = 1, request_timestamp = 5, acknowledgment_timestamp = 7, latency_ms = 2
              WHERE uplink = 'a' AND payload_id <= ?`).run(delivered);
  store.close();
  return { dataDir, keys, segFiles: segSizes(dataDir) };
}

function segSizes(dataDir: string): Map<number, number> {
  const dir = segmentDir(dataDir);
  return new Map(listSegments(dir).map((id) => [id, statSync(join(dir, segmentName(id))).size]));
}

/** Opens as the agent does (salvage first, then the writer's recovery); returns the store, its db and the report. */
function reopen(t: TapTest, dataDir: string) {
  const store = Store.open(dataDir, { uplinks: ['a', 'b'], now: 1_700_000_000_000 });
  t.teardown(() => store.close());
  return { store, db: store.db, salvage: store.salvage };
}

function statuses(db: DB): Record<string, number> {
  const rows = db.prepare("SELECT uplink || ':' || status AS k, count(*) AS n FROM recovery_tasks GROUP BY 1").all() as { k: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.k, r.n]));
}

/** Every pending task of uplink b decodes to its counter: the readings themselves came back. */
function counters(store: Store): number[] {
  return store.tasks('b').fresh(0, 1e12, 1e6).map((r) => JSON.parse(codec.decodeText(r.payload, r.key))[0].value as number).sort((x, y) => x - y);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test('a healthy database is used as it is; a fresh directory starts fresh', async (t) => {
  const { dataDir } = build(t, 10, 3);
  t.same(inspectDb(dataDir), { state: 'ok' });
  const r = reopen(t, dataDir);
  t.equal(r.salvage, null, 'no salvage');
  t.notOk(existsSync(join(dataDir, QUARANTINE_DIR)), 'nothing quarantined');
  const fresh = join(tempDir(t), 'data');
  t.same(inspectDb(fresh + '-none'), { state: 'missing' });
  const f = reopen(t, fresh);
  t.equal(f.salvage, null);
});

t.test('an emptied database (: > holdfast.db) with segments present: quarantined, every batch re-indexed, no segment deleted', async (t) => {
  const { dataDir, keys, segFiles } = build(t, 60, 20, 2000);
  t.ok(segFiles.size >= 3, `several segment files (${segFiles.size})`);
  truncateSync(join(dataDir, DB_FILE), 0);
  t.same(inspectDb(dataDir), { state: 'empty' });
  const { db, store, salvage: s } = reopen(t, dataDir);
  t.ok(s, 'salvage ran');
  t.match(s, { reason: 'empty', batches: { fromDatabase: 0, fromSegments: 60, total: 60 }, readings: 60, tasks: { kept: 0, unknownState: 120 }, cursors: 2 });
  t.match(s!.lost, { databaseReadErrors: 0, bodiesMissing: 0, badRecords: 0, badBytes: 0, segmentFilesQuarantined: 0 });
  t.same(segSizes(dataDir), segFiles, 'every segment file still there, untouched');
  const q = join(s!.quarantine);
  t.ok(q.startsWith(join(dataDir, QUARANTINE_DIR)), 'quarantined under the data directory');
  t.equal(statSync(join(q, DB_FILE)).size, 0, 'the emptied file itself is kept in quarantine');
  t.same(JSON.parse(readFileSync(join(q, 'salvage.json'), 'utf8')), s, 'the report is written next to it');
  t.same((db.prepare('SELECT batch_key FROM payloads ORDER BY id').pluck().all() as string[]), keys, 'every key, in order');
  t.same(statuses(db), { 'a:pending': 60, 'b:pending': 60 }, 'state unknown: pending for every uplink (re-sent with the same key)');
  t.same(counters(store), range(60), 'every reading readable again');
  t.same(db.prepare('SELECT device, cursor FROM source_state ORDER BY device').all(), [{ device: 'dev-a', cursor: 60 }, { device: 'dev-b', cursor: 59 }], 'cursors from the records');
  const ev = db.prepare(`SELECT code, detail FROM recovery_events WHERE kind = 'salvage'`).get() as { code: string; detail: string };
  t.equal(ev.code, 'STORE_SALVAGED');
  t.same(JSON.parse(ev.detail), s, 'the report is an event');
  t.match(Object.fromEntries((db.prepare('SELECT name, value FROM counters').all() as { name: string; value: number }[]).map((c) => [c.name, c.value])), { salvaged_batches: 60, salvaged_readings: 60 });
  // Appending goes on after the last salvaged record; the next open finds a healthy store.
  store.outbox(['a', 'b']).commit([mk('dev-a', 61)]);
  t.same(counters(store), range(61));
});

t.test('a deleted database: the same, nothing to move but the segments are never taken', async (t) => {
  const { dataDir, segFiles } = build(t, 12, 12);
  unlinkSync(join(dataDir, DB_FILE));
  const { store, salvage: s } = reopen(t, dataDir);
  t.match(s, { reason: 'missing', batches: { total: 12 } });
  t.same(segSizes(dataDir), segFiles);
  t.same(counters(store), range(12));
});

t.test('a garbage header (SQLITE_NOTADB): quarantined with its WAL; salvaged from the segments', async (t) => {
  const { dataDir, segFiles } = build(t, 30, 10);
  const fd = openSync(join(dataDir, DB_FILE), 'r+');
  writeSync(fd, Buffer.alloc(100, 0x5a), 0, 100, 0);
  closeSync(fd);
  const st = inspectDb(dataDir);
  t.match(st, { state: 'unreadable', error: /SQLITE_NOTADB/ });
  const { store, salvage: s } = reopen(t, dataDir);
  t.match(s, { reason: 'unreadable', error: /NOTADB|not a database/, batches: { fromDatabase: 0, fromSegments: 30, total: 30 } });
  t.ok(s!.lost.databaseReadErrors >= 1, 'the failed reads counted');
  t.same(segSizes(dataDir), segFiles);
  t.equal(readFileSync(join(s!.quarantine, DB_FILE)).subarray(0, 100).toString('latin1'), 'Z'.repeat(100), 'the bad file kept as it was');
  t.same(counters(store), range(30));
});

t.test('a truncated database: quarantined, salvaged', async (t) => {
  const { dataDir, segFiles } = build(t, 400, 100);
  const file = join(dataDir, DB_FILE);
  truncateSync(file, Math.floor(statSync(file).size / PAGE / 2) * PAGE);
  t.match(inspectDb(dataDir), { state: 'unreadable' });
  const { store, salvage: s } = reopen(t, dataDir);
  t.equal(s!.batches.total, 400, 'every batch back');
  t.equal(s!.tasks.kept + s!.tasks.unknownState, 800, 'a task per batch per uplink');
  t.same(segSizes(dataDir), segFiles);
  t.same(counters(store), range(400));
});

/** The first leaf page of a table: its root is an interior page (0x05) once it spans pages; the first cell's child pointer. */
function firstLeaf(file: string, table: string): number {
  const db = openDb(join(file, '..'), {});
  const root = db.prepare(`SELECT rootpage FROM sqlite_master WHERE name = ?`).pluck().get(table) as number;
  db.close();
  const buf = readFileSync(file);
  const at = (root - 1) * PAGE + (root === 1 ? 100 : 0);
  if (buf[at] !== 0x05) throw new Error(`root page ${root} of ${table} is not an interior page (${buf[at]})`);
  const cell = buf.readUInt16BE(at + 12);
  return buf.readUInt32BE((root - 1) * PAGE + cell);
}

t.test('a rotten page of recovery_tasks: rows around it kept with their status, its rows made pending, counted', async (t) => {
  const { dataDir, segFiles } = build(t, 400, 400);
  const file = join(dataDir, DB_FILE);
  const leaf = firstLeaf(file, 'recovery_tasks');
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(PAGE, 0xee), 0, PAGE, (leaf - 1) * PAGE);
  closeSync(fd);
  t.match(inspectDb(dataDir), { state: 'unreadable', error: /quick_check/ });
  const { db, store, salvage: s } = reopen(t, dataDir);
  t.equal(s!.batches.total, 400, 'every batch back (rows and records)');
  t.ok(s!.lost.databaseReadErrors > 0, `the rotten rows counted (${s!.lost.databaseReadErrors} failed reads)`);
  t.ok(s!.tasks.kept > 0 && s!.tasks.unknownState > 0, `tasks kept ${s!.tasks.kept}, of unknown state ${s!.tasks.unknownState}`);
  const st = statuses(db);
  t.ok((st['a:delivered'] ?? 0) > 0, 'delivered batches whose rows were readable stay delivered');
  t.equal((st['a:delivered'] ?? 0) + (st['a:pending'] ?? 0), 400, 'every batch has its task for a');
  t.equal(st['b:pending'], 400);
  t.same(segSizes(dataDir), segFiles);
  t.same(counters(store), range(400));
});

t.test('a rotten record, an old-format file no row knows: counted as lost; the file kept in quarantine, not deleted', async (t) => {
  const { dataDir } = build(t, 20, 0);
  const seg = segmentDir(dataDir);
  const id = listSegments(seg)[0];
  const f = join(seg, segmentName(id));
  const buf = readFileSync(f);
  buf[buf.length - 5] ^= 0xff; // inside the last record's body
  writeFileSync(f, buf);
  const legacy = join(seg, segmentName(id + 50));
  writeFileSync(legacy, Buffer.alloc(700, 0x33), { mode: 0o600 });
  unlinkSync(join(dataDir, DB_FILE));
  const { store, salvage: s } = reopen(t, dataDir);
  t.match(s!.lost, { badRecords: 1, segmentFilesQuarantined: 1, segmentBytesQuarantined: 700 });
  t.ok(s!.lost.badBytes > 0);
  t.equal(s!.batches.total, 19, 'the other 19 batches back');
  t.notOk(existsSync(legacy), 'the unattributable file left the segment directory');
  t.equal(readFileSync(join(s!.quarantine, segmentName(id + 50))).length, 700, 'and is kept in quarantine');
  t.same(counters(store), range(19));
});

t.test('an interrupted salvage runs again from the same quarantined copy', async (t) => {
  const { dataDir } = build(t, 25, 25);
  const file = join(dataDir, DB_FILE);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(16, 0), 0, 16, 0);
  closeSync(fd);
  // What a crash during salvage leaves: the database moved to quarantine, no salvage.json, no database.
  const q = join(dataDir, QUARANTINE_DIR, '2024-01-01T00-00-00-000Z-unreadable');
  mkdirSync(q, { recursive: true, mode: 0o700 });
  renameSync(file, join(q, DB_FILE));
  writeFileSync(join(dataDir, `${DB_FILE}.salvage`), 'half-built');
  const { salvage: s } = reopen(t, dataDir);
  t.equal(s!.quarantine, q, 'the unfinished quarantine is used again');
  t.equal(s!.batches.total, 25);
  t.ok(existsSync(join(q, 'salvage.json')), 'and now finished');
  t.same(readdirSync(join(dataDir, QUARANTINE_DIR)), ['2024-01-01T00-00-00-000Z-unreadable'], 'no second quarantine folder');
  t.notOk(existsSync(join(dataDir, `${DB_FILE}.salvage`)), 'the half-built side file is gone');
});

t.test('a batch re-based after a clock step (store/clock-rebase.ts): the salvage takes its rewrite, not the old record', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const db = openDb(dataDir, { create: true });
  const store = Store.on(db);
  const outbox = store.outbox(['a', 'b']);
  const bs = [1, 2, 3].map((c) => ({ ...mk('dev-a', c), clock: { boot: 'boot-1', unsynced: 1 } }));
  outbox.commit(bs, new Map([['dev-a', 3]]));
  const r = rebaseStored(store, codec, 'boot-1', 10, (readings) => {
    for (const x of readings) x.ts = (x.ts as number) + 1_700_000_000_000;
    return readings.length;
  });
  t.match(r, { rebased: 3, errors: [] });
  store.close();
  truncateSync(join(dataDir, DB_FILE), 0);
  const { db: db2, store: store2, salvage: s } = reopen(t, dataDir);
  t.match(s, { batches: { fromSegments: 3, total: 3 } });
  t.match(s!.lost, { badRecords: 0, badBytes: 0 }, 'the rewrites are records of their own, not stray bytes');
  const ts = store2.tasks('b').fresh(0, 1e12, 1e6).map((x) => JSON.parse(codec.decodeText(x.payload, x.key))[0].ts as number);
  t.same(ts.sort((x, y) => x - y), [1, 2, 3].map((c) => c + 1_700_000_000_000), 'the re-based stamps came back');
  t.same(db2.prepare('SELECT batch_key FROM payloads ORDER BY id').pluck().all(), bs.map((b) => b.key), 'each key once, in order');
});
