/**
 * Opening the store: the data directory (0700, refused if group/world accessible), SQLite in WAL
 * mode with the configured `synchronous` level and busy timeout, and schema migrations keyed on
 * `PRAGMA user_version`. Admin commands open the same file next to a live agent (WAL readers
 * never block the writer; writers wait up to busyTimeoutMs).
 */
import Database from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from './errors.js';
import { MIGRATIONS } from './migrations.js';

export type DB = Database.Database;

export interface OpenOptions {
  synchronous?: 'OFF' | 'NORMAL' | 'FULL';
  busyTimeoutMs?: number;
  /** Create the directory if missing (the agent does; admin commands do not). */
  create?: boolean;
  readonly?: boolean;
  /** Page size of a new database file, bytes (an existing file keeps its own). Default PAGE_SIZE. */
  pageSize?: number;
  /** This connection's page cache, KiB. Default CACHE_KIB. */
  cacheKiB?: number;
  /** The database file's name in the data directory. Default DB_FILE (salvage builds its result in a side file). */
  file?: string;
}

export const DB_FILE = 'holdfast.db';

/** Page size of a new database: SQLite's default; docs/durability.md gives the flash wear with it. */
export const PAGE_SIZE = 4096;
/**
 * Page cache per connection, KiB. better-sqlite3's build defaults to 16 MB; the agent appends
 * and reads each payload about once, so a cache beyond the hot b-tree pages only holds RSS.
 */
export const CACHE_KIB = 2048;
/**
 * WAL size at which the agent checkpoints: SQLite's default of 1000 pages of 4 KiB, whatever the
 * page size. SQLite's own autocheckpoint is off on every Holdfast connection: a checkpoint makes
 * rows durable, so the agent runs it itself after syncing the segment their bodies are in
 * (store/segments.ts SegmentWriter.afterCommit).
 */
export const WAL_CHECKPOINT_BYTES = 4096 * 1000;

/** Ensures the data directory exists with mode 0700 and is not accessible to group or others. */
export function ensurePrivateDir(dir: string, create: boolean): void {
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new StoreError('STORE_UNAVAILABLE', 'data directory does not exist (has the agent run yet?)', dir);
  }
  if (!st.isDirectory()) throw new StoreError('STORE_UNAVAILABLE', 'not a directory', dir);
  if ((st.mode & 0o077) !== 0) {
    throw new StoreError('DATA_DIR_INSECURE', `mode ${(st.mode & 0o777).toString(8)}; run chmod 700 ${dir}`, dir);
  }
}

export function openDb(dataDir: string, opts: OpenOptions = {}): DB {
  ensurePrivateDir(dataDir, opts.create ?? false);
  const file = join(dataDir, opts.file ?? DB_FILE);
  let db: DB;
  try {
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: !(opts.create ?? false) });
  } catch (e) {
    throw new StoreError('STORE_UNAVAILABLE', (e as Error).message, file, { cause: e });
  }
  try {
    db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
    db.pragma(`cache_size = ${-Math.max(64, Math.trunc(opts.cacheKiB ?? CACHE_KIB))}`);
    if (!opts.readonly) {
      checkVersion(db);
      // Only an empty file can take a page size, and only before it is in WAL mode.
      if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma(`page_size = ${Math.trunc(opts.pageSize ?? PAGE_SIZE)}`);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      db.pragma('foreign_keys = ON');
      db.pragma('wal_autocheckpoint = 0');
      migrate(db);
    }
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

export function schemaVersion(db: DB): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Applies every migration above the file's user_version, each in its own transaction. */
function checkVersion(db: DB): number {
  const have = schemaVersion(db);
  if (have > MIGRATIONS.length) {
    throw new StoreError('SCHEMA_TOO_NEW', `database schema ${have} is newer than this build (${MIGRATIONS.length}); upgrade Holdfast`);
  }
  return have;
}

export function migrate(db: DB): void {
  const have = checkVersion(db);
  if (have >= MIGRATIONS.length) return;
  // A migration that rebuilds a table drops the old one: with foreign keys on, that drop is a
  // DELETE that cascades (clock_batches). Off only while migrating (a no-op inside a transaction).
  const fk = db.pragma('foreign_keys', { simple: true }) === 1;
  db.pragma('foreign_keys = OFF');
  try {
    for (let v = have; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]);
        db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  } finally {
    if (fk) db.pragma('foreign_keys = ON');
  }
}
