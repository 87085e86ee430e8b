/**
 * The life of segment files (store/segments.ts) around the rows that refer to them:
 *
 *   - recovery, when the agent's writer is created (createWriter): segment files no `payloads` row
 *     refers to are deleted (written by a crash between write() and the commit, or left by a
 *     purge); the last segment any row refers to is truncated to the end of the last range a row
 *     refers to (the orphans of a crash between write() and commit) and appending goes on there
 *     (unless it is a file from before record format 1: then a new one starts). If that file is shorter than its rows say (a power cut took its tail: those rows read as
 *     PAYLOAD_UNREADABLE) appending starts a new segment, so no new body lands in a range a row
 *     already names;
 *   - garbage collection, after a purge (the only place payload rows are deleted): closed
 *     segments no row refers to any more are unlinked. The agent collects at once; the CLI next
 *     to a possibly live agent never touches the newest file and waits GC_GRACE_MS after a file's
 *     last write, so a batch appended but not yet committed by the agent is never taken;
 *   - usage (files and bytes) for `holdfast status`.
 *
 * Finding the referenced segments scans `payloads` once (rows without bodies: ~150 bytes each),
 * at open and after a purge, never per acknowledgement.
 */
import { ftruncateSync, openSync, closeSync, fdatasyncSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir, type DB } from './db.js';
import { listSegments, segmentDir, segmentName, SegmentWriter, syncDir, type SyncLevel } from './segments.js';
import { FILE_HEADER_BYTES, fileFormat } from './segment-record.js';

/** A closed segment is collected by the CLI only this long after its last write (at least; see Store.collectSegments). */
export const GC_GRACE_MS = 120_000;

export interface GcResult {
  files: number;
  bytes: number;
  ids: number[];
}

const sizeOf = (file: string): number | null => {
  try {
    return statSync(file).size;
  } catch {
    return null;
  }
};

/** For each segment some row refers to: the end of the last range in it. */
export function referencedSegments(db: DB): Map<number, number> {
  const rows = db
    .prepare('SELECT body_segment AS s, max(body_offset + body_length) AS e FROM payloads WHERE body_segment IS NOT NULL GROUP BY body_segment')
    .all() as { s: number; e: number }[];
  return new Map(rows.map((r) => [r.s, r.e]));
}

/** The format of a segment file from its first bytes (0: bare bodies, before format 1). */
export function segmentFormat(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(FILE_HEADER_BYTES);
    const n = readSync(fd, b, 0, FILE_HEADER_BYTES, 0);
    return fileFormat(b.subarray(0, n)).format;
  } finally {
    closeSync(fd);
  }
}

/**
 * The agent's segment writer for a connection, after recovery (above). `rollBytes` and
 * `checkpointBytes` default to SEGMENT_BYTES and WAL_CHECKPOINT_BYTES (store/segments.ts). One
 * writer per data directory: the Store (store/store.ts) holds it.
 */
export function createWriter(db: DB, dataDir: string, rollBytes?: number, checkpointBytes?: number): SegmentWriter {
  const dir = segmentDir(dataDir);
  ensurePrivateDir(dir, true);
  const level = db.pragma('synchronous', { simple: true }) as SyncLevel;
  return new SegmentWriter(db, dir, recover(db, dir, level), level, rollBytes, checkpointBytes);
}

function recover(db: DB, dir: string, level: SyncLevel): { id: number; size: number; exists: boolean } {
  const files = listSegments(dir);
  const refs = referencedSegments(db);
  let last = 0;
  for (const s of refs.keys()) last = Math.max(last, s);
  const next = Math.max(last, files[files.length - 1] ?? 0) + 1;
  let removed = 0;
  for (const id of files) {
    if (refs.has(id)) continue;
    unlinkSync(join(dir, segmentName(id)));
    removed++;
  }
  let at = { id: next, size: 0, exists: false };
  const file = join(dir, segmentName(last));
  const have = last > 0 ? sizeOf(file) : null;
  const end = refs.get(last) ?? 0;
  // Appending goes on only in a file of the current format; a file from before it is left as it is.
  if (have !== null && have >= end && segmentFormat(file) >= 1) {
    // Go on appending after the last committed body; what lies beyond it was never committed.
    const fd = openSync(file, 'r+');
    try {
      if (have > end) ftruncateSync(fd, end);
      if (level > 0) fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    at = { id: last, size: end, exists: true };
  }
  if (removed > 0 && level > 0) syncDir(dir);
  return at;
}

/**
 * Unlinks closed segments no row refers to. `active`: the segment being appended to (the agent
 * knows it); null (the CLI) protects the newest file and anything written in the last graceMs.
 */
export function collectSegments(db: DB, dir: string, active: number | null, graceMs = 0, now = Date.now()): GcResult {
  const out: GcResult = { files: 0, bytes: 0, ids: [] };
  const files = listSegments(dir);
  if (files.length === 0) return out;
  const refs = referencedSegments(db);
  const newest = files[files.length - 1];
  for (const id of files) {
    if (id === active || (active === null && id === newest) || refs.has(id)) continue;
    if (active !== null && id > active) continue;
    const file = join(dir, segmentName(id));
    let st;
    try {
      st = statSync(file);
    } catch {
      continue;
    }
    if (graceMs > 0 && now - st.mtimeMs < graceMs) continue;
    unlinkSync(file);
    out.files++;
    out.bytes += st.size;
    out.ids.push(id);
  }
  return out;
}

/** Segment files and their bytes (holdfast status). */
export function segmentUsage(dataDir: string): { files: number; bytes: number } {
  const dir = segmentDir(dataDir);
  let bytes = 0;
  let files = 0;
  for (const id of listSegments(dir)) {
    const s = sizeOf(join(dir, segmentName(id)));
    if (s === null) continue;
    files++;
    bytes += s;
  }
  return { files, bytes };
}

/**
 * Before a connection that is not the agent's closes (a CLI command): its close may be the last
 * one and checkpoint the WAL, so the newest segment (the only one that can hold unsynced bytes,
 * e.g. after a kill -9) is fdatasynced first.
 */
export function syncNewestSegment(dataDir: string): void {
  const dir = segmentDir(dataDir);
  const files = listSegments(dir);
  if (files.length === 0) return;
  const fd = openSync(join(dir, segmentName(files[files.length - 1])), 'r');
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncDir(dir);
}
