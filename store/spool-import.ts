/**
 * Importing a spool file (store/spool.ts) back into the store once it works again, exactly once:
 *
 *   - one transaction a file: its batches (bodies appended to the active segment first, as a
 *     commit does), a task per enabled uplink, its acknowledgements (the task of that key and
 *     uplink is delivered), its source cursors (never moved back), counters and an event;
 *   - the caller deletes the file only after the commit. A crash between the two imports the
 *     file again: every key is then in the store with the same hash, a replay that is ignored
 *     (and an acknowledgement that finds its task delivered already changes nothing), so nothing
 *     is stored twice;
 *   - a key that is in the store with a different hash is a collision: refused, counted and
 *     recorded, as at a commit;
 *   - a key that is in the store with the same hash but whose body does not read back as the
 *     spooled one (its row reached the disk, its body did not: what a read-only remount after an
 *     I/O error leaves) gets the spooled body.
 */
import type { DB } from './db.js';
import { batchHead, type BatchMeta } from './segment-record.js';
import type { SegmentWriter } from './segments.js';
import { readSpoolFile } from './spool.js';
import { payloadInsert } from './payload-row.js';

export interface ImportResult {
  file: string;
  batches: number;
  readings: number;
  /** Batches in the store whose body was missing or different (lost with a disk's unsynced writes): given the spooled body. */
  repaired: number;
  /** Batches already in the store with the same hash (an earlier import of this file, a rescued row that survived). */
  duplicates: number;
  collisions: number;
  acks: number;
  cursors: number;
  badBytes: number;
  badRecords: number;
}

export function importSpoolFile(db: DB, w: SegmentWriter | null, file: string, uplinks: readonly string[], now: number): ImportResult {
  const scan = readSpoolFile(file);
  const out: ImportResult = { file, batches: 0, readings: 0, repaired: 0, duplicates: 0, collisions: 0, acks: 0, cursors: 0, badBytes: scan.badBytes, badRecords: scan.badBodies };
  const find = db.prepare('SELECT id, payload_hash AS hash, body, body_segment AS seg, body_offset AS off, body_length AS len FROM payloads WHERE batch_key = ?');
  const fresh = new Map<string, { meta: BatchMeta; body: Buffer; repair: number | null }>();
  const collided: string[] = [];
  for (const r of scan.records) {
    if (r.type !== 'batch') continue;
    const mine = fresh.get(r.meta.key);
    if (mine) {
      if (Buffer.compare(mine.meta.hash, r.meta.hash) !== 0) collided.push(r.meta.key);
      continue;
    }
    const have = find.get(r.meta.key) as { id: number; hash: Buffer; body: Buffer; seg: number | null; off: number; len: number } | undefined;
    if (!have) fresh.set(r.meta.key, { meta: r.meta, body: Buffer.from(r.body), repair: null });
    else if (Buffer.compare(have.hash, r.meta.hash) !== 0) collided.push(r.meta.key);
    else if (bodyIntact(w, have, r.body)) out.duplicates++;
    // The row survived but its body did not (a disk that lost its unsynced writes): the spooled copy takes its place.
    else fresh.set(r.meta.key, { meta: r.meta, body: Buffer.from(r.body), repair: have.id });
  }
  const all = [...fresh.values()];
  const mark = w?.mark();
  const refs = w && all.length > 0 ? w.append(all.map((x) => x.body), all.map((x) => batchHead(x.meta, x.body))) : null;
  const moveBody = db.prepare(`UPDATE payloads SET body = ?, body_segment = ?, body_offset = ?, body_length = ? WHERE id = ?`);
  const insP = payloadInsert(db);
  const insT = db.prepare('INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, created_at, reading_count) VALUES (?, ?, ?, ?, ?) ON CONFLICT (payload_id, uplink) DO NOTHING');
  const ack = db.prepare(
    `UPDATE recovery_tasks SET status = 'delivered', retry_count = retry_count + 1, request_timestamp = ?, acknowledgment_timestamp = ?, latency_ms = ?,
       first_attempt_at = coalesce(first_attempt_at, ?), next_attempt_at = 0
     WHERE idempotency_key = ? AND uplink = ? AND status = 'pending'`,
  );
  const cursor = db.prepare('INSERT INTO source_state (device, cursor) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET cursor = max(cursor, excluded.cursor)');
  const bump = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value');
  const event = db.prepare(
    `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail) VALUES ('store', ?, ?, ?, 'local', ?, ?, 0, ?)`,
  );
  try {
    w?.beforeCommit();
    db.transaction(() => {
      all.forEach(({ meta: m, body, repair }, i) => {
        const ref = refs?.[i];
        if (repair !== null) {
          moveBody.run(ref ? Buffer.alloc(0) : body, ref?.segment ?? null, ref?.offset ?? null, ref?.length ?? null, repair);
          out.repaired++;
          return;
        }
        const id = insP(m, body, ref ?? null).lastInsertRowid;
        for (const u of uplinks) insT.run(id, u, m.key, m.createdAt, m.readingCount);
        out.batches++;
        out.readings += m.readingCount;
      });
      for (const r of scan.records) {
        if (r.type === 'ack') out.acks += ack.run(r.meta.requestAt, r.meta.ackAt, r.meta.ackAt - r.meta.requestAt, r.meta.requestAt, r.meta.key, r.meta.uplink).changes;
        else if (r.type === 'cursor') {
          cursor.run(r.meta.device, r.meta.cursor);
          out.cursors++;
        }
      }
      for (const key of collided) event.run(key, 'collision', 'IDEMPOTENCY_KEY_COLLISION', now, now, JSON.stringify({ key, from: 'spool' }));
      out.collisions = collided.length;
      bump.run('spool_imported_batches', out.batches);
      if (out.repaired > 0) bump.run('spool_repaired_batches', out.repaired);
      bump.run('spool_imported_readings', out.readings);
      if (out.duplicates > 0) bump.run('duplicate_batches_ignored', out.duplicates);
      if (out.collisions > 0) bump.run('idempotency_key_collisions', out.collisions);
      event.run(file.slice(file.lastIndexOf('/') + 1), 'spool_import', null, now, now, JSON.stringify(out));
    }).immediate();
  } catch (e) {
    if (mark) w!.rewind(mark);
    throw e;
  }
  w?.afterCommit();
  return out;
}

/** Whether a stored batch's body reads and is the spooled one. */
function bodyIntact(w: SegmentWriter | null, have: { body: Buffer; seg: number | null; off: number; len: number }, body: Buffer): boolean {
  if (have.seg === null) return Buffer.compare(have.body, body) === 0;
  if (!w || have.len !== body.length) return false;
  try {
    return Buffer.compare(w.reader.read(have.seg, have.off, have.len), body) === 0;
  } catch {
    return false;
  }
}
