/**
 * The write side of the store: sealed batches go in with one task per enabled uplink, many
 * batches per transaction (group commit), together with the sources' cursors, so a crash at any
 * instant leaves either the whole transaction or none of it.
 *
 * Idempotency: a batch key that already exists with the same payload hash is a harmless replay
 * (ignored); with a different hash it is refused as IDEMPOTENCY_KEY_COLLISION, counted, and
 * recorded as an event. The stored row is never overwritten.
 *
 * Bodies go to the segment files (store/segments.ts): appended with write() before the
 * transaction, which stores where each one is. Bytes appended for a batch that is then not
 * inserted (a replay, a collision, a failed transaction) are never referred to: the tail of the
 * active segment is cut at the next open, a closed segment goes when no row refers to it.
 */
import type { DB } from './db.js';
import type { EncodedPayload } from './codec.js';
import type { SegmentRef, SegmentWriter } from './segments.js';
import { batchHead } from './segment-record.js';
import { payloadInsert, type RowMeta } from './payload-row.js';

export interface SealedBatch {
  key: string;
  hash: Buffer;
  device: string;
  readingCount: number;
  firstTs: number;
  lastTs: number;
  createdAt: number;
  payload: EncodedPayload;
  /** Readings stamped by an unsynchronised clock, and the boot whose monotonic time they carry (docs/clocks.md). */
  clock?: { boot: string; unsynced: number };
  /** The source cursor after this batch, if its source has one (recorded in the segment record for salvage). */
  cursor?: number;
  /** A summary batch written by the storage policy `downsample`. */
  downsampled?: boolean;
}

/** What a batch's row and segment record say of it. */
export function metaOf(b: SealedBatch, downsampled = b.downsampled ?? false): RowMeta {
  const p = b.payload;
  return {
    key: b.key, hash: b.hash, device: b.device, readingCount: b.readingCount, firstTs: b.firstTs, lastTs: b.lastTs, createdAt: b.createdAt,
    codec: p.codec, keyId: p.keyId, iv: p.iv, tag: p.tag, downsampled,
  };
}

/** The batch a row (or record) describes, with its body read. */
export function sealedOf(m: RowMeta, body: Buffer): SealedBatch {
  return {
    key: m.key, hash: m.hash, device: m.device, readingCount: m.readingCount, firstTs: m.firstTs, lastTs: m.lastTs, createdAt: m.createdAt,
    payload: { codec: m.codec, keyId: m.keyId, iv: m.iv, tag: m.tag, body }, downsampled: m.downsampled,
  };
}

/** A batch's segment record header (store/segment-record.ts): what salvage needs to re-index it without the database. */
export function recordHeadOf(b: SealedBatch, downsampled = b.downsampled ?? false): Buffer {
  return batchHead({ ...metaOf(b, downsampled), cursor: b.cursor ?? null }, b.payload.body);
}

export interface CommitResult {
  committed: number;
  readings: number;
  duplicates: number;
  collisions: string[];
}

export class Outbox {
  private readonly insertPayload;
  private readonly findPayload;
  private readonly insertTask;
  private readonly saveCursor;
  private readonly bump;
  private readonly event;
  private readonly clockBatch;
  private readonly txn;

  /** `segments`: where bodies go; null keeps bodies in the rows (a database that is not a file). Handed out by Store.outbox. */
  constructor(
    private readonly db: DB,
    private uplinks: readonly string[],
    private readonly segments: SegmentWriter | null,
  ) {
    this.insertPayload = payloadInsert(db, 'ON CONFLICT (batch_key) DO NOTHING');
    this.findPayload = db.prepare('SELECT payload_hash FROM payloads WHERE batch_key = ?').pluck();
    this.insertTask = db.prepare(
      `INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, created_at, reading_count) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (payload_id, uplink) DO NOTHING`,
    );
    this.saveCursor = db.prepare(
      'INSERT INTO source_state (device, cursor) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET cursor = excluded.cursor',
    );
    this.bump = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value');
    this.event = db.prepare(
      `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail)
       VALUES ('store', ?, 'collision', 'IDEMPOTENCY_KEY_COLLISION', 'local', ?, ?, 0, ?)`,
    );
    this.clockBatch = db.prepare(`INSERT INTO clock_batches (payload_id, boot_id, readings, state) VALUES (?, ?, ?, 'unsynced')`);
    this.txn = db.transaction((batches: readonly SealedBatch[], cursors: ReadonlyMap<string, number>, refs: readonly SegmentRef[] | null) => {
      const r: CommitResult = { committed: 0, readings: 0, duplicates: 0, collisions: [] };
      for (let i = 0; i < batches.length; i++) {
        const b = batches[i];
        const ins = this.insertPayload(metaOf(b), b.payload.body, refs?.[i] ?? null);
        if (ins.changes === 0) {
          const existing = this.findPayload.get(b.key) as Buffer | undefined;
          if (existing && Buffer.compare(existing, b.hash) === 0) {
            r.duplicates++;
          } else {
            r.collisions.push(b.key);
            this.event.run(b.device, b.createdAt, b.createdAt, JSON.stringify({ key: b.key }));
          }
          continue;
        }
        const id = ins.lastInsertRowid;
        for (const u of this.uplinks) this.insertTask.run(id, u, b.key, b.createdAt, b.readingCount);
        if (b.clock && b.clock.unsynced > 0) this.clockBatch.run(id, b.clock.boot, b.clock.unsynced);
        r.committed++;
        r.readings += b.readingCount;
      }
      for (const [device, cursor] of cursors) this.saveCursor.run(device, cursor);
      if (r.collisions.length > 0) this.bump.run('idempotency_key_collisions', r.collisions.length);
      if (r.duplicates > 0) this.bump.run('duplicate_batches_ignored', r.duplicates);
      return r;
    });
  }

  /**
   * Commits batches and source cursors in one transaction: the bodies are appended to the active
   * segment first (and fdatasynced first with synchronous FULL), the agent's checkpoint check after.
   */
  commit(batches: readonly SealedBatch[], cursors: ReadonlyMap<string, number> = new Map()): CommitResult {
    const w = this.segments;
    if (!w || batches.length === 0) return this.txn.immediate(batches, cursors, null);
    const mark = w.mark();
    const refs = w.append(batches.map((b) => b.payload.body), batches.map((b) => recordHeadOf(b)));
    let r: CommitResult;
    try {
      w.beforeCommit();
      r = this.txn.immediate(batches, cursors, refs);
    } catch (e) {
      w.rewind(mark); // no row refers to those bytes: the next append writes over them
      throw e;
    }
    w.afterCommit();
    return r;
  }

  /** The last committed cursor of a source (e.g. the simulated counter), or 0. */
  cursor(device: string): number {
    const v = this.db.prepare('SELECT cursor FROM source_state WHERE device = ?').pluck().get(device) as number | undefined;
    return v ?? 0;
  }
}
