/**
 * Decode worker (worker_threads), started by store/decode-pool.ts. It reads a lane's backlog
 * ahead on its own read-only connection to the store (TASK_SQL.fresh, the query the lane itself
 * would run), decrypts (AES-256-GCM) and inflates each payload, and sends the tasks back with the
 * inflated bytes transferred, not copied, each in a buffer with `room.head` free bytes before
 * and `room.tail` after them, so the driver can frame the readings in place. The main thread then
 * only publishes.
 *
 * Requests are served one at a time in arrival order, so the replies of one stream arrive in
 * order and the stream's cursor (the last task id read) is always where the previous reply ended.
 * A payload that does not decode is a row with `error` set (the lane dead-letters it exactly as
 * if it had decoded it itself); a failure to read the store is a reply with `error`.
 *
 * Bodies are read from the segment files (store/segments.ts) with pread: the bodies of a
 * request's rows usually lie one after another in one segment, so one pread reads them all (a
 * span, segment-reader.ts SpanReader), else each is read on its own into one scratch buffer. Each
 * body is decoded before the next read, so reading allocates nothing; the segment files stay
 * open while a stream uses the database (at most READER_FDS of them).
 */
import Database from 'better-sqlite3';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { InflateSizer, keyObjects, openPayload } from './codec.js';
import type { WireRow, WorkerInit, WorkerReply, WorkerRequest } from './decode-pool.js';
import { rawToTask, TASK_SQL } from './tasks.js';
import { SegmentReader, SpanReader, segmentDir, spanLength, type BodyRef } from './segment-reader.js';
import { dirname } from 'node:path';
import { statSync } from 'node:fs';

interface Conn {
  /** The file and its identity (device and inode). */
  key: string;
  db: Database.Database;
  fresh: Database.Statement;
  segments: SegmentReader;
  spans: SpanReader;
  users: number;
}

interface Stream {
  /** The shared arena (decode-pool.ts Arena) as bytes, its slot size and its free slots. */
  arena: Uint8Array | null;
  slotBytes: number;
  freeSlots: number[];
  file: string;
  uplink: string;
  head: number;
  tail: number;
  cursor: number;
  beforeId: number;
  conn: Conn | null;
  error: string | null;
}

/** Handed-back buffers kept at most. */
const MAX_FREE = 256;

/** What the worker does, as a class (the worker's message loop below drives it; tests can too). */
export class BacklogReader {
  private readonly keys;
  private readonly sizer = new InflateSizer();
  private readonly conns = new Map<string, Conn>();
  private readonly streams = new Map<number, Stream>();
  /** Buffers handed back by the main thread, filled again before a new one is allocated. */
  private readonly free: ArrayBuffer[] = [];
  /** Where a body read from its segment goes until it is decoded. */
  private scratch = Buffer.allocUnsafeSlow(64 * 1024);

  constructor(init: WorkerInit) {
    this.keys = keyObjects(init.keys === null ? null : new Map(init.keys.map(([id, raw]) => [id, Buffer.from(raw)])));
  }

  handle(m: WorkerRequest): { reply: WorkerReply; transfer: ArrayBuffer[] } | null {
    if (m.type === 'open') {
      const slots = m.arena ? Math.floor(m.arena.sab.byteLength / m.arena.slotBytes) : 0;
      const s: Stream = {
        arena: m.arena ? new Uint8Array(m.arena.sab) : null,
        slotBytes: m.arena?.slotBytes ?? 0,
        // Lowest slot first (pop takes from the end): the pages touched stay few while the drain is shallow.
        freeSlots: Array.from({ length: slots }, (_, i) => slots - 1 - i),
        file: m.file, uplink: m.uplink, head: m.room.head, tail: m.room.tail, cursor: m.afterId, beforeId: m.beforeId, conn: null, error: null,
      };
      try {
        s.conn = this.connect(m.file);
      } catch (e) {
        s.error = `cannot open ${m.file}: ${(e as Error).message}`;
      }
      this.streams.set(m.stream, s);
      return null;
    }
    if (m.type === 'close') {
      const s = this.streams.get(m.stream);
      this.streams.delete(m.stream);
      if (s) this.release(s.conn);
      return null;
    }
    for (const ab of m.recycle) if (this.free.length < MAX_FREE) this.free.push(ab);
    const s = this.streams.get(m.stream);
    if (s && m.slots) for (const i of m.slots) if (i >= 0 && i * s.slotBytes < (s.arena?.length ?? 0)) s.freeSlots.push(i);
    const transfer: ArrayBuffer[] = [];
    try {
      if (!s) throw new Error(`unknown stream ${m.stream}`);
      return { reply: { id: m.id, rows: this.next(s, m.n, transfer) }, transfer };
    } catch (e) {
      return { reply: { id: m.id, error: (e as Error).message }, transfer: [] };
    }
  }

  private connect(file: string): Conn {
    // Keyed by the file's identity too: a store reopened as a new file (a salvage, a re-created
    // directory, a remounted disk) must not be read through a connection to the old one.
    const st = statSync(file);
    const key = `${file}\u0000${st.dev}:${st.ino}`;
    let c = this.conns.get(key);
    if (!c) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      const segments = new SegmentReader(segmentDir(dirname(file)));
      c = { key, db, fresh: db.prepare(TASK_SQL.fresh).raw(true), segments, spans: new SpanReader(segments), users: 0 };
      this.conns.set(key, c);
    }
    c.users++;
    return c;
  }

  private release(c: Conn | null): void {
    if (!c || --c.users > 0) return;
    this.conns.delete(c.key);
    c.db.close();
    c.segments.close();
  }

  private next(s: Stream, n: number, transfer: ArrayBuffer[]): WireRow[] {
    if (s.error !== null || s.conn === null) throw new Error(s.error ?? 'stream not open');
    const conn = s.conn;
    const raw = conn.fresh.all(s.uplink, s.cursor, s.beforeId, n) as unknown[][];
    const refs = raw.map((r): BodyRef | null => (r[13] === null ? null : { seg: r[13] as number, offset: r[14] as number, length: r[15] as number }));
    const rows: WireRow[] = [];
    conn.spans.drop();
    let spanEnd = 0;
    for (let i = 0; i < raw.length; i++) {
      const r = raw[i];
      if (i >= spanEnd) {
        spanEnd = i + spanLength(refs, i);
        const a = refs[i];
        const b = refs[spanEnd - 1];
        if (a && b && spanEnd - i > 1) conn.spans.load(a.seg, a.offset, b.offset + b.length);
      }
      const need = r[15] as number | null;
      if (need !== null && need > this.scratch.length) this.scratch = Buffer.allocUnsafeSlow(Math.ceil(need / 4096) * 4096);
      const { payload, ...task } = rawToTask(r, conn.spans, this.scratch);
      let bytes: ArrayBuffer | null = null;
      let slot = -1;
      let offset = s.head;
      let length = 0;
      let error: string | null = null;
      try {
        const out = openPayload(this.keys, payload, task.key, this.sizer);
        length = out.length;
        if (s.arena !== null && s.head + length + s.tail <= s.slotBytes && s.freeSlots.length > 0) {
          slot = s.freeSlots.pop()!;
          offset = slot * s.slotBytes + s.head;
          s.arena.set(out, offset);
        } else {
          bytes = this.buffer(s.head + length + s.tail);
          new Uint8Array(bytes, s.head, length).set(out);
          transfer.push(bytes);
        }
      } catch (e) {
        error = (e as Error).message;
      }
      rows.push({ task, bytes, slot, offset, length, error });
    }
    if (raw.length > 0) s.cursor = raw[raw.length - 1][0] as number;
    return rows;
  }

  /** A handed-back buffer when the newest fits, else a new one (with 4 KB of slack for the next). */
  private buffer(need: number): ArrayBuffer {
    const ab = this.free.pop();
    if (ab && ab.byteLength >= need) return ab;
    return new ArrayBuffer(Math.ceil(need / 4096) * 4096);
  }

  close(): void {
    for (const c of this.conns.values()) {
      c.db.close();
      c.segments.close();
    }
    this.conns.clear();
    this.streams.clear();
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const reader = new BacklogReader(workerData as WorkerInit);
  port.on('message', (m: WorkerRequest) => {
    const r = reader.handle(m);
    if (r) port.postMessage(r.reply, r.transfer);
  });
}
