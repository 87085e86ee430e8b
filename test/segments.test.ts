/**
 * Payload bodies in segment files (store/segments.ts, store/segment-gc.ts), on real files: append,
 * read and roll; rows from before segments; recovery at open after a simulated crash (orphan
 * tail cut, orphan file deleted) and after a simulated power cut (a row pointing past the end or
 * at a missing file reads as PAYLOAD_UNREADABLE, nothing throws, new bodies never land in a range
 * a row names); garbage collection (only closed segments no row refers to); durability order
 * (fdatasync before the commit with FULL, before the checkpoint with NORMAL; SQLite never
 * checkpoints by itself).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { newBatchKey } from '../agent/ingest.js';
import { PayloadCodec } from '../store/codec.js';
import { DB_FILE, openDb, type DB } from '../store/db.js';
import { MIGRATIONS } from '../store/migrations.js';
import type { Outbox, SealedBatch } from '../store/outbox.js';
import { collectSegments, GC_GRACE_MS, segmentUsage } from '../store/segment-gc.js';
import { listSegments, segmentDir, segmentName } from '../store/segments.js';
import { Store } from '../store/store.js';
import { FILE_HEADER_BYTES, fileFormat, scanRecords } from '../store/segment-record.js';
import { cli } from './helpers/agent.js';
import { CLEAN_ENV, tempDir, validRaw, writeJson } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const codec = new PayloadCodec(null, null);
const json = (i: number, n = 40) => JSON.stringify(Array.from({ length: n }, (_, k) => ({ device: 'd1', point: 'p', ts: i * 1000 + k, value: i * 7919 + k * 31, unit: '', quality: 'good' })));

function batch(i: number, createdAt = 1000): SealedBatch {
  const key = newBatchKey();
  const j = json(i);
  return { key, hash: createHash('sha256').update(j).digest(), device: 'd1', readingCount: 40, firstTs: 1, lastTs: 2, createdAt, payload: codec.encode(j, key) };
}

interface Opened {
  db: DB;
  store: Store;
  dataDir: string;
  seg: string;
  outbox: Outbox;
  keys: string[];
}

/** Opens (or reopens) a store as the agent does: the writer (with recovery) first. */
function open(t: TapTest, dataDir: string, rollBytes?: number, synchronous: 'NORMAL' | 'FULL' = 'NORMAL'): Opened {
  const db = openDb(dataDir, { create: true, synchronous });
  const store = Store.on(db, { rollBytes });
  t.teardown(() => store.close());
  return { db, store, dataDir, seg: segmentDir(dataDir), outbox: store.outbox(['a']), keys: [] };
}

function commit(s: Opened, from: number, n: number, createdAt = 1000): void {
  const bs = Array.from({ length: n }, (_, k) => batch(from + k, createdAt));
  s.outbox.commit(bs);
  s.keys.push(...bs.map((b) => b.key));
}

const rows = (db: DB) =>
  db.prepare('SELECT batch_key AS key, length(body) AS inRow, body_segment AS s, body_offset AS o, body_length AS n FROM payloads ORDER BY id').all() as {
    key: string; inRow: number; s: number | null; o: number; n: number;
  }[];

/** Every row's readings, decoded through the lane's own read path (TaskQueue), or the error. */
function decodeAll(st: Store): { key: string; text: string | null; error: string | null }[] {
  return st.tasks('a').fresh(0, Number.MAX_SAFE_INTEGER, 1_000_000).map((r) => {
    try {
      return { key: r.key, text: codec.decodeText(r.payload, r.key), error: null };
    } catch (e) {
      return { key: r.key, text: null, error: `${(e as { code?: string }).code}: ${(e as Error).message}` };
    }
  });
}

const fileSize = (s: Opened, id: number) => statSync(join(s.seg, segmentName(id))).size;

t.test('bodies are appended to a segment; the rows say where; reads give the exact bytes', async (t) => {
  const s = open(t, join(tempDir(t), 'data'));
  commit(s, 0, 5);
  commit(s, 5, 5);
  const rs = rows(s.db);
  t.equal(rs.length, 10);
  t.ok(rs.every((r) => r.inRow === 0 && r.s === 1), 'no body in any row; all in segment 1');
  // Format 1: a file header, then one record a batch (header, then the body the row points at).
  const file = readFileSync(join(s.seg, segmentName(1)));
  t.equal(fileFormat(file).format, 1, 'the file starts with the format-1 header');
  const scan = scanRecords(file);
  t.equal(scan.badBytes, 0, 'nothing but good records');
  let at = FILE_HEADER_BYTES;
  for (const [i, r] of rs.entries()) {
    const rec = scan.records[i];
    t.equal(rec.offset, at, 'records end to end, in commit order');
    t.match(rec, { type: 'batch', bodyOffset: r.o, bodyLength: r.n, meta: { key: r.key, device: 'd1', readingCount: 40 } }, `record ${i} is row ${i}'s`);
    at = r.o + r.n;
  }
  t.equal(fileSize(s, 1), at, 'the file is exactly the records');
  t.equal(statSync(s.seg).mode & 0o777, 0o700, 'segments dir 0700');
  t.equal(statSync(join(s.seg, segmentName(1))).mode & 0o777, 0o600, 'segment file 0600');
  const got = decodeAll(s.store);
  t.same(got.map((g) => g.text), Array.from({ length: 10 }, (_, i) => json(i)), 'every batch decodes to its readings');
  t.equal(codec.decodeText(s.store.payload(s.keys[3])!, s.keys[3]), json(3));
  t.same(s.store.admin.status(0).segments, { files: 1, bytes: at }, 'status counts segment files and bytes');
});

t.test('the active segment rolls at its size bound; no body spans two files', async (t) => {
  const s = open(t, join(tempDir(t), 'data'), 1000);
  for (let i = 0; i < 60; i += 6) commit(s, i, 6);
  const rs = rows(s.db);
  const ids = listSegments(s.seg);
  t.ok(ids.length >= 10, `rolled into ${ids.length} files`);
  t.same(ids, Array.from({ length: ids.length }, (_, i) => i + 1), 'numbered 1, 2, 3, ...');
  for (const id of ids) {
    const mine = rs.filter((r) => r.s === id);
    t.ok(mine.length > 0, `segment ${id} holds bodies`);
    const end = Math.max(...mine.map((r) => r.o + r.n));
    t.equal(fileSize(s, id), end, `segment ${id} ends with its last body`);
    t.ok(end <= 1000 || mine.length === 1, `segment ${id} within the bound`);
  }
  t.same(decodeAll(s.store).map((g) => g.text), Array.from({ length: 60 }, (_, i) => json(i)));
});

t.test('rows from before segments keep their body in the row and stay readable', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const v2 = new Database(join(dataDir, DB_FILE));
  v2.pragma('journal_mode = WAL');
  v2.exec(MIGRATIONS[0]);
  v2.exec(MIGRATIONS[1]);
  v2.pragma('user_version = 2');
  const old = batch(100);
  const id = v2
    .prepare(`INSERT INTO payloads (batch_key, payload_hash, device, reading_count, first_ts, last_ts, created_at, codec, body) VALUES (?, ?, 'd1', 40, 1, 2, 1000, 'zlib', ?)`)
    .run(old.key, old.hash, old.payload.body).lastInsertRowid;
  v2.prepare(`INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, created_at, reading_count) VALUES (?, 'a', ?, 1000, 40)`).run(id, old.key);
  v2.close();

  const s = open(t, dataDir);
  t.equal(s.db.pragma('user_version', { simple: true }), MIGRATIONS.length, 'migrated');
  commit(s, 0, 3);
  const rs = rows(s.db);
  t.match(rs[0], { key: old.key, s: null }, 'the old row has no segment');
  t.ok(rs[0].inRow > 0, 'and its body in the row');
  t.ok(rs.slice(1).every((r) => r.s === 1 && r.inRow === 0), 'new rows use the segment');
  t.same(decodeAll(s.store).map((g) => g.text), [json(100), json(0), json(1), json(2)], 'old and new decode side by side');
});

t.test('recovery after a crash between write() and commit: the orphan tail is cut, an orphan file deleted', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const s = open(t, dataDir, 6000);
  commit(s, 0, 4);
  const committedEnd = fileSize(s, 1);
  // The crash: bodies appended, the transaction never ran; a roll had started a new file too.
  s.store.writer!.append([batch(50).payload.body, batch(51).payload.body]);
  t.ok(fileSize(s, 1) > committedEnd, 'orphan bytes after the last committed body');
  const orphan = openSync(join(s.seg, segmentName(2)), 'wx', 0o600);
  writeSync(orphan, Buffer.alloc(300, 1));
  closeSync(orphan);
  s.db.close(); // not s.store.close(): a crash does not sync or close anything

  const again = open(t, dataDir, 6000);
  t.equal(fileSize(again, 1), committedEnd, 'truncated to the end of the last range a row names');
  t.notOk(existsSync(join(again.seg, segmentName(2))), 'the orphan file is deleted');
  commit(again, 4, 2);
  const rs = rows(again.db);
  t.equal(rs[4].s, 1, 'appending goes on in the same segment');
  t.equal(scanRecords(readFileSync(join(again.seg, segmentName(1)))).records[4].offset, committedEnd, 'its record starts right after the last committed body');
  t.same(decodeAll(again.store).map((g) => g.text), [0, 1, 2, 3, 4, 5].map((i) => json(i)), 'nothing lost, nothing garbled');
});

t.test('after a power cut: a row past the end of its segment, or with its file gone, reads as PAYLOAD_UNREADABLE', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const s = open(t, dataDir, 1000);
  commit(s, 0, 8);
  const before = rows(s.db);
  const last = before[before.length - 1];
  t.ok(last.s! >= 3, `several segments (${last.s})`);
  s.store.close();
  // The tail of the last segment never reached the disk; the first segment file is gone.
  truncateSync(join(s.seg, segmentName(last.s!)), last.o + 10);
  unlinkSync(join(s.seg, segmentName(1)));

  const again = open(t, dataDir, 1000);
  t.equal(fileSize(again, last.s!), last.o + 10, 'a short segment is not truncated further (nor extended)');
  const got = decodeAll(again.store);
  t.equal(got.length, 8, 'every row still read: no exception');
  for (const [i, r] of before.entries()) {
    if (r.s === 1) t.match(got[i].error, /^PAYLOAD_UNREADABLE: .*segment 0000000001\.seg cannot be opened \(ENOENT\)/, `row ${i}: file gone`);
    else if (i === before.length - 1) t.match(got[i].error, new RegExp(`^PAYLOAD_UNREADABLE: .*ends before the body: 10 of ${r.n} bytes`), `row ${i}: past the end`);
    else t.equal(got[i].text, json(i), `row ${i}: intact`);
  }
  // New bodies go to a new segment, never into the range the short one's rows name.
  commit(again, 8, 1);
  const now = rows(again.db);
  t.ok(now[8].s! > last.s!, `the next body opens segment ${now[8].s}`);
  t.equal(decodeAll(again.store)[8].text, json(8));
  t.match(decodeAll(again.store)[7].error, /PAYLOAD_UNREADABLE/, 'the short row stays unreadable (not overwritten)');
});

t.test('garbage collection unlinks only closed segments no row refers to', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const s = open(t, dataDir, 1000);
  for (let i = 0; i < 8; i++) commit(s, i * 2, 2, i < 4 ? 1000 : 2000);
  const ids = listSegments(s.seg);
  const w = s.store.writer!;
  t.equal(w.active, ids[ids.length - 1], 'the newest file is the active one');
  const bySeg = new Map<number, string[]>();
  for (const r of rows(s.db)) bySeg.set(r.s!, [...(bySeg.get(r.s!) ?? []), r.key]);
  // Deliver every batch of segments 1 and 3, and one batch (not all) of segment 2.
  const deliver = (keys: string[]) => keys.forEach((k) => s.db.prepare(`UPDATE recovery_tasks SET status = 'delivered' WHERE idempotency_key = ?`).run(k));
  deliver(bySeg.get(1)!);
  deliver(bySeg.get(3)!);
  deliver(bySeg.get(2)!.slice(0, 1));
  s.store.tasks('a').fresh(0, Number.MAX_SAFE_INTEGER, 1000); // the reader now holds files open
  const freed = fileSize(s, 1) + fileSize(s, 3);
  const p = s.store.admin.purge(0, 10_000);
  t.equal(p.payloads, bySeg.get(1)!.length + bySeg.get(3)!.length + 1);
  const gc = s.store.collectSegments();
  t.same(gc.ids, [1, 3], 'segments 1 and 3 deleted');
  t.equal(gc.bytes, freed, 'their bytes counted');
  t.same(listSegments(s.seg), ids.filter((id) => id !== 1 && id !== 3), 'the others stay');
  t.same(decodeAll(s.store).filter((g) => g.error !== null), [], 'every remaining row still reads');
  t.same(s.store.collectSegments().ids, [], 'a second pass finds nothing');

  // Everything delivered and purged: the active segment stays (the agent appends to it).
  s.db.prepare(`UPDATE recovery_tasks SET status = 'delivered'`).run();
  s.store.admin.purge(0, 10_000);
  t.equal(s.db.prepare('SELECT count(*) FROM payloads').pluck().get(), 0);
  s.store.collectSegments();
  t.same(listSegments(s.seg), [w.active], 'only the active segment is left');
  commit(s, 100, 2);
  t.same(decodeAll(s.store).map((g) => g.text), [json(100), json(101)], 'and appending goes on');
});

t.test('the CLI next to a live agent: never the newest file, never one written in the last GC_GRACE_MS', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const s = open(t, dataDir, 1000);
  for (let i = 0; i < 4; i++) commit(s, i * 2, 2);
  s.db.prepare(`UPDATE recovery_tasks SET status = 'delivered'`).run();
  const cli = Store.attach(dataDir); // a second connection, no writer: what `holdfast purge` opens
  t.teardown(() => cli.close());
  cli.admin.purge(0, 10_000);
  const ids = listSegments(s.seg);
  t.same(cli.collectSegments().ids, [], 'every file was written just now: none taken');
  const old = (Date.now() - GC_GRACE_MS - 1000) / 1000;
  for (const id of ids) utimesSync(join(s.seg, segmentName(id)), old, old);
  const gc = collectSegments(cli.db, s.seg, null, GC_GRACE_MS);
  t.same(gc.ids, ids.slice(0, -1), 'old and unreferenced: taken, except the newest');
  t.same(listSegments(s.seg), ids.slice(-1));
  t.same(segmentUsage(dataDir).files, 1);
});

t.test('durability order: FULL syncs before each commit; NORMAL syncs before the checkpoint, which only the agent runs', async (t) => {
  for (const level of ['FULL', 'NORMAL'] as const) {
    const s = open(t, join(tempDir(t), `data-${level}`), undefined, level);
    const w = s.store.writer!;
    const log: string[] = [];
    const sync = w.sync.bind(w);
    w.sync = () => {
      const [wal] = s.db.pragma('wal_checkpoint(NOOP)') as { log: number; checkpointed: number }[];
      log.push(`sync (wal ${wal.log}/${wal.checkpointed})`);
      sync();
    };
    commit(s, 0, 2);
    commit(s, 2, 2);
    if (level === 'FULL') t.equal(log.length, 2, 'FULL: one fdatasync per commit, before it');
    else t.equal(log.length, 0, 'NORMAL: no fdatasync per commit');
    // Grow the WAL past the checkpoint size: the agent checkpoints, segment synced first.
    log.length = 0;
    let i = 4;
    while (w.checkpoints === 0 && i < 20_000) commit(s, i++, 2);
    t.equal(w.checkpoints, 1, `${level}: checkpointed once the WAL held ${w.checkpointFrames} frames`);
    const last = log[log.length - 1];
    t.match(last, /^sync \(wal (\d+)\/0\)$/, `${level}: the segment was synced before anything was checkpointed`);
    const [after] = s.db.pragma('wal_checkpoint(NOOP)') as { log: number; checkpointed: number }[];
    t.ok(after.checkpointed > 0, 'then the checkpoint ran');
  }
  // SQLite itself never checkpoints: a connection without a writer lets its WAL grow.
  const plain = openDb(join(tempDir(t), 'plain'), { create: true });
  t.teardown(() => plain.close());
  plain.exec('CREATE TABLE x (v BLOB)');
  for (let i = 0; i < 300; i++) plain.prepare('INSERT INTO x VALUES (randomblob(8000))').run();
  const [wal] = plain.pragma('wal_checkpoint(NOOP)') as { log: number; checkpointed: number }[];
  t.ok(wal.log > 1000 && wal.checkpointed === 0, `no autocheckpoint (${wal.log} frames in the WAL, none copied back)`);
});

t.test('holdfast purge on a stopped agent reclaims the segments it leaves unreferenced', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const s = open(t, dataDir, 1000);
  for (let i = 0; i < 4; i++) commit(s, i * 2, 2);
  s.db.prepare(`UPDATE recovery_tasks SET status = 'delivered'`).run();
  const ids = listSegments(s.seg);
  s.store.close();
  const old = (Date.now() - GC_GRACE_MS - 1000) / 1000;
  for (const id of ids) utimesSync(join(s.seg, segmentName(id)), old, old);
  const dir = tempDir(t);
  const config = writeJson(join(dir, 'holdfast.json'), validRaw(dir, { dataDir }));
  const r = cli(['purge', '--config', config, '--older-than', '0s'], CLEAN_ENV);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`purged 8 task\\(s\\), 8 payload\\(s\\), 0 event\\(s\\); ${ids.length - 1} segment file\\(s\\) deleted`));
  t.same(listSegments(s.seg), ids.slice(-1), 'all but the newest (an agent may be appending to it)');
  // The next start takes the last one: no row refers to it.
  const again = open(t, dataDir, 1000);
  t.same(listSegments(again.seg), [], 'recovery deletes it');
  commit(again, 50, 1);
  t.equal(rows(again.db)[0].s, ids[ids.length - 1] + 1, 'and numbering goes on past it');
  t.equal(decodeAll(again.store)[0].text, json(50));
});
