/**
 * Opening the agent's store: the database checked before it is trusted, then the segment writer
 * (whose recovery deletes segment files no row refers to, so it must never run against a
 * database that lost its rows).
 *
 *   - a database that opens and passes `PRAGMA quick_check`: used as it is;
 *   - missing or empty, and no segment file: a fresh store;
 *   - missing or empty with segment files present, or unreadable (not a database, corrupt, a
 *     failed integrity check): the database and its WAL are moved to
 *     `<dataDir>/quarantine/<time>-<reason>/` (never deleted), a new one is built in a side file
 *     by salvage (store/salvage.ts) and moved into place only when complete, so a crash during
 *     salvage leaves a missing database and the next start salvages again, from the same
 *     quarantined copy.
 *
 * Errors that say the disk, not the file, is at fault (I/O error, full, read-only, no
 * permission) are not a reason to quarantine: they are thrown as STORE_UNAVAILABLE and the agent
 * tries again later. SCHEMA_TOO_NEW and DATA_DIR_INSECURE stay refusals.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { DB_FILE, ensurePrivateDir, openDb, type DB, type OpenOptions } from './db.js';
import { MIGRATIONS } from './migrations.js';
import { salvage, type SalvageReport } from './salvage.js';
import { listSegments, segmentDir, syncDir } from './segment-reader.js';

export const QUARANTINE_DIR = 'quarantine';
const SIDE_FILE = `${DB_FILE}.salvage`;

export type DbState = { state: 'ok' } | { state: 'missing' } | { state: 'empty' } | { state: 'unreadable'; error: string };

/** SQLite result codes that mean the file's content is bad (as opposed to the disk or permissions). */
const CONTENT_CODES = /^SQLITE_(CORRUPT|NOTADB|FORMAT)/;

/** The code of a thrown SQLite or file-system error, if it has one. */
export function errorCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'string' ? c : undefined;
}

/**
 * What state the database file is in. Opens it (writable: SQLite replays a WAL only then), runs
 * `quick_check`, closes it. Throws STORE_UNAVAILABLE when the disk rather than the file is at
 * fault, SCHEMA_TOO_NEW for a database of a newer build.
 */
export function inspectDb(dataDir: string): DbState {
  const file = join(dataDir, DB_FILE);
  if (!existsSync(file)) return existsSync(`${file}-wal`) ? { state: 'unreadable', error: 'database file missing next to its WAL' } : { state: 'missing' };
  const size = statSync(file).size;
  const wal = existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0;
  if (size === 0 && wal === 0) return { state: 'empty' };
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { fileMustExist: true });
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new StoreError('SCHEMA_TOO_NEW', `database schema ${version} is newer than this build (${MIGRATIONS.length}); upgrade Holdfast`, file);
    }
    const tables = db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`).pluck().get() as number;
    if (version === 0 && tables === 0) return { state: 'empty' };
    const check = db.pragma('quick_check', { simple: true }) as string;
    if (check !== 'ok') return { state: 'unreadable', error: `quick_check: ${check}` };
    if (version === 0) return { state: 'unreadable', error: `holds ${tables} table(s) but no Holdfast schema (user_version 0)` };
    return { state: 'ok' };
  } catch (e) {
    if (e instanceof StoreError) throw e;
    const code = errorCode(e) ?? '';
    if (CONTENT_CODES.test(code)) return { state: 'unreadable', error: `${code}: ${(e as Error).message}` };
    throw new StoreError('STORE_UNAVAILABLE', `${code ? `${code}: ` : ''}${(e as Error).message}`, file, { cause: e });
  } finally {
    try {
      db?.close();
    } catch {
      // a damaged file may fail to close; nothing was written
    }
  }
}

/** A quarantine folder left by a salvage that did not finish (no salvage.json), if any. */
function unfinishedQuarantine(dataDir: string): string | null {
  const root = join(dataDir, QUARANTINE_DIR);
  let names: string[];
  try {
    names = readdirSync(root).sort();
  } catch {
    return null;
  }
  for (const n of names.reverse()) {
    const dir = join(root, n);
    if (!existsSync(join(dir, 'salvage.json'))) return dir;
  }
  return null;
}

/** Moves the database and its WAL and shared-memory files into a new quarantine folder. */
function quarantineDb(dataDir: string, reason: string, now: number): string {
  const root = join(dataDir, QUARANTINE_DIR);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const dir = join(root, `${new Date(now).toISOString().replace(/[:.]/g, '-')}-${reason}`);
  mkdirSync(dir, { mode: 0o700 });
  for (const suffix of ['', '-wal', '-shm']) {
    const f = join(dataDir, DB_FILE + suffix);
    if (existsSync(f)) renameSync(f, join(dir, DB_FILE + suffix));
  }
  syncDir(dataDir);
  return dir;
}

export interface StoreOpenOptions extends OpenOptions {
  /** The enabled uplinks: a salvaged batch of unknown state gets a pending task on each. */
  uplinks: readonly string[];
  now?: number;
}

/**
 * Opens the agent's database, salvaging first when it is missing, empty or unreadable while
 * segment files (or an unfinished salvage) are present. Returns the connection (before its
 * segment writer exists) and the salvage report when one ran.
 */
export function openStore(dataDir: string, o: StoreOpenOptions): { db: DB; salvage: SalvageReport | null } {
  ensurePrivateDir(dataDir, true);
  const now = o.now ?? Date.now();
  const side = join(dataDir, SIDE_FILE);
  for (const suffix of ['', '-wal', '-shm']) if (existsSync(side + suffix)) unlinkSync(side + suffix); // an interrupted salvage's output
  const s = inspectDb(dataDir);
  const pending = unfinishedQuarantine(dataDir);
  const segments = listSegments(segmentDir(dataDir)).length > 0;
  if (s.state === 'ok' || ((s.state === 'missing' || s.state === 'empty') && !segments && pending === null)) {
    return { db: openDb(dataDir, { ...o, create: true }), salvage: null };
  }
  // Quarantine (never delete), then build the salvaged database in a side file.
  const quarantine = s.state === 'missing' && pending !== null ? pending : quarantineDb(dataDir, s.state, now);
  const oldFile = existsSync(join(quarantine, DB_FILE)) ? join(quarantine, DB_FILE) : null;
  const sideDb = openDb(dataDir, { ...o, create: true, file: SIDE_FILE });
  let report: SalvageReport;
  try {
    report = salvage(sideDb, dataDir, oldFile, quarantine, s.state, s.state === 'unreadable' ? s.error : null, o.uplinks, now);
    sideDb.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    sideDb.close();
  }
  renameSync(side, join(dataDir, DB_FILE));
  syncDir(dataDir);
  return { db: openDb(dataDir, { ...o, create: true }), salvage: report };
}

/** True when `e` says the file's content is bad (corruption), not the disk. */
export function isContentError(e: unknown): boolean {
  return CONTENT_CODES.test(errorCode(e) ?? '');
}

export type { SalvageReport };
