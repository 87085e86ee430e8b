/**
 * What remote configuration keeps across restarts, in `<dataDir>/remote-state.json` (0600): the
 * last known good config (the signed message itself, so it is verified again at each start
 * against the keys the local file trusts now) and the replay marks: the highest config version
 * and command sequence number taken. Written atomically (temp file, fsync, rename, fsync of the
 * folder): a power cut leaves the old state or the new, never half of one.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const STATE_FILE = 'remote-state.json';

/** A config that passed its health check; `message` is the config/set message as received. */
export interface KnownGood {
  version: number;
  hash: string;
  appliedAt: number;
  message: { version: number; payload: string; keyId: string; signature: string };
}

export interface RemoteState {
  /** null: the local file alone is the known good config. */
  good: KnownGood | null;
  /** The highest config version with a valid signature ever taken (applied, or tried and rolled back). */
  highestVersion: number;
  /** The highest command sequence number taken. */
  highestSeq: number;
}

export const EMPTY_STATE: RemoteState = Object.freeze({ good: null, highestVersion: 0, highestSeq: 0 });

function num(v: unknown): number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/**
 * Reads the state; a missing file is the empty state, an unreadable or malformed one is the
 * empty state with a problem to log (the replay marks then restart from the known-good version).
 */
export function readState(dataDir: string): { state: RemoteState; problem?: string } {
  let text: string;
  try {
    text = readFileSync(join(dataDir, STATE_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: { ...EMPTY_STATE } };
    return { state: { ...EMPTY_STATE }, problem: `cannot read ${STATE_FILE}: ${(e as Error).message}` };
  }
  try {
    const o = JSON.parse(text) as Partial<RemoteState>;
    const g = o.good;
    const good =
      g && typeof g === 'object' && g.message && typeof g.message.payload === 'string' && typeof g.hash === 'string'
        ? { version: num(g.version), hash: g.hash, appliedAt: num(g.appliedAt), message: g.message }
        : null;
    return { state: { good, highestVersion: Math.max(num(o.highestVersion), good?.version ?? 0), highestSeq: num(o.highestSeq) } };
  } catch (e) {
    return { state: { ...EMPTY_STATE }, problem: `${STATE_FILE} is not JSON: ${(e as Error).message}` };
  }
}

/** Writes the state atomically, mode 0600. Throws on failure (the caller refuses the message). */
export function writeState(dataDir: string, state: RemoteState): void {
  const file = join(dataDir, STATE_FILE);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(dataDir, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
