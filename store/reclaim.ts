/**
 * Taking space back, the store's side of the storage policy (agent/policy/storage.ts chooses,
 * agent/storage/space.ts drives): the files as the planner sees them, and emptying one file in
 * one transaction, every batch in it accounted for:
 *
 *   - delivered everywhere: removed (reclaimed; not a loss);
 *   - a task dead-lettered or still pending: dropped, its readings counted per uplink and reason
 *     (`dropped_readings:<uplink>:<reason>` and `dropped_batches:...` in `counters`, a `drop`
 *     event with the file and the numbers);
 *   - downsampled: the pending batches replaced by summary batches (written first, with a task
 *     for each uplink that was still waiting), the replaced readings counted as dropped with
 *     reason `downsampled` less the summary readings that stand for them.
 *
 * The rows go in the transaction, the file after it commits (a crash between leaves a file no row
 * refers to, which the next start deletes).
 */
import { statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { DB } from './db.js';
import type { EncodedPayload } from './codec.js';
import { metaOf, recordHeadOf, type SealedBatch } from './outbox.js';
import { payloadInsert } from './payload-row.js';
import { segmentName, type SegmentWriter } from './segments.js';
import { rawToTask } from './tasks.js';

/** One segment file as the storage policy plans over it (agent/policy/storage.ts): its batches summed up in SQL. */
export interface SegmentRow {
  id: number;
  bytes: number;
  /** Batches whose body is in it. */
  batches: number;
  /** ...still pending for some uplink. */
  pending: number;
  /** ...pending and not downsampled yet. */
  rawPending: number;
  /** ...dead-lettered for some uplink. */
  failed: number;
  /** The highest priority of an uplink still waiting for a batch in it (-Infinity: none waits). */
  keep: number;
  /** The oldest batch's created_at. */
  oldest: number;
}

export type Reason = 'dead_letter' | 'oldest' | 'downsampled';

export interface DropCount {
  uplink: string;
  reason: Reason;
  batches: number;
  readings: number;
}

export interface EmptyResult {
  segment: number;
  reclaimedBatches: number;
  dropped: DropCount[];
  /** Downsampling: summary batches written and the readings in them. */
  summaries: number;
  summaryReadings: number;
  freedBytes: number;
}

/**
 * Per segment file: its batches, how many are pending (and not yet downsampled) or dead-lettered,
 * and the highest priority still waiting (uplinks not in `priorities` count 0). Files in
 * `files` that no row refers to come back with batches 0.
 */
export function segmentRows(db: DB, priorities: Readonly<Record<string, number>>, files: ReadonlyMap<number, number>): SegmentRow[] {
  const rows = db.prepare(
    `SELECT p.body_segment AS id, count(DISTINCT p.id) AS batches, min(p.created_at) AS oldest,
       count(DISTINCT CASE WHEN t.status = 'pending' THEN p.id END) AS pending,
       count(DISTINCT CASE WHEN t.status = 'pending' AND p.downsampled = 0 THEN p.id END) AS rawPending,
       count(DISTINCT CASE WHEN t.status = 'failed' THEN p.id END) AS failed,
       max(CASE WHEN t.status = 'pending' THEN coalesce(json_extract(?, '$."' || t.uplink || '"'), 0) END) AS keep
     FROM payloads p LEFT JOIN recovery_tasks t ON t.payload_id = p.id
     WHERE p.body_segment IS NOT NULL GROUP BY p.body_segment`,
  ).all(JSON.stringify(priorities)) as (Omit<SegmentRow, 'bytes' | 'keep'> & { keep: number | null })[];
  const out: SegmentRow[] = [];
  const seen = new Set<number>();
  for (const r of rows) {
    seen.add(r.id);
    out.push({ ...r, keep: r.keep ?? -Infinity, bytes: files.get(r.id) ?? 0 });
  }
  for (const [id, bytes] of files) if (!seen.has(id)) out.push({ id, bytes, batches: 0, pending: 0, rawPending: 0, failed: 0, keep: -Infinity, oldest: 0 });
  return out;
}

/**
 * Whether segment `seg` holds a batch on its way upstream: a pending task among `taskIds` (sent,
 * outcome not written yet) or a batch among `keys`. Emptying such a file would count a drop that
 * then arrives anyway.
 */
export function segmentBusy(db: DB, seg: number, taskIds: readonly number[], keys: readonly string[]): boolean {
  if (taskIds.length === 0 && keys.length === 0) return false;
  const r = db.prepare(
    `SELECT 1 FROM payloads p WHERE p.body_segment = ? AND (p.batch_key IN (SELECT value FROM json_each(?))
       OR EXISTS (SELECT 1 FROM recovery_tasks t WHERE t.payload_id = p.id AND t.status = 'pending' AND t.id IN (SELECT value FROM json_each(?)))) LIMIT 1`,
  ).get(seg, JSON.stringify(keys), JSON.stringify(taskIds));
  return r !== undefined;
}

/** A pending batch of a file to downsample: its readings' payload and the uplinks still waiting for it. */
export interface PendingBatch {
  payloadId: number;
  key: string;
  device: string;
  readingCount: number;
  createdAt: number;
  payload: EncodedPayload;
  uplinks: string[];
}

/** The batches of segment `seg` still pending for some uplink, with their payloads (bodies read through `w`). */
export function pendingOfSegment(db: DB, w: SegmentWriter, seg: number): PendingBatch[] {
  const rows = db.prepare(
    `SELECT 0, p.id, p.batch_key, p.device, p.reading_count, 0, NULL, p.created_at, p.codec, p.key_id, p.iv, p.tag, p.body, p.body_segment, p.body_offset, p.body_length,
       group_concat(t.uplink, char(31))
     FROM payloads p JOIN recovery_tasks t ON t.payload_id = p.id AND t.status = 'pending'
     WHERE p.body_segment = ? GROUP BY p.id ORDER BY p.id`,
  ).raw(true).all(seg) as unknown[][];
  return rows.map((r) => {
    const t = rawToTask(r, w.reader);
    return { payloadId: t.payloadId, key: t.key, device: t.device, readingCount: t.readingCount, createdAt: t.createdAt, payload: t.payload, uplinks: String(r[16]).split('\u001f') };
  });
}

/** A summary batch to write in place of some pending batches, and the uplinks it goes to. */
export interface SummaryBatch {
  batch: SealedBatch;
  uplinks: readonly string[];
}

/**
 * Empties segment `seg` in one transaction (see the header): `reason` for its dead letters and
 * pending batches; `summaries` (downsampling) are written first and stand for its pending
 * batches. Then unlinks the file. `seg` must not be the active segment (roll it first).
 */
export function emptySegment(db: DB, w: SegmentWriter, seg: number, reason: 'dead_letter' | 'oldest' | 'downsampled', now: number, summaries: readonly SummaryBatch[] = []): EmptyResult {
  const out: EmptyResult = { segment: seg, reclaimedBatches: 0, dropped: [], summaries: summaries.length, summaryReadings: 0, freedBytes: 0 };
  const counts = db.prepare(
    `SELECT t.uplink, t.status, count(*) AS batches, sum(t.reading_count) AS readings
     FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id WHERE p.body_segment = ? AND t.status != 'delivered' GROUP BY t.uplink, t.status`,
  );
  const reclaimable = db.prepare(
    `SELECT count(*) FROM payloads p WHERE p.body_segment = ? AND NOT EXISTS (SELECT 1 FROM recovery_tasks t WHERE t.payload_id = p.id AND t.status != 'delivered')`,
  ).pluck();
  const delTasks = db.prepare('DELETE FROM recovery_tasks WHERE payload_id IN (SELECT id FROM payloads WHERE body_segment = ?)');
  const delPayloads = db.prepare('DELETE FROM payloads WHERE body_segment = ?');
  const bump = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value');
  const insP = payloadInsert(db);
  const insT = db.prepare('INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, created_at, reading_count) VALUES (?, ?, ?, ?, ?)');
  const mark = w.mark();
  const refs = summaries.length > 0 ? w.append(summaries.map((s) => s.batch.payload.body), summaries.map((s) => recordHeadOf(s.batch, true))) : [];
  try {
    w.beforeCommit();
    db.transaction(() => {
      const summaryByUplink = new Map<string, number>();
      summaries.forEach((s, i) => {
        const b = s.batch;
        const id = insP(metaOf(b, true), b.payload.body, refs[i]).lastInsertRowid;
        for (const u of s.uplinks) {
          insT.run(id, u, b.key, b.createdAt, b.readingCount);
          summaryByUplink.set(u, (summaryByUplink.get(u) ?? 0) + b.readingCount);
        }
        out.summaryReadings += b.readingCount;
      });
      out.reclaimedBatches = reclaimable.get(seg) as number;
      for (const c of counts.all(seg) as { uplink: string; status: string; batches: number; readings: number }[]) {
        const why: Reason = c.status === 'failed' ? 'dead_letter' : reason;
        // Downsampled readings are not all lost: the summaries stand for them.
        const readings = why === 'downsampled' ? Math.max(0, c.readings - (summaryByUplink.get(c.uplink) ?? 0)) : c.readings;
        out.dropped.push({ uplink: c.uplink, reason: why, batches: c.batches, readings });
      }
      delTasks.run(seg);
      delPayloads.run(seg);
      for (const d of out.dropped) {
        bump.run(`dropped_readings:${d.uplink}:${d.reason}`, d.readings);
        bump.run(`dropped_batches:${d.uplink}:${d.reason}`, d.batches);
      }
      if (out.reclaimedBatches > 0) bump.run('reclaimed_batches', out.reclaimedBatches);
      if (out.dropped.length > 0 || summaries.length > 0) {
        db.prepare(
          `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail)
           VALUES ('store', ?, 'drop', 'STORAGE_FULL', 'local', ?, ?, 0, ?)`,
        ).run(segmentName(seg), now, now, JSON.stringify({ segment: seg, reason, reclaimed: out.reclaimedBatches, dropped: out.dropped, summaries: out.summaries, summaryReadings: out.summaryReadings }));
      }
    }).immediate();
  } catch (e) {
    w.rewind(mark);
    throw e;
  }
  w.afterCommit();
  out.freedBytes = unlinkSegment(w, seg);
  return out;
}

/** Unlinks a segment file no row refers to any more; its size, 0 if it was gone. */
export function unlinkSegment(w: SegmentWriter, seg: number): number {
  const file = join(w.dir, segmentName(seg));
  let bytes = 0;
  try {
    bytes = statSync(file).size;
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  w.reader.forget(seg);
  return bytes;
}
