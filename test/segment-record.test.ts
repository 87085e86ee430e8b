/**
 * Self-describing records (store/segment-record.ts): a batch record carries everything its row
 * holds; a scan finds every good record and counts the bad bytes (a torn tail, a flipped bit, a
 * stretch of garbage) without following a garbage length; files written before format 1 keep
 * reading through their rows, and appending never resumes in one; a failed commit's bytes are
 * taken back (rewind).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { newBatchKey } from '../agent/ingest.js';
import { loadKeyring, PayloadCodec, generateKey } from '../store/codec.js';
import { openDb } from '../store/db.js';
import { Store } from '../store/store.js';
import { type SealedBatch } from '../store/outbox.js';
import { listSegments, segmentDir, segmentName } from '../store/segments.js';
import {
  ackRecord, batchHead, crc32, cursorRecord, FILE_HEADER_BYTES, fileFormat, fileHeader, scanRecords, type BatchMeta,
} from '../store/segment-record.js';
import { tempDir } from './helpers/config-fixtures.js';

t.test('crc32 is the IEEE CRC-32 (as zlib and cksum -a crc32b compute it)', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the standard check value');
  t.equal(crc32(Buffer.alloc(0)), 0);
  t.equal(crc32(Buffer.from('56789'), crc32(Buffer.from('1234'))), 0xcbf43926, 'continues over pieces');
});

function meta(over: Partial<BatchMeta> = {}): BatchMeta {
  return {
    key: newBatchKey(), device: 'meter-7', readingCount: 500, firstTs: 1_700_000_000_000, lastTs: 1_700_000_004_999, createdAt: 1_700_000_005_010,
    hash: createHash('sha256').update('x').digest(), codec: 'zlib+aes256gcm', keyId: 'k1', iv: Buffer.alloc(12, 7), tag: Buffer.alloc(16, 9),
    cursor: 4242, downsampled: false, ...over,
  };
}

t.test('records round-trip through a scan: batch (every field of its row), cursor, acknowledgement', async (t) => {
  const m1 = meta();
  const m2 = meta({ codec: 'zlib', keyId: null, iv: null, tag: null, cursor: null, downsampled: true, device: 'ünïcode-dev' });
  const b1 = Buffer.from('body one');
  const b2 = Buffer.alloc(3000, 5);
  const file = Buffer.concat([
    fileHeader('spool'), batchHead(m1, b1), b1, cursorRecord({ device: 'meter-7', cursor: 99 }), batchHead(m2, b2), b2,
    ackRecord({ key: m1.key, uplink: 'broker', requestAt: 10, ackAt: 25 }),
  ]);
  t.same(fileFormat(file), { format: 1, kind: 'spool' });
  const s = scanRecords(file);
  t.equal(s.badBytes, 0);
  t.same(s.records.map((r) => r.type), ['batch', 'cursor', 'batch', 'ack']);
  const [r1, c, r2, a] = s.records;
  t.match(r1, { type: 'batch', meta: m1 }, 'batch meta intact');
  t.same(r1.type === 'batch' && r1.body, b1, 'body at bodyOffset');
  t.match(r2, { type: 'batch', meta: m2, bodyLength: 3000 }, 'an unencrypted, downsampled batch without cursor');
  t.same(c, { type: 'cursor', offset: r1.end, end: c.end, meta: { device: 'meter-7', cursor: 99 } });
  t.match(a, { type: 'ack', meta: { key: m1.key, uplink: 'broker', requestAt: 10, ackAt: 25 } });
  t.equal(a.end, file.length, 'the last record ends the file');
  t.same(fileFormat(Buffer.from('plain deflate bytes')), { format: 0, kind: null }, 'no header: a file from before format 1');
});

t.test('a scan skips and counts bad bytes: torn tail, flipped body bit, garbage, a header with a garbage length', async (t) => {
  const recs = Array.from({ length: 6 }, (_, i) => {
    const body = Buffer.alloc(200 + i, i + 1);
    return Buffer.concat([batchHead(meta({ readingCount: i }), body), body]);
  });
  const good = Buffer.concat([fileHeader('segment'), ...recs]);
  const ends: number[] = [];
  recs.reduce((at, r) => (ends.push(at + r.length), at + r.length), FILE_HEADER_BYTES);

  const torn = good.subarray(0, ends[4] + 30);
  let s = scanRecords(torn);
  t.equal(s.records.length, 5, 'torn tail: the five whole records');
  t.equal(s.badBytes, 30, 'and the 30 torn bytes counted');

  const flipped = Buffer.from(good);
  flipped[ends[1] - 10] ^= 0x40; // a bit in record 1's body
  s = scanRecords(flipped);
  t.same(s.records.map((r) => (r.type === 'batch' ? r.meta.readingCount : -1)), [0, 2, 3, 4, 5], 'the rotten record alone is left out');
  t.equal(s.badBodies, 1);
  t.equal(s.badBytes, recs[1].length);

  const garbage = Buffer.concat([good.subarray(0, ends[2]), Buffer.from('HFR1 but not a record at all'), Buffer.alloc(500, 0xab), good.subarray(ends[2])]);
  s = scanRecords(garbage);
  t.equal(s.records.length, 6, 'resynchronised on the next good header');
  t.equal(s.badBytes, 528);
  t.same(s.badRuns, [ends[2]], 'one bad run, where it starts');

  const liar = Buffer.from(good);
  liar.writeUInt32LE(0x7fffffff, ends[0] + 8); // record 1's body length, header CRC now wrong
  s = scanRecords(liar);
  t.equal(s.records.length, 5, 'a header whose CRC fails is not followed');
});

t.test('appending never resumes in a file from before format 1; its rows stay readable', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const codec = new PayloadCodec(null, null);
  const db = openDb(dataDir, { create: true });
  const store = Store.on(db);
  const batch = (i: number): SealedBatch => {
    const key = newBatchKey();
    const json = JSON.stringify([{ device: 'd', point: 'counter', ts: i, value: i, unit: '', quality: 'good' }]);
    return { key, hash: createHash('sha256').update(json).digest(), device: 'd', readingCount: 1, firstTs: i, lastTs: i, createdAt: i, payload: codec.encode(json, key) };
  };
  // A segment as an older build wrote it: bare bodies end to end, no file header.
  const old = [batch(1), batch(2)];
  const seg = segmentDir(dataDir);
  const fd = openSync(join(seg, segmentName(1)), 'w', 0o600);
  let at = 0;
  for (const b of old) {
    writeSync(fd, b.payload.body);
    db.prepare(`INSERT INTO payloads (batch_key, payload_hash, device, reading_count, first_ts, last_ts, created_at, codec, body, body_segment, body_offset, body_length)
                VALUES (?, ?, 'd', 1, 1, 1, 1, 'zlib', x'', 1, ?, ?)`).run(b.key, b.hash, at, b.payload.body.length);
    at += b.payload.body.length;
  }
  closeSync(fd);
  db.prepare(`INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, created_at, reading_count) SELECT id, 'a', batch_key, 1, 1 FROM payloads`).run();
  store.close();

  const again = Store.on(openDb(dataDir, { create: true }));
  t.teardown(() => again.close());
  const w = again.writer!;
  t.equal(w.active, 2, 'a new segment starts instead of appending to the old-format one');
  again.outbox(['a']).commit([batch(3)]);
  t.same(listSegments(seg), [1, 2]);
  t.equal(fileFormat(readFileSync(join(seg, segmentName(2)))).format, 1);
  t.equal(readFileSync(join(seg, segmentName(1))).length, at, 'the old file is untouched');
  const texts = again.tasks('a').fresh(0, 1e9, 10).map((r) => JSON.parse(codec.decodeText(r.payload, r.key))[0].value);
  t.same(texts, [1, 2, 3], 'old rows and the new one all read');
});

t.test('a commit whose transaction fails takes its appended bytes back: the next commit writes over them', async (t) => {
  const dir = tempDir(t);
  const keyFile = join(dir, 'k');
  generateKey(keyFile, 'k1');
  const codec = new PayloadCodec(loadKeyring(keyFile, 'k1'), 'k1');
  const db = openDb(join(dir, 'data'), { create: true });
  const store = Store.on(db);
  t.teardown(() => store.close());
  const w = store.writer!;
  const outbox = store.outbox(['a']);
  const mk = (i: number): SealedBatch => {
    const key = newBatchKey();
    const json = `[${i}]`;
    return { key, hash: createHash('sha256').update(json).digest(), device: 'd', readingCount: 1, firstTs: i, lastTs: i, createdAt: i, payload: codec.encode(json, key), cursor: i };
  };
  outbox.commit([mk(1)]);
  const size = w.activeBytes;
  // A failing transaction: the trigger makes the payload insert abort after the bodies were appended.
  db.exec(`CREATE TEMP TRIGGER refuse BEFORE INSERT ON payloads BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
  t.throws(() => outbox.commit([mk(2), mk(3)]), /disk says no/);
  t.equal(w.activeBytes, size, 'the writer is back where it was');
  t.equal(readFileSync(join(w.dir, segmentName(w.active))).length, size, 'and the file cut back');
  db.exec('DROP TRIGGER refuse');
  outbox.commit([mk(4)]);
  const scan = scanRecords(readFileSync(join(w.dir, segmentName(w.active))));
  t.same(scan.records.map((r) => (r.type === 'batch' ? r.meta.cursor : null)), [1, 4], 'only committed batches in the file, cursors recorded');
  t.equal(scan.badBytes, 0);
});
