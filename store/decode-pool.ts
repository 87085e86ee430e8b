/**
 * Read-ahead for backlog drains: a small pool of decode workers (store/decode-worker.ts) that read
 * a lane's backlog tasks from the store on their own read-only connection, decrypt and inflate
 * the payloads, and hand back tasks with their readings as bytes. A lane draining a backlog then
 * spends its main thread on the wire: reading each row and the AES-GCM + inflate of each batch
 * happen on another core.
 *
 * The bytes travel in a per-stream arena of shared memory (Arena: ARENA_SLOTS slots of 64 KB,
 * reserved when the stream opens, its pages touched as slots are used): the worker writes a
 * task's readings into a free slot, the lane frames and sends them in place, and hands the slot
 * back when the send is settled, so a drain allocates and transfers nothing per batch (see
 * Arena). A task too large for a slot, or arriving when every slot is taken, comes in a
 * transferred buffer of its own.
 *
 * A lane opens a stream (its uplink's fresh tasks with afterId < id < beforeId, oldest first, the
 * same query as TaskQueue.fresh) and asks for the next n tasks as often as it likes; replies come
 * in order. Failure model:
 *   - a payload that does not decode is a row with `error` (the lane dead-letters it with
 *     PAYLOAD_UNREADABLE, exactly as if it had decoded it itself);
 *   - a worker that dies (crash, out of memory, terminated) or cannot read the store rejects the
 *     requests it held. Nothing was changed in the store: the lane still knows the last task it
 *     received and reads on from there itself, so no task is lost or skipped; it stays `pending`.
 *     The next stream starts a new worker; after MAX_CONSECUTIVE_FAILURES deaths without a good
 *     reply in between the pool refuses (streams fail at once) and lanes read inline.
 *
 * Workers start on the first stream (an agent that never drains a backlog never starts one), keep
 * the process alive only while a request is in hand, and stop once no stream has been open for
 * IDLE_MS, so a gateway whose backlog is drained does not keep a second V8 heap.
 *
 * Size: HOLDFAST_DECODE_WORKERS (0 = none: lanes read and decode on the main thread), else one
 * worker per core beyond the first, at most 2 (a 2-core gateway gets 1, a 1-core one none).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Keyring } from './codec.js';
import type { TaskMeta } from './tasks.js';

export interface WorkerInit {
  keys: [string, Uint8Array][] | null;
}

export type WorkerRequest =
  | { type: 'open'; stream: number; file: string; uplink: string; afterId: number; beforeId: number; room: FrameRoom; arena?: Arena }
  | { type: 'next'; stream: number; id: number; n: number; recycle: ArrayBuffer[]; slots?: number[] }
  | { type: 'close'; stream: number };

/**
 * Memory shared by the pool and the worker for one stream: `slots` slots of `slotBytes`. The
 * worker writes a task's readings (with their room) into a free slot, and the main thread reads
 * them in place through a Buffer view and hands the slot number back once the send is settled.
 * Nothing is allocated or transferred per task on either side, so a drain of thousands of 50 KB
 * batches adds no external memory to the lane's heap (a transferred buffer does, until a major
 * collection accounts for it). A task that does not fit, or finds no free slot, goes in a
 * transferred buffer of its own.
 */
export interface Arena {
  sab: SharedArrayBuffer;
  slotBytes: number;
}

export const ARENA_SLOTS = 128;
export const ARENA_SLOT_BYTES = 64 * 1024;

export interface WireRow {
  task: TaskMeta;
  /** [offset, offset + length) are the readings; the rest is free room (see FrameRoom). */
  bytes: ArrayBuffer | null;
  /** The arena slot holding the readings (then `bytes` is null and offset is in the arena), else -1. */
  slot: number;
  offset: number;
  length: number;
  error: string | null;
}

/** Free bytes kept before and after each task's readings, so a driver can frame them in place. */
export interface FrameRoom {
  head: number;
  tail: number;
}

/** Enough for the MQTT envelope's head (keys, ids and names of ordinary length) and its closing brace. */
export const DEFAULT_ROOM: FrameRoom = { head: 512, tail: 8 };

export interface WorkerReply {
  id: number;
  rows?: WireRow[];
  error?: string;
}

/**
 * A task read ahead: its readings as UTF-8 JSON bytes, or why its payload did not decode. The
 * readings sit in a buffer of their own with free room around them (`framable`).
 */
export interface AheadRow {
  task: TaskMeta;
  readings: Buffer | null;
  error: string | null;
}

export interface BacklogQuery {
  file: string;
  uplink: string;
  afterId: number;
  beforeId: number;
  room?: FrameRoom;
}

export interface BacklogStream {
  /**
   * The next (up to) n tasks after the previous reply, decoded; [] at the end. Rejects if the
   * reader failed. `recycle`: buffers of rows this stream delivered that are no longer used
   * anywhere (their sends completed); they are handed back (detached here) for the worker to
   * fill again; `slots`: the same for rows that came in the stream's arena (slotOf).
   */
  next(n: number, recycle?: ArrayBuffer[], slots?: number[]): Promise<AheadRow[]>;
  /** The arena slot a row's readings are in (this stream's arena), else null. */
  slotOf(readings: Buffer): number | null;
  /** Closes the stream (replies still to come are the caller's to ignore). */
  cancel(): void;
}

export interface ReadAhead {
  open(q: BacklogQuery): BacklogStream;
  /** Releases the reader (the last user of a shared pool stops its workers). */
  close(): Promise<void>;
}

export const IDLE_MS = 10_000;
export const MAX_CONSECUTIVE_FAILURES = 3;
export const MAX_DECODE_WORKERS = 8;

/** HOLDFAST_DECODE_WORKERS, else min(2, cores - 1). */
export function defaultDecodeWorkers(env: NodeJS.ProcessEnv = process.env, cores = availableParallelism()): number {
  const v = env.HOLDFAST_DECODE_WORKERS;
  if (v !== undefined && v.trim() !== '') {
    const n = Number(v);
    if (Number.isInteger(n) && n >= 0) return Math.min(n, MAX_DECODE_WORKERS);
  }
  return Math.max(0, Math.min(2, cores - 1));
}

interface Waiter {
  resolve: (r: AheadRow[]) => void;
  reject: (e: Error) => void;
  /** The stream's arena, whose slots the reply's rows may be in. */
  arena: SharedArrayBuffer;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Waiter>;
  streams: Set<number>;
  dead: Error | null;
}

const WORKER_URL = new URL('./decode-worker.js', import.meta.url);

export class DecodePool implements ReadAhead {
  private slots: Slot[] = [];
  private nextId = 1;
  private failures = 0;
  private closed = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly init: WorkerInit;
  /** Workers started so far (tests, diagnostics). */
  started = 0;

  constructor(
    ring: Keyring | null,
    readonly size: number,
    private readonly workerUrl: URL = WORKER_URL,
  ) {
    this.init = { keys: ring === null ? null : [...ring].map(([id, raw]) => [id, new Uint8Array(raw)]) };
  }

  /** True once the pool gave up starting workers (see header). */
  get disabled(): boolean {
    return this.failures >= MAX_CONSECUTIVE_FAILURES;
  }

  /** Workers alive now (tests, diagnostics). */
  get alive(): number {
    return this.slots.filter((s) => !s.dead).length;
  }

  open(q: BacklogQuery): BacklogStream {
    const refused = this.closed ? 'decode pool closed' : this.disabled ? `decode pool disabled after ${this.failures} worker failures` : null;
    if (refused !== null) {
      const e = new Error(refused);
      return { next: () => Promise.reject(e), cancel: () => {}, slotOf: () => null };
    }
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const slot = this.pick();
    const stream = this.nextId++;
    slot.streams.add(stream);
    const arena: Arena = { sab: new SharedArrayBuffer(ARENA_SLOTS * ARENA_SLOT_BYTES), slotBytes: ARENA_SLOT_BYTES };
    this.post(slot, { type: 'open', stream, file: q.file, uplink: q.uplink, afterId: q.afterId, beforeId: q.beforeId, room: q.room ?? DEFAULT_ROOM, arena });
    let open = true;
    return {
      next: (n: number, recycle: ArrayBuffer[] = [], slots: number[] = []) => {
        if (slot.dead) return Promise.reject(slot.dead);
        if (!open) return Promise.reject(new Error('stream closed'));
        const id = this.nextId++;
        return new Promise<AheadRow[]>((resolve, reject) => {
          if (slot.pending.size === 0) slot.worker.ref();
          slot.pending.set(id, { resolve, reject, arena: arena.sab });
          this.post(slot, { type: 'next', stream, id, n, recycle, slots }, recycle);
        });
      },
      slotOf: (readings: Buffer) => (readings.buffer === arena.sab ? Math.floor(readings.byteOffset / arena.slotBytes) : null),
      cancel: () => {
        if (!open) return;
        open = false;
        slot.streams.delete(stream);
        if (!slot.dead) this.post(slot, { type: 'close', stream });
        this.armIdle();
      },
    };
  }

  private post(slot: Slot, m: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    try {
      slot.worker.postMessage(m, transfer);
    } catch (e) {
      this.die(slot, `postMessage failed: ${(e as Error).message}`);
    }
  }

  /** The live worker with the fewest open streams; starts one while below `size`. */
  private pick(): Slot {
    this.slots = this.slots.filter((s) => !s.dead);
    let best: Slot | undefined;
    for (const s of this.slots) if (!best || s.streams.size < best.streams.size) best = s;
    if (best && (best.streams.size === 0 || this.slots.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): Slot {
    const worker = new Worker(this.workerUrl, {
      workerData: this.init,
      // The worker keeps little on its V8 heap: rows and inflated bytes are off-heap buffers.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    worker.unref();
    this.started++;
    const slot: Slot = { worker, pending: new Map(), streams: new Set(), dead: null };
    worker.on('message', (m: WorkerReply) => {
      const w = slot.pending.get(m.id);
      if (!w) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.error !== undefined || !m.rows) {
        w.reject(new Error(`decode worker: ${m.error ?? 'empty reply'}`));
        return;
      }
      this.failures = 0;
      w.resolve(
        m.rows.map((r) => ({
          task: r.task,
          readings: r.slot >= 0 ? Buffer.from(w.arena, r.offset, r.length) : r.bytes === null ? null : Buffer.from(r.bytes, r.offset, r.length),
          error: r.error,
        })),
      );
    });
    worker.on('error', (e: Error) => this.die(slot, `failed: ${e.message}`));
    worker.on('exit', (code) => this.die(slot, `exited with code ${code}`));
    worker.on('messageerror', (e: Error) => this.die(slot, `message error: ${e.message}`));
    this.slots.push(slot);
    return slot;
  }

  private die(slot: Slot, why: string): void {
    if (slot.dead) return;
    slot.dead = new Error(`decode worker ${why}`);
    if (!this.closed) this.failures++;
    for (const w of slot.pending.values()) w.reject(slot.dead);
    slot.pending.clear();
    slot.streams.clear();
    slot.worker.removeAllListeners();
    slot.worker.on('error', () => {});
    void slot.worker.terminate().catch(() => {});
    this.slots = this.slots.filter((s) => s !== slot);
    this.armIdle();
  }

  /** Stops the workers once no stream has been open for IDLE_MS. */
  private armIdle(): void {
    if (this.idleTimer || this.slots.some((s) => s.streams.size > 0)) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.slots.some((s) => s.streams.size > 0)) return;
      void this.stopWorkers();
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  private stopWorkers(): Promise<unknown> {
    const slots = this.slots;
    this.slots = [];
    return Promise.all(
      slots.map((s) => {
        s.dead = new Error('decode worker stopped');
        for (const w of s.pending.values()) w.reject(s.dead);
        s.pending.clear();
        s.streams.clear();
        s.worker.removeAllListeners();
        s.worker.on('error', () => {});
        return s.worker.terminate().catch(() => {});
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    await this.stopWorkers();
  }
}

const shared = new WeakMap<object, DecodePool>();

/**
 * The pool shared by every lane of one codec (one set of workers per agent, not one per uplink);
 * null when the size is 0. A handle's close() does not stop the pool: its workers stop IDLE_MS
 * after the last stream closed, like any idle pool's, so a lane that is replaced (a restarted
 * uplink) finds a worker already started and warm, and nothing lingers past IDLE_MS.
 */
export function sharedReadAhead(owner: object, ring: Keyring | null, size = defaultDecodeWorkers()): ReadAhead | null {
  if (size <= 0) return null;
  let pool = shared.get(owner);
  if (!pool) {
    pool = new DecodePool(ring, size);
    shared.set(owner, pool);
  }
  const p = pool;
  return { open: (q) => p.open(q), close: async () => {} };
}
