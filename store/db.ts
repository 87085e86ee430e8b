/**
 * Opening the store: the data directory (0700, refused if group/world accessible), SQLite in WAL
 * mode with the configured `synchronous` level and busy timeout, and schema migrations keyed on
 * `PRAGMA user_version`. Admin commands open the same file next to a live agent (WAL readers
 * never block the writer; writers wait up to busyTimeoutMs).
 */
import Database from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HoldfastError } from '../agent/errors.js';
import { MIGRATIONS } from './migrations.js';

export type DB = Database.Database;

export interface OpenOptions {
  synchronous?: 'OFF' | 'NORMAL' | 'FULL';
  busyTimeoutMs?: number;
  /** Create the directory if missing (the agent does; admin commands do not). */
  create?: boolean;
  readonly?: boolean;
}

export const DB_FILE = 'holdfast.db';

/** Ensures the data directory exists with mode 0700 and is not accessible to group or others. */
export function ensurePrivateDir(dir: string, create: boolean): void {
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new HoldfastError('STORE_UNAVAILABLE', 'data directory does not exist (has the agent run yet?)', dir);
  }
  if (!st.isDirectory()) throw new HoldfastError('STORE_UNAVAILABLE', 'not a directory', dir);
  if ((st.mode & 0o077) !== 0) {
    throw new HoldfastError('DATA_DIR_INSECURE', `mode ${(st.mode & 0o777).toString(8)}; run chmod 700 ${dir}`, dir);
  }
}

export function openDb(dataDir: string, opts: OpenOptions = {}): DB {
  ensurePrivateDir(dataDir, opts.create ?? false);
  const file = join(dataDir, DB_FILE);
  let db: DB;
  try {
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: !(opts.create ?? false) });
  } catch (e) {
    throw new HoldfastError('STORE_UNAVAILABLE', (e as Error).message, file, { cause: e });
  }
  try {
    db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
    if (!opts.readonly) {
      checkVersion(db);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      db.pragma('foreign_keys = ON');
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
    throw new HoldfastError('SCHEMA_TOO_NEW', `database schema ${have} is newer than this build (${MIGRATIONS.length}); upgrade Holdfast`);
  }
  return have;
}

export function migrate(db: DB): void {
  const have = checkVersion(db);
  for (let v = have; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
