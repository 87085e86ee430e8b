/**
 * Re-bases stored batches that hold readings stamped by an unsynchronised wall clock
 * (clock_batches, state 'unsynced'), once the wall clock is good (docs/clocks.md).
 *
 * A batch no uplink has tried yet is rewritten: decoded, its flagged readings re-based by the
 * caller's `rebase`, re-encoded under the same idempotency key, appended to the active segment as
 * a record of its own (a salvage without the database takes the later record of a key) and its
 * `payloads` row pointed at it (the old bytes are left to segment GC). A batch
 * that was ever sent, or is being sent now, is left as it is ('kept'): an upstream may hold it
 * already, and a re-send under its key must be the same bytes; its readings arrive flagged.
 * A batch whose boot never had a good clock cannot be re-based: it keeps its flag
 * ('unrebasable'). The rewrite is one transaction per batch, after its body is appended, so a
 * crash leaves either the old row or the new one, never a mix.
 */
import { createHash } from 'node:crypto';
import type { DB } from './db.js';
import type { PayloadCodec } from './codec.js';
import type { Store } from './store.js';
import { batchHead } from './segment-record.js';

export interface RebaseReport {
  rebased: number;
  rebasedReadings: number;
  kept: number;
  unrebasable: number;
  unrebasableReadings: number;
  /** Batches whose payload could not be read or rewritten (marked unrebasable, with the reason logged by the caller). */
  errors: { key: string; message: string }[];
}

/**
 * One pass over at most `limit` unsynced batches. `rebase(readings, boot)` re-bases the flagged
 * readings in place with a good offset of `boot` and returns how many it re-based, or null when
 * that boot has no good offset (yet: `currentBoot` is then left for later; any other boot is over).
 */
export function rebaseStored(
  store: Store, codec: PayloadCodec, currentBoot: string, limit: number,
  rebase: (readings: Array<Record<string, unknown>>, boot: string) => number | null,
  /** Task ids in flight now (their sends read the old body): such a batch waits for a later pass. */
  inflight: ReadonlySet<number> = new Set(),
): RebaseReport {
  const { db, writer } = store;
  const r: RebaseReport = { rebased: 0, rebasedReadings: 0, kept: 0, unrebasable: 0, unrebasableReadings: 0, errors: [] };
  const rows = db
    .prepare(
      `SELECT c.payload_id AS id, c.boot_id AS boot, c.readings, p.batch_key AS key, p.device, p.reading_count AS readingCount, p.created_at AS createdAt, p.downsampled,
         EXISTS (SELECT 1 FROM recovery_tasks t WHERE t.payload_id = c.payload_id
           AND (t.status <> 'pending' OR t.retry_count > 0 OR t.first_attempt_at IS NOT NULL)) AS attempted
       FROM clock_batches c JOIN payloads p ON p.id = c.payload_id WHERE c.state = 'unsynced' ORDER BY c.payload_id LIMIT ?`,
    )
    .all(limit) as { id: number; boot: string; readings: number; key: string; device: string; readingCount: number; createdAt: number; downsampled: number; attempted: number }[];
  const tasksOf = db.prepare('SELECT id FROM recovery_tasks WHERE payload_id = ?').pluck();
  const mark = db.prepare('UPDATE clock_batches SET state = ? WHERE payload_id = ?');
  const update = db.prepare(
    `UPDATE payloads SET payload_hash = ?, first_ts = ?, last_ts = ?, codec = ?, key_id = ?, iv = ?, tag = ?, body = ?,
       body_segment = ?, body_offset = ?, body_length = ? WHERE id = ?`,
  );
  for (const row of rows) {
    if (row.attempted) {
      mark.run('kept', row.id);
      r.kept++;
      continue;
    }
    if (inflight.size > 0 && (tasksOf.all(row.id) as number[]).some((id) => inflight.has(id))) continue;
    let readings: Array<Record<string, unknown>>;
    try {
      const p = store.payload(row.key);
      if (!p) throw new Error('payload row vanished');
      readings = JSON.parse(codec.decodeText(p, row.key)) as Array<Record<string, unknown>>;
      if (!Array.isArray(readings)) throw new Error('stored batch is not a JSON array');
    } catch (e) {
      r.errors.push({ key: row.key, message: (e as Error).message });
      mark.run('unrebasable', row.id);
      r.unrebasable++;
      r.unrebasableReadings += row.readings;
      continue;
    }
    const n = rebase(readings, row.boot);
    if (n === null) {
      if (row.boot === currentBoot) continue;
      mark.run('unrebasable', row.id);
      r.unrebasable++;
      r.unrebasableReadings += row.readings;
      continue;
    }
    const json = JSON.stringify(readings);
    let first = Infinity;
    let last = -Infinity;
    for (const x of readings) {
      const ts = typeof x.ts === 'number' ? x.ts : NaN;
      if (ts < first) first = ts;
      if (ts > last) last = ts;
    }
    const enc = codec.encode(json, row.key);
    const hash = createHash('sha256').update(json).digest();
    const firstTs = Number.isFinite(first) ? first : 0;
    const lastTs = Number.isFinite(last) ? last : 0;
    const head = batchHead({
      key: row.key, device: row.device, readingCount: row.readingCount, firstTs, lastTs, createdAt: row.createdAt, hash,
      codec: enc.codec, keyId: enc.keyId, iv: enc.iv, tag: enc.tag, cursor: null, downsampled: row.downsampled === 1,
    }, enc.body);
    const ref = writer ? writer.append([enc.body], [head])[0] : null;
    writer?.beforeCommit();
    db.transaction(() => {
      update.run(
        hash, firstTs, lastTs,
        enc.codec, enc.keyId, enc.iv, enc.tag, ref ? Buffer.alloc(0) : enc.body, ref?.segment ?? null, ref?.offset ?? null, ref?.length ?? null, row.id,
      );
      mark.run('rebased', row.id);
    }).immediate();
    writer?.afterCommit();
    r.rebased++;
    r.rebasedReadings += n;
  }
  return r;
}

/** Unsynced-stamp batches by state (status). */
export function clockBatchCounts(db: DB): Record<string, { batches: number; readings: number }> {
  const rows = db.prepare('SELECT state, count(*) AS batches, coalesce(sum(readings), 0) AS readings FROM clock_batches GROUP BY state').all() as {
    state: string; batches: number; readings: number;
  }[];
  return Object.fromEntries(rows.map((x) => [x.state, { batches: x.batches, readings: x.readings }]));
}
