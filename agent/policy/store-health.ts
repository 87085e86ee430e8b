/**
 * Store failures, pure: what an error from SQLite or the file system says about the store, what
 * must be rescued from the failing connection before it is let go, and how long to wait before
 * trying it again. agent/storage/keeper.ts acts on it.
 *
 * | kind     | errors                                      | rescue (store/rescue.ts)                      |
 * | full     | SQLITE_FULL, ENOSPC, EDQUOT                  | none: the files are intact                    |
 * | readonly | SQLITE_READONLY*, EROFS, EACCES, EPERM       | rows since the last complete checkpoint       |
 * | io       | SQLITE_IOERR*, EIO                           | rows since the last complete checkpoint       |
 * | corrupt  | SQLITE_CORRUPT*, SQLITE_NOTADB              | none: salvage re-indexes the segment records  |
 * | vanished | ENOENT, ENOTDIR, SQLITE_CANTOPEN, a changed inode | every pending row whose body still reads |
 * | busy     | SQLITE_BUSY, SQLITE_LOCKED (another writer held the lock past the busy timeout) | none |
 * | other    | anything else                               | rows since the last complete checkpoint       |
 */

export type StoreFailureKind = 'full' | 'readonly' | 'io' | 'corrupt' | 'vanished' | 'busy' | 'other';

export interface StoreFailure {
  kind: StoreFailureKind;
  /** The SQLite or errno code, e.g. SQLITE_IOERR_WRITE, ENOSPC. */
  errno: string;
  message: string;
}

const TABLE: readonly [RegExp, StoreFailureKind][] = [
  [/^(SQLITE_FULL|ENOSPC|EDQUOT)$/, 'full'],
  [/^(SQLITE_READONLY\w*|EROFS|EACCES|EPERM)$/, 'readonly'],
  [/^(SQLITE_IOERR\w*|EIO)$/, 'io'],
  [/^(SQLITE_CORRUPT\w*|SQLITE_NOTADB)$/, 'corrupt'],
  [/^(ENOENT|ENOTDIR|SQLITE_CANTOPEN\w*)$/, 'vanished'],
  [/^(SQLITE_BUSY\w*|SQLITE_LOCKED\w*)$/, 'busy'],
];

/** The code of an error: its own, or that of its cause (a HoldfastError wrapping a SQLite error). */
function codeOf(e: unknown, depth = 0): string | undefined {
  if (typeof e !== 'object' || e === null || depth > 3) return undefined;
  const c = (e as { code?: unknown }).code;
  if (typeof c === 'string' && !/^(STORE_UNAVAILABLE|STORAGE_FULL)$/.test(c)) return c;
  return codeOf((e as { cause?: unknown }).cause, depth + 1);
}

export function classifyStoreError(e: unknown): StoreFailure {
  const errno = codeOf(e) ?? 'UNKNOWN';
  const kind = TABLE.find(([re]) => re.test(errno))?.[1] ?? 'other';
  return { kind, errno, message: e instanceof Error ? e.message : String(e) };
}

export type RescueScope = 'none' | 'since-checkpoint' | 'all-readable';

export function rescueScope(kind: StoreFailureKind): RescueScope {
  switch (kind) {
    case 'full':
    case 'corrupt':
    case 'busy':
      return 'none';
    case 'vanished':
      return 'all-readable';
    default:
      return 'since-checkpoint';
  }
}

export const PROBE_BASE_MS = 500;
export const PROBE_MAX_MS = 30_000;

/** The wait before the n-th (0-based) attempt to reopen the store: doubling from PROBE_BASE_MS to PROBE_MAX_MS, +-20 %. */
export function probeDelayMs(attempt: number, rand: () => number): number {
  const base = Math.min(PROBE_MAX_MS, PROBE_BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.8 + 0.4 * rand()));
}
