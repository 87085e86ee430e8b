/**
 * Payload bodies in append-only segment files, `<dataDir>/segments/<id>.seg` (files 0600 in a
 * 0700 directory, like the database). A body (compressed and encrypted by store/codec.ts, the
 * same bytes as a body kept in its row) is appended with write() BEFORE the transaction that
 * inserts its `payloads` row, and the row holds (body_segment, body_offset, body_length) instead
 * of the body. SQLite then keeps only the small rows: a body is written once, not once into the
 * WAL and again into the database file at a checkpoint.
 *
 * Durability (docs/durability.md): a process crash loses nothing, because write() puts the bytes
 * in the page cache before the commit. For power loss the segment must be on disk before any row
 * that refers to it is:
 *   - FULL (or EXTRA): beforeCommit() fdatasyncs the segment before each commit;
 *   - NORMAL: no Holdfast connection autocheckpoints (store/db.ts sets wal_autocheckpoint = 0);
 *     the agent checkpoints itself in afterCommit(), and fdatasyncs the segment first. Commits
 *     since the last checkpoint may reach the disk (the kernel writes WAL pages back whenever it
 *     likes) before their bodies do: after a power cut such a row reads as PAYLOAD_UNREADABLE,
 *     which is the "last commits since the checkpoint" NORMAL already gives up, reported as such;
 *   - OFF: no fsync at all.
 * A rolled (closed) segment is fdatasynced when it is closed, so only the active one is ever dirty.
 *
 * One writer per database file: the agent's, held by its Store (store/store.ts); it recovers the
 * directory when it is created (store/segment-gc.ts). Readers (the lanes, tools) pread bodies
 * with a small cache of open files.
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, readSync, writeSync, writevSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DB } from './db.js';
import { WAL_CHECKPOINT_BYTES } from './db.js';
import { createRecordFile, SegmentReader, segmentName, syncDir } from './segment-reader.js';
import { FILE_HEADER_BYTES } from './segment-record.js';

export { listSegments, READER_FDS, SEGMENT_DIR, segmentDir, segmentName, SegmentReader, syncDir } from './segment-reader.js';

/**
 * A segment rolls once it would pass 32 MiB (~10,000 batches of 3.4 KB). Space comes back a
 * whole file at a time once no row refers to it, so smaller files free space sooner after a
 * purge; larger ones mean fewer files and fewer fsyncs at a roll. 32 MiB keeps a gateway's
 * backlog in tens of files.
 */
export const SEGMENT_BYTES = 32 * 1024 * 1024;
/**
 * Without `PRAGMA wal_checkpoint(NOOP)` (SQLite before 3.51, which reads it as PASSIVE: a
 * checkpoint before the sync) the WAL's size cannot be asked for; the agent then syncs and
 * checkpoints every this many commits instead.
 */
export const CHECKPOINT_EVERY_COMMITS = 64;

export interface SegmentRef {
  segment: number;
  offset: number;
  length: number;
}

/** The `synchronous` level of a connection: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
export type SyncLevel = 0 | 1 | 2 | 3;

/** Where appending stood before an append (SegmentWriter.mark), to take back bytes no row will refer to. */
export interface AppendMark {
  id: number;
  size: number;
}

/** Appends bodies to the active segment and makes them durable before SQLite does (see header). */
export class SegmentWriter {
  readonly reader: SegmentReader;
  private fd = -1;
  private synced = 0;
  private dirDirty = false;
  /** WAL frames above which afterCommit() checkpoints (SQLite's own default is 1000 frames). */
  readonly checkpointFrames: number;
  /** Checkpoints run (diagnostics, bench). */
  checkpoints = 0;
  /**
   * The highest payload id whose row and body were on disk at the last complete checkpoint: a
   * store that fails (a read-only remount, a vanished directory) may lose rows above it that the
   * page cache still shows, so those are what the agent rescues (store/rescue.ts).
   */
  durableId = 0;
  /** Whether this SQLite knows wal_checkpoint(NOOP) (3.51+); see CHECKPOINT_EVERY_COMMITS. */
  private readonly canAskWal: boolean;
  private commits = 0;

  private id: number;
  private size: number;
  /** The active file exists already (recovery goes on appending to it); else it is created. */
  private exists: boolean;

  /**
   * `at`: where appending goes on (from recovery). `rollBytes`: the roll size (a small disk's
   * budget makes it smaller, tests too). `checkpointBytes`: the WAL size that triggers a checkpoint.
   */
  constructor(
    private readonly db: DB,
    readonly dir: string,
    at: { id: number; size: number; exists: boolean },
    readonly level: SyncLevel,
    readonly rollBytes = SEGMENT_BYTES,
    checkpointBytes = WAL_CHECKPOINT_BYTES,
  ) {
    this.reader = new SegmentReader(dir);
    this.id = at.id;
    this.size = at.size;
    this.exists = at.exists;
    this.synced = at.size;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    this.checkpointFrames = Math.max(16, Math.round(checkpointBytes / pageSize));
    const [major, minor] = (db.prepare('SELECT sqlite_version()').pluck().get() as string).split('.').map(Number);
    this.canAskWal = major > 3 || (major === 3 && minor >= 51);
  }

  /** The segment appends go to. */
  get active(): number {
    return this.id;
  }

  /** Bytes in the active segment (its file header included once it exists). */
  get activeBytes(): number {
    return this.size;
  }

  /**
   * Appends the bodies in order (one writev per segment touched); rolls at rollBytes. With
   * `heads` (store/segment-record.ts), each body is preceded by its record header and the
   * references point at the bodies.
   */
  append(bodies: readonly Buffer[], heads?: readonly Buffer[]): SegmentRef[] {
    const refs: SegmentRef[] = [];
    const len = (k: number) => bodies[k].length + (heads?.[k].length ?? 0);
    let i = 0;
    while (i < bodies.length) {
      if (this.size > FILE_HEADER_BYTES && this.size + len(i) > this.rollBytes) this.roll();
      this.open();
      let j = i;
      let bytes = 0;
      const bufs: Buffer[] = [];
      while (j < bodies.length && (j === i || this.size + bytes + len(j) <= this.rollBytes)) {
        const h = heads?.[j];
        if (h) bufs.push(h);
        bufs.push(bodies[j]);
        refs.push({ segment: this.id, offset: this.size + bytes + (h?.length ?? 0), length: bodies[j].length });
        bytes += len(j);
        j++;
      }
      this.write(bufs, bytes);
      i = j;
    }
    return refs;
  }

  /** Where appending stands now. */
  mark(): AppendMark {
    return { id: this.id, size: this.size };
  }

  /**
   * Takes back what was appended since `m` when no row will refer to it (its transaction failed),
   * so the next append writes over it; only within the same segment (after a roll the bytes stay,
   * unreferenced, until the file goes). The file is cut too when it can be.
   */
  rewind(m: AppendMark): void {
    if (m.id !== this.id || m.size >= this.size) return;
    this.size = m.size;
    this.synced = Math.min(this.synced, m.size);
    try {
      if (this.fd >= 0) ftruncateSync(this.fd, m.size);
    } catch {
      // a read-only or failing disk: the bytes stay beyond the end that rows refer to, and are cut at the next open
    }
  }

  /** A body of segment `id`, through the writer's own descriptor when it is the active one (it stays readable if its directory is removed). */
  readBody(id: number, offset: number, length: number): Buffer {
    if (id !== this.id || this.fd < 0) return Buffer.from(this.reader.read(id, offset, length));
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, offset + got);
      if (n === 0) throw new Error(`segment ${segmentName(id)} ends before the body: ${got} of ${length} bytes at offset ${offset}`);
      got += n;
    }
    return buf;
  }

  /** Closes the active segment so that the next append starts a new one (the old one can then be collected when no row refers to it). */
  rollNow(): void {
    if (this.exists) this.roll();
  }

  private write(bufs: Buffer[], bytes: number): void {
    let done = writevSync(this.fd, bufs, this.size);
    // A regular file takes it all or fails (ENOSPC); a short write is finished piece by piece.
    for (let k = 0, at = 0; done < bytes && k < bufs.length; at += bufs[k].length, k++) {
      const end = at + bufs[k].length;
      while (done < end) done += writeSync(this.fd, bufs[k], done - at, end - done, this.size + done);
    }
    this.size += bytes;
  }

  /** FULL/EXTRA: the appended bytes reach the disk before the commit that refers to them. */
  beforeCommit(): void {
    if (this.level >= 2) this.sync();
  }

  /**
   * After any commit on the agent's connection: once the WAL holds checkpointFrames frames not
   * yet copied back, fdatasync the segment, then checkpoint (PASSIVE: never waits for readers).
   */
  afterCommit(): void {
    if (!this.canAskWal) {
      if (++this.commits % CHECKPOINT_EVERY_COMMITS === 0) this.checkpoint();
      return;
    }
    const [w] = this.db.pragma('wal_checkpoint(NOOP)') as { log: number; checkpointed: number }[];
    if (!w || w.log - w.checkpointed < this.checkpointFrames) return;
    this.checkpoint();
  }

  /** fdatasync the segment (and its directory after a new file), then a PASSIVE checkpoint. */
  checkpoint(): void {
    this.sync();
    const top = (this.db.prepare('SELECT coalesce(max(id), 0) FROM payloads').pluck().get() as number) ?? 0;
    const [r] = this.db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    // Only a checkpoint that copied the whole WAL back makes every row so far durable.
    if (r && r.busy === 0 && r.log === r.checkpointed) this.durableId = top;
    this.checkpoints++;
  }

  /** Makes every appended byte (and the active file's directory entry) durable; no-op with OFF. */
  sync(): void {
    if (this.level === 0) return;
    if (this.fd >= 0 && this.size > this.synced) fdatasyncSync(this.fd);
    this.synced = this.size;
    if (this.dirDirty) syncDir(this.dir);
    this.dirDirty = false;
  }

  private open(): void {
    if (this.fd >= 0) return;
    const file = join(this.dir, segmentName(this.id));
    if (this.exists) {
      this.fd = openSync(file, 'r+');
      return;
    }
    const fd = createRecordFile(file, 'segment');
    this.fd = fd;
    this.size = FILE_HEADER_BYTES;
    this.synced = 0;
    this.exists = true;
    this.dirDirty = true;
  }

  private roll(): void {
    this.sync();
    this.closeFd();
    this.id++;
    this.size = 0;
    this.synced = 0;
    this.exists = false;
  }

  private closeFd(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Syncs and closes the files (the database is closed after it: its close checkpoints). */
  close(): void {
    this.sync();
    this.closeFd();
    this.reader.close();
  }
}

/** The data directory of a database connection (null for an in-memory or temporary one). */
export function dataDirOf(db: DB): string | null {
  return db.memory || db.name === '' ? null : dirname(db.name);
}
