/**
 * Reading payload bodies from segment files (store/segments.ts has the writer): where the files
 * are, what they are called, and a reader that preads a body with a small cache of open files.
 * The agent's lanes and tools use it.
 */
import { closeSync, fsyncSync, openSync, readdirSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FILE_HEADER_BYTES, fileHeader, type FileKind } from './segment-record.js';

export const SEGMENT_DIR = 'segments';
/** Open segment files a reader keeps (least recently used closed first). */
export const READER_FDS = 8;

export const segmentName = (id: number) => `${String(id).padStart(10, '0')}.seg`;
export const segmentDir = (dataDir: string) => join(dataDir, SEGMENT_DIR);

/** The segment ids in `dir`, ascending ([] when the directory does not exist). */
export function listSegments(dir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => (/^\d{10}\.seg$/.test(n) ? [Number(n.slice(0, 10))] : [])).sort((a, b) => a - b);
}

/** fsync of a directory: makes the creation (or removal) of its files durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates a segment or spool file (0600, read-write: a rescue reads bodies back through it) with
 * its format header, and returns its descriptor. On a full or failing disk no half-made file stays
 * behind to block the next attempt: it is removed and the disk's error thrown.
 */
export function createRecordFile(file: string, kind: FileKind): number {
  const fd = openSync(file, 'wx+', 0o600);
  try {
    writeSync(fd, fileHeader(kind), 0, FILE_HEADER_BYTES, 0);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(file);
    } catch {
      // the caller reports the disk's own error
    }
    throw e;
  }
  return fd;
}

/** What reads a body (a SegmentReader; a test may count or cut its reads). */
export interface BodyReader {
  read(id: number, offset: number, length: number, into?: Buffer): Buffer;
}

/** Reads bodies with pread; keeps up to READER_FDS files open. */
export class SegmentReader implements BodyReader {
  private readonly fds = new Map<number, number>();

  constructor(readonly dir: string) {}

  /**
   * The `length` bytes at `offset` of segment `id`, in `into` when it is large enough (a view of
   * it, valid until the next read into it) else in a new buffer. Throws, with a message that
   * says what is missing, when the file or the range is not there.
   */
  read(id: number, offset: number, length: number, into?: Buffer): Buffer {
    const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let fd: number;
    try {
      fd = this.fd(id);
    } catch (e) {
      throw new Error(`segment ${segmentName(id)} cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    if (got < length) throw new Error(`segment ${segmentName(id)} ends before the body: ${got} of ${length} bytes at offset ${offset}`);
    return buf;
  }

  private fd(id: number): number {
    let fd = this.fds.get(id);
    if (fd !== undefined) {
      this.fds.delete(id);
      this.fds.set(id, fd);
      return fd;
    }
    fd = openSync(join(this.dir, segmentName(id)), 'r');
    this.fds.set(id, fd);
    if (this.fds.size > READER_FDS) this.forget(this.fds.keys().next().value as number);
    return fd;
  }

  /** Closes the file of a segment (it was deleted, or is not needed any more). */
  forget(id: number): void {
    const fd = this.fds.get(id);
    if (fd === undefined) return;
    this.fds.delete(id);
    closeSync(fd);
  }

  close(): void {
    for (const id of [...this.fds.keys()]) this.forget(id);
  }
}
