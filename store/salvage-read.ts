/**
 * Reading what can be read from a damaged database (store/salvage.ts): rows by rowid in chunks;
 * where a chunk fails (a rotten page), rowid by rowid until reads work again, so one bad page
 * costs the rows on it and no more. Every failed read is counted.
 */
import type { DB } from './db.js';

export interface TolerantRows<T> {
  rows: T[];
  /** Reads that failed (each a rowid, or a chunk that could not be read). */
  errors: number;
  /** The first error's message, for the report. */
  firstError: string | null;
}

const CHUNK = 500;
/** Rowids probed one by one after a failed chunk before giving up on the rest of the table. */
const PROBE_WINDOW = 20_000;

/**
 * Every readable row of `table` (which has an INTEGER PRIMARY KEY `id`), in rowid order, with
 * the columns `cols` (SQL). Never throws.
 */
export function readTolerant<T>(db: DB, table: string, cols: string): TolerantRows<T> {
  const out: TolerantRows<T> = { rows: [], errors: 0, firstError: null };
  const fail = (e: unknown) => {
    out.errors++;
    out.firstError ??= (e as Error).message;
  };
  let chunk, point;
  try {
    chunk = db.prepare(`SELECT id AS _id, ${cols} FROM ${table} WHERE id > ? ORDER BY id LIMIT ${CHUNK}`);
    point = db.prepare(`SELECT id AS _id, ${cols} FROM ${table} WHERE id = ?`);
  } catch (e) {
    fail(e);
    return out;
  }
  let maxId: number | null = null;
  try {
    maxId = db.prepare(`SELECT max(id) FROM ${table}`).pluck().get() as number | null;
  } catch {
    // the rightmost path of the tree is damaged: probe windows bound the walk instead
  }
  let after = 0;
  for (;;) {
    let rows: (T & { _id: number })[];
    try {
      rows = chunk.all(after) as (T & { _id: number })[];
    } catch (e) {
      fail(e);
      // Rowid by rowid past the damage until a chunk reads again.
      const limit = maxId ?? after + PROBE_WINDOW;
      let resumed = false;
      for (let id = after + 1; id <= limit; id++) {
        try {
          const r = point.get(id) as (T & { _id: number }) | undefined;
          after = id;
          if (!r) continue;
          out.rows.push(strip(r));
          resumed = true;
          break;
        } catch (pe) {
          fail(pe);
          after = id;
        }
      }
      if (!resumed) return out;
      continue;
    }
    if (rows.length === 0) return out;
    for (const r of rows) out.rows.push(strip(r));
    after = rows[rows.length - 1]._id;
    if (maxId !== null && after >= maxId) return out;
  }
}

function strip<T>(r: T & { _id: number }): T {
  const { _id, ...rest } = r;
  void _id;
  return rest as T;
}

/** A whole small table read in one go, or nothing (counted) if it cannot be. */
export function readAll<T>(db: DB, sql: string): TolerantRows<T> {
  try {
    return { rows: db.prepare(sql).all() as T[], errors: 0, firstError: null };
  } catch (e) {
    return { rows: [], errors: 1, firstError: (e as Error).message };
  }
}
