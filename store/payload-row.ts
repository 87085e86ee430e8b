/**
 * A payloads row (store/migrations.ts) in the two forms the store moves it between: the row as
 * SQLite holds it, and the self-describing metadata of a segment record (store/segment-record.ts).
 * Every writer of the table (commit, spool import, salvage, downsampling) inserts through
 * payloadInsert(), so the columns are named once.
 */
import type { DB } from './db.js';
import type { BatchMeta } from './segment-record.js';
import type { SegmentRef } from './segments.js';

const EMPTY = Buffer.alloc(0);

/** A payloads row as read back (rescue, salvage). `downsampled` is absent in a schema before it. */
export interface PayloadRow {
  batch_key: string;
  payload_hash: Buffer;
  device: string;
  reading_count: number;
  first_ts: number;
  last_ts: number;
  created_at: number;
  codec: BatchMeta['codec'];
  key_id: string | null;
  iv: Buffer | null;
  tag: Buffer | null;
  body: Buffer;
  body_segment: number | null;
  body_offset: number | null;
  body_length: number | null;
  downsampled?: number;
}

/** The columns of a row but its id and `downsampled`, as a SELECT list. */
export const PAYLOAD_COLUMNS =
  'batch_key, payload_hash, device, reading_count, first_ts, last_ts, created_at, codec, key_id, iv, tag, body, body_segment, body_offset, body_length';

/** What a row says of its batch, in the form of a segment record's metadata (no cursor: that is kept in source_state). */
export type RowMeta = Omit<BatchMeta, 'cursor'>;

export function metaOfRow(r: PayloadRow): RowMeta {
  return {
    key: r.batch_key, hash: r.payload_hash, device: r.device, readingCount: r.reading_count, firstTs: r.first_ts, lastTs: r.last_ts,
    createdAt: r.created_at, codec: r.codec, keyId: r.key_id, iv: r.iv, tag: r.tag, downsampled: r.downsampled === 1,
  };
}

/** Where a row's body is: in the row itself, or in a segment file. */
export function refOfRow(r: PayloadRow): SegmentRef | null {
  return r.body_segment === null ? null : { segment: r.body_segment, offset: r.body_offset!, length: r.body_length! };
}

/**
 * Prepares the INSERT of a payloads row; `onConflict` e.g. `ON CONFLICT (batch_key) DO NOTHING`.
 * The returned function stores `body` in the row when `ref` is null, else where `ref` says.
 */
export function payloadInsert(db: DB, onConflict = ''): (m: RowMeta, body: Buffer, ref: SegmentRef | null) => { changes: number; lastInsertRowid: number | bigint } {
  const st = db.prepare(`INSERT INTO payloads (${PAYLOAD_COLUMNS}, downsampled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ${onConflict}`);
  return (m, body, ref) =>
    st.run(
      m.key, m.hash, m.device, m.readingCount, m.firstTs, m.lastTs, m.createdAt, m.codec, m.keyId, m.iv, m.tag, ref ? EMPTY : body,
      ref?.segment ?? null, ref?.offset ?? null, ref?.length ?? null, m.downsampled ? 1 : 0,
    );
}
