/**
 * A lane's backlog, read ahead: the tasks committed before the link last came up (id < the
 * lane's live boundary), oldest first.
 *
 * A decode worker (store/decode-pool.ts) reads the next backlog tasks from the store on its own
 * connection and decrypts and inflates their payloads while earlier ones are on the wire; up to
 * `prefetch` of them are kept queued, in id order. If the worker fails, this thread reads on from
 * the last task received (the cursor), so no task is lost or skipped; without a worker the rows
 * are read here (with their payloads, decoded when sent). A task stays `pending` in the store
 * until the lane writes an outcome for it, so anything queued here can be dropped at any time.
 */
import type { Logger } from 'pino';
import type { BacklogStream, ReadAhead } from '../store/decode-pool.js';
import type { TaskMeta, TaskQueue, TaskRow } from '../store/tasks.js';

/** Backlog tasks per request to the read-ahead worker. */
const AHEAD_CHUNK = 32;
/** Buffers waiting to be handed back to the read-ahead worker at most. */
const RECYCLE_MAX = 256;

/**
 * A backlog task read ahead: decoded by the worker (`readings`, or `error` if its payload does
 * not decode), or read here with its payload (a TaskRow) and decoded when sent.
 */
export interface Ahead {
  task: TaskMeta | TaskRow;
  /** From the worker: in a buffer of its own with room around it to frame it in place. */
  readings: Buffer | null;
  error: string | null;
}

export interface BacklogDeps {
  uplink: string;
  tasks: TaskQueue;
  /** The worker pool, or null to read and decode on this thread. */
  reader: ReadAhead | null;
  /** Tasks queued or asked for at most. */
  prefetch: number;
  /** Tasks per query when reading on this thread. */
  pullTasks: number;
  /** The lane's live boundary: the backlog is the tasks below it. */
  beforeId: () => number;
  log: Logger;
  /** Tasks arrived from the worker (or it failed): the lane may send. */
  onArrival: () => void;
}

export class Backlog {
  private queue: Ahead[] = [];
  private cursor = 0;
  /** The store has no backlog task after the cursor. */
  private readAll = false;
  /** The worker stream feeding the queue; replies from any other stream are dropped. */
  private stream: BacklogStream | null = null;
  /** Tasks asked of `stream` and not received yet. */
  private requested = 0;
  /** Buffers (and arena slots) of rows whose sends completed: handed back to the worker with the next request. */
  private recycled: ArrayBuffer[] = [];
  private recycledSlots: number[] = [];
  /** Read on this thread until the next restart (the worker failed). */
  private inline = false;

  constructor(private readonly d: BacklogDeps) {}

  /** From the first backlog task again (after a recovery, or tasks re-admitted). */
  restart(): void {
    this.drop();
    this.cursor = 0;
    this.inline = false;
    this.readAll = false;
  }

  /** Forgets what was read ahead (it is all still pending in the store) and closes the stream. */
  drop(): void {
    this.stream?.cancel();
    this.stream = null;
    this.requested = 0;
    this.queue = [];
    this.recycled = [];
    this.recycledSlots = [];
  }

  /** The oldest task read ahead, if any. */
  peek(): Ahead | undefined {
    return this.queue[0];
  }

  shift(): void {
    this.queue.shift();
  }

  /** Puts back a task taken with peek/shift and not sent. */
  unshift(a: Ahead): void {
    this.queue.unshift(a);
  }

  /** Nothing queued and nothing more in the store. */
  get done(): boolean {
    return this.readAll && this.queue.length === 0;
  }

  /**
   * A sent task's readings from the worker, free again once the driver let go of them: their
   * arena slot (when they came in the current stream's arena) or their buffer goes back.
   */
  recycle(readings: Buffer): void {
    if (!this.stream) return;
    const slot = this.stream.slotOf(readings);
    if (slot !== null) this.recycledSlots.push(slot);
    else if (!(readings.buffer instanceof SharedArrayBuffer) && this.recycled.length < RECYCLE_MAX) this.recycled.push(readings.buffer);
  }

  async close(): Promise<void> {
    this.drop();
    await this.d.reader?.close();
  }

  /**
   * Keeps the queue topped up: asks the worker for the next backlog tasks (cursor < id <
   * beforeId) until `prefetch` are queued or asked for; without a worker, reads the next tasks
   * here once the queue is empty.
   */
  fill(): void {
    if (this.readAll) return;
    const file = this.d.tasks.file;
    if (this.d.reader === null || file === null || this.inline) {
      if (this.queue.length > 0) return;
      const rows = this.d.tasks.fresh(this.cursor, this.d.beforeId(), Math.min(this.d.prefetch, this.d.pullTasks));
      if (rows.length === 0) this.readAll = true;
      for (const task of rows) {
        this.queue.push({ task, readings: null, error: null });
        this.cursor = task.id;
      }
      return;
    }
    const stream = (this.stream ??= this.d.reader.open({ file, uplink: this.d.uplink, afterId: this.cursor, beforeId: this.d.beforeId() }));
    const prefetch = this.d.prefetch;
    while (this.queue.length + this.requested + AHEAD_CHUNK <= prefetch || (this.queue.length === 0 && this.requested === 0)) {
      const n = Math.min(AHEAD_CHUNK, this.d.pullTasks);
      this.requested += n;
      const recycled = this.recycled;
      const slots = this.recycledSlots;
      this.recycled = [];
      this.recycledSlots = [];
      stream.next(n, recycled, slots).then(
        (rows) => {
          if (stream !== this.stream) return;
          this.requested -= n;
          for (const r of rows) {
            this.queue.push(r);
            this.cursor = r.task.id;
          }
          // The end of the backlog: the requests still out will come back empty.
          if (rows.length < n && this.requested === 0) {
            this.readAll = true;
            stream.cancel();
            this.stream = null;
          }
          this.d.onArrival();
        },
        (e: unknown) => {
          if (stream !== this.stream) return;
          // Nothing is lost: the store still has every task after the cursor as pending.
          this.d.log.warn({ uplink: this.d.uplink, err: String(e) }, 'backlog read-ahead failed; reading on this thread until the next recovery');
          stream.cancel();
          this.stream = null;
          this.requested = 0;
          this.inline = true;
          this.d.onArrival();
        },
      );
      if (this.requested >= prefetch) break;
    }
  }
}
