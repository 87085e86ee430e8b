/**
 * Salvage: a database that is missing, empty or unreadable while segment files are present is
 * not a fresh start. The database (and its WAL) has been moved into `<dataDir>/quarantine/<when>/`
 * (never deleted: store/open-store.ts); here a new database is filled with everything that can
 * still be read and accounted for:
 *
 *   - rows of the quarantined database, read past damaged pages (store/salvage-read.ts): payloads
 *     whose body is still where the row says, and their tasks with their status;
 *   - batch records of the format-1 segment files (store/segment-record.ts), which describe
 *     themselves: a batch no readable row knows is re-indexed from its record, pending for every
 *     enabled uplink (its delivery state is unknown: it is sent again, with its original key, so
 *     an idempotent consumer drops a second copy);
 *   - source cursors (the highest of the old rows and of the records), so a source resumes after
 *     the last batch it stored rather than at zero.
 *
 * Segment files no salvaged row refers to (a file from before format 1 whose rows are gone, a
 * file of garbage) are moved to the quarantine folder too. The report says, in numbers, what was
 * recovered and what was lost; it is written into the new database (an event and counters) and
 * next to the quarantined files (`salvage.json`).
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { DB } from './db.js';
import { DB_FILE } from './db.js';
import { listSegments, segmentDir, segmentName } from './segment-reader.js';
import { fileFormat, scanRecords, type BatchMeta } from './segment-record.js';
import { readAll, readTolerant } from './salvage-read.js';
import { metaOfRow, PAYLOAD_COLUMNS, payloadInsert, refOfRow, type PayloadRow, type RowMeta } from './payload-row.js';
import type { SegmentRef } from './segments.js';

export interface SalvageReport {
  /** Why the database was not used as it was. */
  reason: 'missing' | 'empty' | 'unreadable';
  /** The error or integrity-check text of an unreadable database. */
  error: string | null;
  /** Where the old database and any unattributable segment files went. */
  quarantine: string;
  batches: { fromDatabase: number; fromSegments: number; total: number };
  readings: number;
  /** Tasks copied with their status, and tasks made pending because no row said what became of the batch. */
  tasks: { kept: number; unknownState: number };
  cursors: number;
  lost: {
    /** Reads of the old database that failed (a rowid or a chunk of them). */
    databaseReadErrors: number;
    /** Readable rows whose body is gone (file missing or short, record rotten). */
    bodiesMissing: number;
    /** Readings in those rows. */
    readings: number;
    /** Records that failed their checksum, and all bytes that were not part of a good record. */
    badRecords: number;
    badBytes: number;
    /** Segment files nothing could be attributed to, moved to quarantine (kept, not deleted). */
    segmentFilesQuarantined: number;
    segmentBytesQuarantined: number;
  };
}

interface OldTask {
  uplink: string;
  idempotency_key: string;
  status: string;
  retry_count: number;
  next_attempt_at: number;
  last_error_code: string | null;
  last_error: string | null;
  fault_class: string | null;
  retry_class: string | null;
  request_timestamp: number | null;
  acknowledgment_timestamp: number | null;
  latency_ms: number | null;
  first_attempt_at: number | null;
  created_at: number;
  reading_count: number;
}

/** A batch to re-index: its row's fields and where its body is. */
interface Found {
  meta: RowMeta;
  /** The body when it is in the row (schema 2); empty when `ref` says where it is. */
  body: Buffer;
  ref: SegmentRef | null;
  fromDb: boolean;
  /** Order of discovery: old rowid order, then segment order. */
  order: number;
}

const TASK_COLS = `uplink, idempotency_key, status, retry_count, next_attempt_at, last_error_code, last_error, fault_class, retry_class, request_timestamp,
  acknowledgment_timestamp, latency_ms, first_attempt_at, created_at, reading_count`;

/** Reads the quarantined database, if there is one that opens at all. */
function readOld(file: string | null): { payloads: PayloadRow[]; tasks: OldTask[]; cursors: { device: string; cursor: number }[]; counters: { name: string; value: number }[]; errors: number; firstError: string | null } {
  const none = { payloads: [], tasks: [], cursors: [], counters: [], errors: 0, firstError: null };
  if (file === null || !existsSync(file) || statSync(file).size === 0) return none;
  let old: Database.Database;
  try {
    // Writable, so SQLite can replay a WAL that came with it; nothing else is written.
    old = new Database(file, { fileMustExist: true });
  } catch (e) {
    return { ...none, errors: 1, firstError: (e as Error).message };
  }
  try {
    const hasDownsampled = readAll<{ name: string }>(old, `SELECT name FROM pragma_table_info('payloads')`).rows.some((c) => c.name === 'downsampled');
    const payloads = readTolerant<PayloadRow>(old, 'payloads', PAYLOAD_COLUMNS + (hasDownsampled ? ', downsampled' : ''));
    const tasks = readTolerant<OldTask>(old, 'recovery_tasks', TASK_COLS);
    const cursors = readAll<{ device: string; cursor: number }>(old, 'SELECT device, cursor FROM source_state');
    const counters = readAll<{ name: string; value: number }>(old, 'SELECT name, value FROM counters');
    const parts = [payloads, tasks, cursors, counters];
    return {
      payloads: payloads.rows, tasks: tasks.rows, cursors: cursors.rows, counters: counters.rows,
      errors: parts.reduce((n, p) => n + p.errors, 0), firstError: parts.find((p) => p.firstError !== null)?.firstError ?? null,
    };
  } finally {
    try {
      old.close();
    } catch {
      // closing a damaged file may fail; it is in quarantine either way
    }
  }
}

/**
 * Fills `db` (new, migrated, empty) with what can be salvaged from the quarantined database
 * `oldFile` (null when there was none) and the segment files of `dataDir`, in one transaction.
 * `uplinks`: the enabled uplinks (a batch of unknown state gets a pending task on each).
 */
export function salvage(
  db: DB, dataDir: string, oldFile: string | null, quarantine: string, reason: SalvageReport['reason'], error: string | null,
  uplinks: readonly string[], now: number,
): SalvageReport {
  const old = readOld(oldFile);
  const report: SalvageReport = {
    reason, error: error ?? old.firstError, quarantine,
    batches: { fromDatabase: 0, fromSegments: 0, total: 0 }, readings: 0, tasks: { kept: 0, unknownState: 0 }, cursors: 0,
    lost: { databaseReadErrors: old.errors, bodiesMissing: 0, readings: 0, badRecords: 0, badBytes: 0, segmentFilesQuarantined: 0, segmentBytesQuarantined: 0 },
  };
  const segDir = segmentDir(dataDir);
  const files = listSegments(segDir);
  const sizes = new Map<number, number>();
  /** Good batch records by segment, keyed by body offset (to check a row's body is intact). */
  const records = new Map<number, Map<number, { meta: BatchMeta; length: number }>>();
  const found = new Map<string, Found>();
  let order = 0;
  for (const id of files) {
    const buf = readFileSync(join(segDir, segmentName(id)));
    sizes.set(id, buf.length);
    if (fileFormat(buf).format < 1) continue;
    const scan = scanRecords(buf);
    report.lost.badRecords += scan.badBodies;
    report.lost.badBytes += scan.badBytes;
    const byOffset = new Map<number, { meta: BatchMeta; length: number }>();
    records.set(id, byOffset);
    for (const r of scan.records) if (r.type === 'batch') byOffset.set(r.bodyOffset, { meta: r.meta, length: r.bodyLength });
  }
  // Old rows first: they are the index as it was.
  for (const p of old.payloads) {
    const seg = p.body_segment;
    let intact: boolean;
    if (seg === null) intact = true; // body in the row (schema 2)
    else if (records.has(seg)) intact = records.get(seg)!.get(p.body_offset!)?.meta.key === p.batch_key;
    else intact = sizes.has(seg) && sizes.get(seg)! >= p.body_offset! + p.body_length!;
    if (!intact) {
      report.lost.bodiesMissing++;
      report.lost.readings += p.reading_count;
      continue;
    }
    found.set(p.batch_key, { meta: metaOfRow(p), body: p.body, ref: refOfRow(p), fromDb: true, order: order++ });
  }
  const cursors = new Map<string, number>();
  for (const c of old.cursors) cursors.set(c.device, Math.max(cursors.get(c.device) ?? 0, c.cursor));
  for (const [seg, byOffset] of records) {
    for (const [offset, { meta: m, length }] of byOffset) {
      if (m.cursor !== null) cursors.set(m.device, Math.max(cursors.get(m.device) ?? 0, m.cursor));
      // A row of the old database is the index; among records, the later one of a key is its rewrite (clock re-base).
      const had = found.get(m.key);
      if (had?.fromDb) continue;
      found.set(m.key, { meta: m, body: Buffer.alloc(0), ref: { segment: seg, offset, length }, fromDb: false, order: had?.order ?? order++ });
    }
  }
  const tasksByKey = new Map<string, OldTask[]>();
  for (const t of old.tasks) tasksByKey.set(t.idempotency_key, [...(tasksByKey.get(t.idempotency_key) ?? []), t]);

  const insP = payloadInsert(db);
  const insOld = db.prepare(
    `INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, status, retry_count, next_attempt_at, last_error_code, last_error, fault_class,
       retry_class, request_timestamp, acknowledgment_timestamp, latency_ms, first_attempt_at, created_at, reading_count)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insNew = db.prepare(`INSERT INTO recovery_tasks (payload_id, uplink, idempotency_key, created_at, reading_count) VALUES (?, ?, ?, ?, ?)`);
  const bump = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value');
  const used = new Set<number>();
  db.transaction(() => {
    const all = [...found.values()].sort((a, b) => a.meta.createdAt - b.meta.createdAt || a.order - b.order);
    for (const f of all) {
      const m = f.meta;
      const id = insP(m, f.body, f.ref).lastInsertRowid;
      if (f.ref) used.add(f.ref.segment);
      if (f.fromDb) report.batches.fromDatabase++;
      else report.batches.fromSegments++;
      report.readings += m.readingCount;
      const known = tasksByKey.get(m.key);
      if (known && known.length > 0) {
        for (const t of known) {
          // A retry time in the old run's past is simply due now.
          insOld.run(id, t.uplink, t.idempotency_key, t.status, t.retry_count, t.status === 'pending' ? 0 : t.next_attempt_at, t.last_error_code, t.last_error,
            t.fault_class, t.retry_class, t.request_timestamp, t.acknowledgment_timestamp, t.latency_ms, t.first_attempt_at, t.created_at, t.reading_count);
          report.tasks.kept++;
        }
      } else {
        for (const u of uplinks) insNew.run(id, u, m.key, m.createdAt, m.readingCount);
        report.tasks.unknownState += uplinks.length;
      }
    }
    report.batches.total = all.length;
    const cur = db.prepare('INSERT INTO source_state (device, cursor) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET cursor = max(cursor, excluded.cursor)');
    for (const [device, c] of cursors) cur.run(device, c);
    report.cursors = cursors.size;
    for (const c of old.counters) bump.run(c.name, c.value);
  }).immediate();

  // Files nothing refers to now: kept in quarantine, never deleted.
  for (const id of files) {
    if (used.has(id)) continue;
    renameSync(join(segDir, segmentName(id)), join(quarantine, segmentName(id)));
    report.lost.segmentFilesQuarantined++;
    report.lost.segmentBytesQuarantined += sizes.get(id) ?? 0;
  }
  db.transaction(() => {
    bump.run('salvaged_batches', report.batches.total);
    bump.run('salvaged_readings', report.readings);
    bump.run('salvage_lost_batches', report.lost.bodiesMissing);
    bump.run('salvage_bad_bytes', report.lost.badBytes);
    db.prepare(
      `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail)
       VALUES ('store', ?, 'salvage', 'STORE_SALVAGED', 'local', ?, ?, 0, ?)`,
    ).run(DB_FILE, now, now, JSON.stringify(report));
  }).immediate();
  writeFileSync(join(quarantine, 'salvage.json'), `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
  return report;
}
