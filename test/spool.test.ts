/**
 * The spool (store/spool.ts), its import (store/spool-import.ts) and the rescue of a failing
 * store (store/rescue.ts), on real files: records round-trip, the bound refuses, files roll; an
 * import stores each batch once however often it runs, applies acknowledgements and never moves
 * a cursor back; a store whose directory was removed still gives up every pending batch whose
 * body is held open, and counts the rest as lost.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { newBatchKey } from '../agent/ingest.js';
import { generateKey, loadKeyring, PayloadCodec } from '../store/codec.js';
import { openDb, type DB } from '../store/db.js';
import type { Outbox, SealedBatch } from '../store/outbox.js';
import { rescue } from '../store/rescue.js';
import { importSpoolFile } from '../store/spool-import.js';
import { ensureSpoolDir, readSpoolFile, spoolFiles, SpoolWriter } from '../store/spool.js';
import { Store } from '../store/store.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function codecIn(dir: string): PayloadCodec {
  const keyFile = join(dir, 'key');
  generateKey(keyFile, 'k1');
  return new PayloadCodec(loadKeyring(keyFile, 'k1'), 'k1');
}

function mk(codec: PayloadCodec, counter: number, device = 'd'): SealedBatch {
  const key = newBatchKey();
  const json = JSON.stringify([{ device, point: 'counter', ts: counter, value: counter, unit: '', quality: 'good' }]);
  return { key, hash: createHash('sha256').update(json).digest(), device, readingCount: 1, firstTs: counter, lastTs: counter, createdAt: counter, payload: codec.encode(json, key), cursor: counter };
}

function store(t: TapTest, dataDir: string): { db: DB; st: Store; outbox: Outbox } {
  const db = openDb(dataDir, { create: true });
  const st = Store.on(db, { rollBytes: 4096 });
  t.teardown(() => {
    try {
      st.close();
    } catch {
      // the rescue test removed the directory under it: its segment cannot be synced
    }
  });
  return { db, st, outbox: st.outbox(['a', 'b']) };
}

const values = (st: Store, codec: PayloadCodec, uplink = 'b') =>
  st.tasks(uplink).fresh(0, 1e12, 1e6).map((r) => JSON.parse(codec.decodeText(r.payload, r.key))[0].value as number).sort((x, y) => x - y);

t.test('spool files: records round-trip (encrypted bodies, cursors, acknowledgements), 0600 in a 0700 folder, rolled, bounded', async (t) => {
  const dir = tempDir(t);
  const codec = codecIn(dir);
  const spoolDir = join(dir, 'spool');
  const s = new SpoolWriter(spoolDir, 64 * 1024, 1, Date.now, 8 * 1024);
  const bs = Array.from({ length: 10 }, (_, i) => mk(codec, i + 1));
  t.ok(s.appendBatches(bs.slice(0, 5), new Map([['d', 5]])));
  t.ok(s.appendAck(bs[0].key, 'a', 10, 20));
  t.ok(s.appendBatches(bs.slice(5), new Map([['d', 10]])));
  s.close();
  const files = spoolFiles(spoolDir);
  t.equal(statSync(spoolDir).mode & 0o777, 0o700);
  t.ok(files.every((f) => (statSync(f).mode & 0o777) === 0o600));
  const recs = files.flatMap((f) => readSpoolFile(f).records);
  t.same(recs.filter((r) => r.type === 'batch').map((r) => r.type === 'batch' && r.meta.key), bs.map((b) => b.key), 'every batch, in order');
  const first = recs[0];
  t.ok(first.type === 'batch' && first.meta.codec === 'zlib+aes256gcm' && codec.decodeText({ ...bs[0].payload, body: Buffer.from(first.body) }, bs[0].key).includes('"value":1'), 'the body is the encrypted payload');
  t.same(recs.filter((r) => r.type === 'cursor').map((r) => r.type === 'cursor' && r.meta.cursor), [5, 10]);
  t.same(recs.filter((r) => r.type === 'ack').map((r) => r.type === 'ack' && r.meta), [{ key: bs[0].key, uplink: 'a', requestAt: 10, ackAt: 20 }]);
  t.equal(s.bytes, files.reduce((n, f) => n + statSync(f).size, 0), 'bytes counted');

  const small = new SpoolWriter(join(dir, 'small'), 2048, 0);
  let taken = 0;
  while (small.appendBatches([mk(codec, 99)], new Map())) taken++;
  t.ok(taken > 0 && small.bytes <= 2048, `bounded: ${taken} batches, then refused`);

  const link = join(dir, 'link');
  symlinkSync(spoolDir, link);
  t.throws(() => ensureSpoolDir(link), { code: 'DATA_DIR_INSECURE' }, 'a symlink is refused');
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o755);
  t.throws(() => ensureSpoolDir(open), { code: 'DATA_DIR_INSECURE' }, 'a folder others can read is refused');
});

t.test('import: each batch once however often the file is imported; acknowledgements applied; cursors never moved back; collisions refused', async (t) => {
  const dir = tempDir(t);
  const codec = codecIn(dir);
  const { db, st, outbox } = store(t, join(dir, 'data'));
  outbox.commit([mk(codec, 1)], new Map([['d', 50]]));
  const spool = new SpoolWriter(join(dir, 'spool'), 1 << 20, 1);
  const bs = [2, 3, 4, 5].map((i) => mk(codec, i));
  spool.appendBatches(bs, new Map([['d', 5]]));
  spool.appendAck(bs[1].key, 'a', 100, 130);
  const clash = { ...mk(codec, 6), key: bs[0].key };
  spool.appendBatches([clash], new Map());
  spool.close();
  const [file] = spoolFiles(join(dir, 'spool'));
  const w = st.writer!;
  const r1 = importSpoolFile(db, w, file, ['a', 'b'], 1000);
  t.match(r1, { batches: 4, readings: 4, duplicates: 0, collisions: 1, acks: 1, cursors: 1, badBytes: 0 });
  t.same(values(st, codec), [1, 2, 3, 4, 5], 'the spooled readings are in the store, bodies in the segment');
  t.equal(db.prepare(`SELECT status FROM recovery_tasks WHERE idempotency_key = ? AND uplink = 'a'`).pluck().get(bs[1].key), 'delivered', 'acknowledged while spooled: delivered');
  t.equal(db.prepare(`SELECT cursor FROM source_state WHERE device = 'd'`).pluck().get(), 50, 'a spooled cursor below the stored one does not move it back');
  // A crash after the commit, before the file was deleted: the next start imports it again.
  const r2 = importSpoolFile(db, w, file, ['a', 'b'], 2000);
  t.match(r2, { batches: 0, duplicates: 4, acks: 0 });
  t.equal(db.prepare('SELECT count(*) FROM payloads').pluck().get(), 5, 'nothing stored twice');
  t.equal(db.prepare(`SELECT count(*) FROM recovery_events WHERE kind = 'collision'`).pluck().get(), 2, 'the collision recorded (each import)');
  spool.remove(file);
  t.same(readdirSync(join(dir, 'spool')), []);
});

t.test('rescue from a store whose directory was removed: pending batches held open are copied with their acknowledgements; the rest counted lost', async (t) => {
  const dir = tempDir(t);
  const codec = codecIn(dir);
  const dataDir = join(dir, 'data');
  const { db, st, outbox } = store(t, dataDir);
  // Small segments: the early batches are in closed files, the last ones in the active file.
  for (let i = 1; i <= 60; i += 5) outbox.commit([0, 1, 2, 3, 4].map((k) => mk(codec, i + k)), new Map([['d', i + 4]]));
  db.prepare(`UPDATE recovery_tasks SET status = 'delivered', request_timestamp = 1, acknowledgment_timestamp = 2 WHERE uplink = 'a' AND payload_id % 2 = 0`).run();
  db.prepare(`UPDATE recovery_tasks SET status = 'delivered' WHERE payload_id <= 10`).run();
  const w = st.writer!;
  const active = w.active;
  const inActive = db.prepare('SELECT count(*) FROM payloads WHERE body_segment = ?').pluck().get(active) as number;
  t.ok(active > 2 && inActive > 0 && inActive < 50, `segment ${active} active with ${inActive} batches`);
  rmSync(dataDir, { recursive: true, force: true });

  const spool = new SpoolWriter(join(dir, 'spool'), 1 << 20, 1);
  const r = rescue(db, w, spool, 0, [{ id: db.prepare(`SELECT id FROM recovery_tasks WHERE uplink = 'b' AND payload_id = 59`).pluck().get() as number, requestAt: 5, ackAt: 9 }]);
  spool.close();
  t.equal(r.batches, inActive, 'every pending batch of the file held open');
  t.ok(r.acks >= 1, 'acknowledgements rescued too');
  t.equal(r.cursors, 1);
  const lostB = r.lost.find((l) => l.uplink === 'b');
  t.equal(lostB?.batches, 50 - inActive, 'the pending batches in removed files are counted lost (uplink b)');
  t.match(r.firstError, /cannot be opened \(ENOENT\)/);

  const again = store(t, join(dir, 'data2'));
  for (const f of spoolFiles(join(dir, 'spool'))) importSpoolFile(again.db, again.st.writer!, f, ['a', 'b'], 5000);
  const got = again.db.prepare('SELECT first_ts FROM payloads ORDER BY first_ts').pluck().all();
  t.same(got, Array.from({ length: inActive }, (_, i) => 61 - inActive + i), 'the rescued batches are in the new store');
  t.same(values(again.st, codec), (got as number[]).filter((v) => v !== 59), 'their readings decode (59 is delivered for b already)');
  t.equal(again.db.prepare(`SELECT status FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id WHERE t.uplink = 'b' AND p.first_ts = 59`).pluck().get(), 'delivered', 'the unwritten acknowledgement applied');
  t.equal(again.db.prepare(`SELECT cursor FROM source_state`).pluck().get(), 60, 'the cursor came along');
});

t.test('import repairs a stored batch whose body did not reach the disk (its row did): the spooled copy takes its place', async (t) => {
  const dir = tempDir(t);
  const codec = codecIn(dir);
  const { db, st, outbox } = store(t, join(dir, 'data'));
  const bs = [1, 2, 3].map((i) => mk(codec, i));
  outbox.commit(bs);
  const spool = new SpoolWriter(join(dir, 'spool'), 1 << 20, 1);
  spool.appendBatches(bs, new Map()); // as a rescue would have copied them
  spool.close();
  // The disk lost the tail of the segment: the last two bodies.
  const w = st.writer!;
  const last = db.prepare('SELECT body_offset FROM payloads WHERE batch_key = ?').pluck().get(bs[1].key) as number;
  const { truncateSync } = await import('node:fs');
  truncateSync(join(w.dir, `${String(w.active).padStart(10, '0')}.seg`), last + 5);
  w.rollNow(); // later appends go to a new file, as after a reopen
  const r = importSpoolFile(db, w, spoolFiles(join(dir, 'spool'))[0], ['a', 'b'], 1000);
  t.match(r, { batches: 0, duplicates: 1, repaired: 2 });
  t.same(values(st, codec), [1, 2, 3], 'every batch reads again');
  t.equal(db.prepare('SELECT count(*) FROM payloads').pluck().get(), 3, 'still one row a batch');
});
