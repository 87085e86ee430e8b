/**
 * Reading payload bodies from segment files (store/segments.ts has the writer): where the files
 * are, what they are called, and a reader that preads a body with a small cache of open files.
 * The agent's lanes, the decode worker (its own reader per database) and tools use it.
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

/** What reads a body: a SegmentReader, or a SpanReader in front of one. */
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

/** A body's place: segment id, offset and length (a row's body_segment, body_offset, body_length). */
export interface BodyRef {
  seg: number;
  offset: number;
  length: number;
}

/** A span read ahead covers at most this many bytes... */
export const SPAN_MAX_BYTES = 1024 * 1024;
/** ...and skips at most this many bytes between two bodies (bodies of payloads with no task here). */
export const SPAN_MAX_GAP = 16 * 1024;

/**
 * How many of `refs`, from `from` on, one pread can serve: bodies of one segment at ascending
 * offsets, at most SPAN_MAX_GAP apart, within SPAN_MAX_BYTES of the first. Rows of a backlog are
 * read oldest first and their bodies were appended in that order, so a request's rows are
 * usually one span.
 */
export function spanLength(refs: readonly (BodyRef | null)[], from: number): number {
  const first = refs[from];
  if (!first) return 1;
  let end = first.offset + first.length;
  let n = 1;
  for (let i = from + 1; i < refs.length; i++) {
    const r = refs[i];
    if (!r || r.seg !== first.seg || r.offset < end || r.offset - end > SPAN_MAX_GAP || r.offset + r.length - first.offset > SPAN_MAX_BYTES) break;
    end = r.offset + r.length;
    n++;
  }
  return n;
}

/**
 * Serves body reads from one span of a segment read with a single pread (the decode worker reads
 * the bodies of a request's rows this way: one system call instead of one a row); a read outside
 * the span, or any read after the span could not be read whole, goes to the SegmentReader with
 * its own precise error. A body served from the span is a view of the span buffer, valid until
 * the next load(); the worker drops the span at the start of each request, so nothing is ever
 * served from an earlier request's read.
 */
export class SpanReader implements BodyReader {
  private buf = Buffer.allocUnsafeSlow(256 * 1024);
  private seg = -1;
  private start = 0;
  private end = 0;

  constructor(private readonly reader: SegmentReader) {}

  /** Serves nothing from the span any more (a new request starts without one). */
  drop(): void {
    this.seg = -1;
  }

  /** Reads [start, end) of segment `seg` ahead; on failure nothing is served from the span. */
  load(seg: number, start: number, end: number): void {
    this.seg = -1;
    const n = end - start;
    if (n > this.buf.length) this.buf = Buffer.allocUnsafeSlow(Math.ceil(n / 65536) * 65536);
    try {
      this.reader.read(seg, start, n, this.buf);
    } catch {
      return; // each body is then read on its own, and fails with its own message
    }
    this.seg = seg;
    this.start = start;
    this.end = end;
  }

  read(id: number, offset: number, length: number, into?: Buffer): Buffer {
    if (id === this.seg && offset >= this.start && offset + length <= this.end) return this.buf.subarray(offset - this.start, offset - this.start + length);
    return this.reader.read(id, offset, length, into);
  }
}
