/**
 * Taking space back in the store (store/reclaim.ts), on real files: the files as the planner sees
 * them (batches, pending, dead letters, the priority still waiting), and emptying a file in one
 * transaction with every batch accounted for: delivered ones reclaimed, dead letters and pending
 * ones counted per uplink and reason, summaries written in place of downsampled batches; a file
 * holding a batch on its way upstream is reported busy.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { newBatchKey } from '../agent/ingest.js';
import { PayloadCodec } from '../store/codec.js';
import { openDb, type DB } from '../store/db.js';
import type { SealedBatch } from '../store/outbox.js';
import { emptySegment, pendingOfSegment, segmentBusy, segmentRows } from '../store/reclaim.js';
import { segmentName, type SegmentWriter } from '../store/segments.js';
import { Store } from '../store/store.js';
import { measureUsage } from '../store/usage.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
const codec = new PayloadCodec(null, null);

function mk(i: number, n = 10): SealedBatch {
  const key = newBatchKey();
  const json = JSON.stringify(Array.from({ length: n }, (_, k) => ({ device: 'd', point: 'counter', ts: i * 1000 + k * 100, value: i * n + k, unit: '', quality: 'good' })));
  return { key, hash: createHash('sha256').update(json).digest(), device: 'd', readingCount: n, firstTs: i * 1000, lastTs: i * 1000 + 900, createdAt: i, payload: codec.encode(json, key) };
}

/** Three files of 4 batches each (uplinks a and b), a fourth active. */
function store(t: TapTest): { db: DB; w: SegmentWriter; dataDir: string; files: number[] } {
  const dataDir = join(tempDir(t), 'data');
  const db = openDb(dataDir, { create: true });
  const st = Store.on(db);
  t.teardown(() => st.close());
  const w = st.writer!;
  const outbox = st.outbox(['a', 'b']);
  const files: number[] = [];
  for (let f = 0; f < 4; f++) {
    outbox.commit([0, 1, 2, 3].map((k) => mk(f * 4 + k + 1)));
    files.push(w.active);
    w.rollNow();
  }
  return { db, w, dataDir, files };
}

const deliver = (db: DB, where: string) => db.prepare(`UPDATE recovery_tasks SET status = 'delivered' WHERE ${where}`).run();

t.test('segmentRows: per file, its batches, pending, dead letters and the highest priority waiting', async (t) => {
  const { db, dataDir, files } = store(t);
  deliver(db, `payload_id <= 4`); // file 1: delivered everywhere
  db.prepare(`UPDATE recovery_tasks SET status = 'failed' WHERE uplink = 'a' AND payload_id BETWEEN 5 AND 8`).run();
  deliver(db, `uplink = 'b' AND payload_id BETWEEN 5 AND 8`); // file 2: dead letters of a
  deliver(db, `uplink = 'b' AND payload_id BETWEEN 9 AND 12`); // file 3: a still waits
  const rows = segmentRows(db, { a: 3, b: 7 }, measureUsage(dataDir).segmentFiles);
  const by = new Map(rows.map((r) => [r.id, r]));
  t.match(by.get(files[0]), { batches: 4, pending: 0, failed: 0, keep: -Infinity });
  t.match(by.get(files[1]), { batches: 4, pending: 0, failed: 4 });
  t.match(by.get(files[2]), { batches: 4, pending: 4, rawPending: 4, keep: 3 }, 'only a (priority 3) waits');
  t.match(by.get(files[3]), { batches: 4, pending: 4, keep: 7 }, 'b (priority 7) waits too');
  t.ok(rows.every((r) => r.bytes > 0), 'sizes from the files');
});

t.test('emptySegment: the rows in one transaction, every batch counted by uplink and reason, then the file', async (t) => {
  const { db, w, files } = store(t);
  deliver(db, `payload_id <= 4`);
  db.prepare(`UPDATE recovery_tasks SET status = 'failed' WHERE uplink = 'a' AND payload_id BETWEEN 5 AND 6`).run();
  deliver(db, `uplink = 'b' AND payload_id BETWEEN 5 AND 8`);
  const r1 = emptySegment(db, w, files[0], 'oldest', 1000);
  t.match(r1, { reclaimedBatches: 4, dropped: [] }, 'delivered everywhere: reclaimed, nothing dropped');
  t.ok(r1.freedBytes > 0 && !existsSync(join(w.dir, segmentName(files[0]))), 'the file is gone');
  const r2 = emptySegment(db, w, files[1], 'oldest', 2000);
  t.same(r2.dropped.sort((x, y) => x.reason.localeCompare(y.reason)), [
    { uplink: 'a', reason: 'dead_letter', batches: 2, readings: 20 },
    { uplink: 'a', reason: 'oldest', batches: 2, readings: 20 },
  ], 'dead letters and pending batches of a; b had them all');
  const counters = Object.fromEntries((db.prepare(`SELECT name, value FROM counters`).all() as { name: string; value: number }[]).map((c) => [c.name, c.value]));
  t.match(counters, { 'dropped_readings:a:dead_letter': 20, 'dropped_readings:a:oldest': 20, 'dropped_batches:a:oldest': 2, reclaimed_batches: 4 });
  const ev = db.prepare(`SELECT code, subject, detail FROM recovery_events WHERE kind = 'drop'`).all() as { code: string; subject: string; detail: string }[];
  t.equal(ev.length, 1, 'one drop event (the reclaim alone is not a loss)');
  t.match(ev[0], { code: 'STORAGE_FULL', subject: segmentName(files[1]) });
  t.equal(db.prepare('SELECT count(*) FROM payloads').pluck().get(), 8, 'the other files untouched');
});

t.test('downsampling a file: summaries written first with a task per uplink still waiting; the replaced readings counted less the summaries', async (t) => {
  const { db, w, files } = store(t);
  deliver(db, `uplink = 'a' AND payload_id IN (9, 10)`);
  const pend = pendingOfSegment(db, w, files[2]);
  t.same(pend.map((p) => p.uplinks.sort().join(',')), ['b', 'b', 'a,b', 'a,b'], 'each batch with the uplinks still waiting');
  t.ok(pend.every((p) => codec.decodeText(p.payload, p.key).startsWith('[')), 'payloads read from the file');
  const summary = mk(99, 2);
  const r = emptySegment(db, w, files[2], 'downsampled', 3000, [{ batch: { ...summary, downsampled: true }, uplinks: ['a', 'b'] }]);
  t.same(r.dropped.sort((x, y) => x.uplink.localeCompare(y.uplink)), [
    { uplink: 'a', reason: 'downsampled', batches: 2, readings: 18 },
    { uplink: 'b', reason: 'downsampled', batches: 4, readings: 38 },
  ], 'a: 20 readings stand in 2 summary readings; b: 40 in 2');
  const row = db.prepare('SELECT downsampled, body_segment FROM payloads WHERE batch_key = ?').get(summary.key) as { downsampled: number; body_segment: number };
  t.equal(row.downsampled, 1, 'the summary batch is marked');
  t.not(row.body_segment, files[2], 'and lives in another file');
  t.equal(db.prepare(`SELECT count(*) FROM recovery_tasks WHERE idempotency_key = ? AND status = 'pending'`).pluck().get(summary.key), 2);
});

t.test('segmentBusy: a pending task in flight or a batch being sent makes its file busy', async (t) => {
  const { db, files } = store(t);
  const task = db.prepare(`SELECT t.id FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id WHERE p.body_segment = ? LIMIT 1`).pluck().get(files[1]) as number;
  const key = db.prepare(`SELECT batch_key FROM payloads WHERE body_segment = ? LIMIT 1`).pluck().get(files[2]) as string;
  t.notOk(segmentBusy(db, files[1], [], []));
  t.ok(segmentBusy(db, files[1], [task], []), 'a task in flight');
  t.notOk(segmentBusy(db, files[0], [task], []), 'not another file');
  t.ok(segmentBusy(db, files[2], [], [key]), 'a batch being sent directly');
  deliver(db, `id = ${task}`);
  t.notOk(segmentBusy(db, files[1], [task], []), 'a delivered task is not on its way');
});
