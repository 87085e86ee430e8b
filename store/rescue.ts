/**
 * Rescue: when the store fails under a running agent, rows the page cache still shows may not be
 * on disk (a read-only remount after an I/O error loses what was written since the last sync; a
 * removed data directory loses everything not held open). While the old connection still reads,
 * the batches at risk are copied into the spool (store/spool.ts), so the import into the store
 * that comes back puts them where they belong, by key, exactly once:
 *
 *   - batches still pending for some uplink above `afterId` (the last payload id made durable by
 *     a complete checkpoint; 0 when the directory is gone: then every pending batch whose body can
 *     still be read), with an acknowledgement record for each uplink that had delivered it;
 *   - acknowledgements of tasks the lanes sent but whose outcome could not be written;
 *   - the source cursors.
 *
 * A batch whose body cannot be read any more (its segment file is gone and not held open) is
 * lost: counted per uplink still waiting for it, and reported.
 */
import type { DB } from './db.js';
import { sealedOf, type SealedBatch } from './outbox.js';
import { metaOfRow, PAYLOAD_COLUMNS, type PayloadRow } from './payload-row.js';
import type { SegmentWriter } from './segments.js';
import type { SpoolWriter } from './spool.js';

export interface RescueResult {
  batches: number;
  readings: number;
  acks: number;
  cursors: number;
  /** Batches that could not be rescued (body unreadable, or the spool full), by uplink waiting for them. */
  lost: { uplink: string; batches: number; readings: number }[];
  /** The first reason a body could not be read. */
  firstError: string | null;
}

type Row = PayloadRow & { id: number };

const CHUNK = 64;

/** An acknowledgement whose outcome was not written: the task id and its times. */
export interface UnwrittenAck {
  id: number;
  requestAt: number;
  ackAt: number;
}

export function rescue(db: DB, w: SegmentWriter | null, spool: SpoolWriter, afterId: number, acked: readonly UnwrittenAck[]): RescueResult {
  const out: RescueResult = { batches: 0, readings: 0, acks: 0, cursors: 0, lost: [], firstError: null };
  const lost = new Map<string, { batches: number; readings: number }>();
  const pendingOf = db.prepare(`SELECT uplink FROM recovery_tasks WHERE payload_id = ? AND status = 'pending'`).pluck();
  const delivered = db.prepare(`SELECT uplink, request_timestamp AS rq, acknowledgment_timestamp AS ack FROM recovery_tasks WHERE payload_id = ? AND status = 'delivered'`);
  const lose = (r: Row) => {
    for (const u of pendingOf.all(r.id) as string[]) {
      const l = lost.get(u) ?? { batches: 0, readings: 0 };
      l.batches++;
      l.readings += r.reading_count;
      lost.set(u, l);
    }
  };
  let chunk: { b: SealedBatch; acks: { uplink: string; rq: number; ack: number }[]; row: Row }[] = [];
  let full = false;
  const flush = () => {
    if (chunk.length === 0) return;
    if (!full && spool.appendBatches(chunk.map((c) => c.b), new Map())) {
      for (const c of chunk) {
        out.batches++;
        out.readings += c.b.readingCount;
        for (const a of c.acks) if (spool.appendAck(c.b.key, a.uplink, a.rq ?? a.ack, a.ack)) out.acks++;
      }
    } else {
      full = true;
      for (const c of chunk) lose(c.row);
    }
    chunk = [];
  };
  const rows = db.prepare(
    `SELECT p.id, ${PAYLOAD_COLUMNS}, p.downsampled
     FROM payloads p WHERE p.id > ? AND EXISTS (SELECT 1 FROM recovery_tasks t WHERE t.payload_id = p.id AND t.status = 'pending') ORDER BY p.id`,
  ).iterate(afterId) as IterableIterator<Row>;
  for (const r of rows) {
    let body: Buffer;
    try {
      if (r.body_segment === null) body = r.body;
      else if (w) body = w.readBody(r.body_segment, r.body_offset!, r.body_length!);
      else throw new Error('no segment reader');
    } catch (e) {
      out.firstError ??= (e as Error).message;
      lose(r);
      continue;
    }
    chunk.push({
      row: r,
      b: sealedOf(metaOfRow(r), body),
      acks: delivered.all(r.id) as { uplink: string; rq: number; ack: number }[],
    });
    if (chunk.length >= CHUNK) flush();
  }
  flush();
  out.acks += ackUnwritten(db, spool, acked);
  const cursors = new Map((db.prepare('SELECT device, cursor FROM source_state').all() as { device: string; cursor: number }[]).map((c) => [c.device, c.cursor]));
  if (cursors.size > 0 && spool.appendBatches([], cursors)) out.cursors = cursors.size;
  out.lost = [...lost].map(([uplink, l]) => ({ uplink, ...l }));
  return out;
}

/** Turns acknowledgements whose outcome could not be written into spool records (key and uplink read from the old connection); how many. */
export function ackUnwritten(db: DB, spool: SpoolWriter, acked: readonly UnwrittenAck[]): number {
  const task = db.prepare('SELECT idempotency_key AS key, uplink FROM recovery_tasks WHERE id = ?');
  let n = 0;
  for (const a of acked) {
    const t = task.get(a.id) as { key: string; uplink: string } | undefined;
    if (t && spool.appendAck(t.key, t.uplink, a.requestAt, a.ackAt)) n++;
  }
  return n;
}
