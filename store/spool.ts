/**
 * The spool: where batches go while the store is unavailable (STORE_UNAVAILABLE), in
 * `store.spoolDir` (`/tmp/recovery_cache` in production), until they are imported back
 * (store/spool-import.ts).
 *
 * Files `spool-<start ms>-<n>.hfs` (0600 in a 0700 folder), append-only, in the record format of
 * the segment files (store/segment-record.ts): batch records (the body as the codec made it:
 * compressed and, with encryption on, AES-256-GCM with the batch key as additional data; every
 * record and body checksummed), source cursors, and acknowledgements of batches sent while the
 * store was down. A file rolls at SPOOL_FILE_BYTES, so an import takes one bounded file at a time.
 *
 * Bounded by `store.spoolMaxBytes`: beyond it append() refuses and the caller counts the batches
 * as dropped. Durability follows `store.synchronous`: FULL syncs every append, NORMAL at most
 * every SYNC_EVERY_MS and when a file rolls (a long outage must not fsync every commit tick on
 * flash), OFF never.
 */
import { closeSync, fdatasyncSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from './errors.js';
import type { SealedBatch } from './outbox.js';
import { recordHeadOf } from './outbox.js';
import { ackRecord, cursorRecord, FILE_HEADER_BYTES, fileFormat, scanRecords, type ScanResult } from './segment-record.js';
import { createRecordFile, syncDir } from './segment-reader.js';
import type { SyncLevel } from './segments.js';

export const SPOOL_FILE_BYTES = 4 * 1024 * 1024;
const SYNC_EVERY_MS = 2000;
const NAME = /^spool-(\d+)-(\d+)\.hfs$/;

/** Spool files in `dir`, oldest first ([] when the folder does not exist). */
export function spoolFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => NAME.test(n))
    .sort((a, b) => {
      const [, ta, na] = NAME.exec(a)!;
      const [, tb, nb] = NAME.exec(b)!;
      return Number(ta) - Number(tb) || Number(na) - Number(nb);
    })
    .map((n) => join(dir, n));
}

function sizeOf(f: string): number {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}

/** The records of one spool file (a torn tail or rotten bytes skipped and counted). */
export function readSpoolFile(file: string): ScanResult {
  const buf = readFileSync(file);
  if (fileFormat(buf).kind !== 'spool') return { records: [], badBytes: buf.length, badRuns: [0], badBodies: 0 };
  return scanRecords(buf);
}

/**
 * Creates the spool folder 0700, and refuses one that is not a directory of ours that nobody else
 * can read or write: the default lives under /tmp, where anyone could have made it (or a symlink
 * by that name) first.
 */
export function ensureSpoolDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.() ?? st.uid;
  if (!st.isDirectory()) throw new StoreError('DATA_DIR_INSECURE', 'the spool folder is not a directory (a symlink?)', dir);
  if (st.uid !== uid) throw new StoreError('DATA_DIR_INSECURE', `the spool folder belongs to uid ${st.uid}, not to this process (${uid})`, dir);
  if ((st.mode & 0o077) !== 0) throw new StoreError('DATA_DIR_INSECURE', `mode ${(st.mode & 0o777).toString(8)}; run chmod 700 ${dir}`, dir);
}

export class SpoolWriter {
  private fd = -1;
  private file: string | null = null;
  private size = 0;
  private seq = 0;
  private lastSync = 0;
  private dirty = false;
  /** Bytes in every spool file of the folder. */
  private total: number;

  /** `fileBytes`: the roll size of a file (tests make it small). */
  constructor(
    readonly dir: string,
    readonly maxBytes: number,
    private readonly level: SyncLevel,
    private readonly now: () => number = Date.now,
    private readonly fileBytes = SPOOL_FILE_BYTES,
  ) {
    this.total = spoolFiles(dir).reduce((n, f) => n + sizeOf(f), 0);
  }

  /** Bytes spooled and not imported yet. */
  get bytes(): number {
    return this.total;
  }

  /** The file being appended to (not to be imported until closed), if any. */
  get current(): string | null {
    return this.file;
  }

  /**
   * Appends batches (and the source cursors after them) as one write; false, and nothing
   * written, when that would pass maxBytes. Throws on a disk error.
   */
  appendBatches(batches: readonly SealedBatch[], cursors: ReadonlyMap<string, number>): boolean {
    const bufs: Buffer[] = [];
    for (const b of batches) bufs.push(recordHeadOf(b), b.payload.body);
    for (const [device, cursor] of cursors) bufs.push(cursorRecord({ device, cursor }));
    return this.write(bufs);
  }

  /** Records that a spooled (or rescued) batch was acknowledged by an uplink. */
  appendAck(key: string, uplink: string, requestAt: number, ackAt: number): boolean {
    return this.write([ackRecord({ key, uplink, requestAt, ackAt })]);
  }

  private write(bufs: Buffer[]): boolean {
    const bytes = bufs.reduce((n, b) => n + b.length, 0);
    if (this.total + bytes + FILE_HEADER_BYTES > this.maxBytes) return false;
    if (this.fd >= 0 && this.size + bytes > this.fileBytes) this.close();
    this.open();
    let done = writevSync(this.fd, bufs, this.size);
    // A short write (a nearly full disk) is finished piece by piece or fails with the disk's error.
    if (done < bytes) {
      const all = Buffer.concat(bufs);
      while (done < bytes) done += writeSync(this.fd, all, done, bytes - done, this.size + done);
    }
    this.size += bytes;
    this.total += bytes;
    this.dirty = true;
    const t = this.now();
    if (this.level >= 2 || (this.level === 1 && t - this.lastSync >= SYNC_EVERY_MS)) this.sync();
    return true;
  }

  private open(): void {
    if (this.fd >= 0) return;
    ensureSpoolDir(this.dir);
    const file = join(this.dir, `spool-${this.now()}-${this.seq++}.hfs`);
    const fd = createRecordFile(file, 'spool');
    if (this.level > 0) syncDir(this.dir);
    this.fd = fd;
    this.file = file;
    this.size = FILE_HEADER_BYTES;
    this.total += FILE_HEADER_BYTES;
  }

  sync(): void {
    if (this.fd >= 0 && this.dirty && this.level > 0) fdatasyncSync(this.fd);
    this.dirty = false;
    this.lastSync = this.now();
  }

  /** Syncs and closes the current file: it can be imported now. */
  close(): void {
    if (this.fd < 0) return;
    try {
      this.sync();
    } finally {
      closeSync(this.fd);
      this.fd = -1;
      this.file = null;
    }
  }

  /** A spool file was imported: it goes, and its bytes with it. */
  remove(file: string): void {
    let n = 0;
    try {
      n = statSync(file).size;
    } catch {
      // already gone
    }
    unlinkSync(file);
    this.total = Math.max(0, this.total - n);
    if (this.level > 0) syncDir(this.dir);
  }
}
