/**
 * Where a lane's next task comes from: the four sources of agent/forward/order.ts, each read from
 * the store a page at a time on the lane's thread, with its payload, and decoded only when sent.
 *
 *   - live: fresh tasks with id >= liveFromId (committed since the link came up), oldest first;
 *   - due: retries whose time has come, read again at every check (their times move);
 *   - backlog: fresh tasks below liveFromId, oldest first, a page of `drain.pullTasks` per query;
 *   - paced: devices whose upstream set a posting pace (agent/forward/pacer.ts), when due.
 *
 * A task of a paced device met on the first three is left in the store for the pacer. A task in
 * a page is still `pending` in the store: its id is reported busy (ids()), so the storage policy
 * does not drop or downsample its file while it is on its way, and the pacer does not send it too.
 */
import type { TaskQueue, TaskRow } from '../../store/tasks.js';
import { DUE_CHECK_MS, type Heads, type Source } from './order.js';
import { clearWaiting, dueDevices, emptyPace, isPaced, markWaiting, takeForPost, type PaceState } from './pacer.js';

/** A paced device's merged post holds at most this many readings and tasks. */
const PACED_MAX_READINGS = 10_000;
const PACED_MAX_TASKS = 500;

export class TaskSources {
  /** The live/backlog boundary: tasks below it were committed before the link last came up. */
  liveFromId = Number.MAX_SAFE_INTEGER;
  pace: PaceState = emptyPace();
  private live: TaskRow[] = [];
  private liveCursor = 0;
  private liveDirty = true;
  private due: TaskRow[] = [];
  private nextDueCheckAt = 0;
  private backlog: TaskRow[] = [];
  private backlogCursor = 0;
  private backlogRead = false;

  constructor(
    private readonly tasks: TaskQueue,
    /** Backlog tasks per query. */
    private readonly pageSize: number,
  ) {}

  /** The link came up, or the store came back: every task stored so far is backlog from here. */
  recover(): void {
    this.liveFromId = this.tasks.maxId() + 1;
    this.liveCursor = this.liveFromId - 1;
    this.nextDueCheckAt = 0;
    this.rescan();
  }

  /** New tasks were committed. */
  notify(): void {
    this.liveDirty = true;
  }

  /** Read the backlog from its start again (tasks re-admitted, or a failure in the lane). */
  rescan(): void {
    this.drop();
    this.backlogCursor = 0;
    this.backlogRead = false;
  }

  /** Forgets the pages (their tasks are all still pending in the store). */
  drop(): void {
    if (this.live.length > 0) this.liveCursor = this.live[0].id - 1;
    this.live = [];
    this.due = [];
    if (this.backlog.length > 0) this.backlogCursor = this.backlog[0].id - 1;
    this.backlog = [];
    this.liveDirty = true;
  }

  /** Some backlog is left to send (for `holdfast status`). */
  get draining(): boolean {
    return !this.backlogRead || this.backlog.length > 0;
  }

  /** The ids of the tasks in the pages. */
  ids(): number[] {
    return [...this.live, ...this.due, ...this.backlog].map((r) => r.id);
  }

  /**
   * What each source offers now, reading a page where one is empty. `busy`: tasks sent or whose
   * outcome is not written yet (never offered again); `free`: how many may go in this fill.
   */
  heads(t: number, wall: number, free: number, busy: (id: number) => boolean): Heads {
    const out: Heads = {};
    while (this.live.length === 0 && this.liveDirty) {
      const rows = this.tasks.fresh(this.liveCursor, Number.MAX_SAFE_INTEGER, Math.max(1, free));
      this.liveDirty = rows.length === Math.max(1, free);
      for (const r of rows) {
        this.liveCursor = r.id;
        if (this.keep(r, busy)) this.live.push(r);
      }
    }
    if (this.due.length === 0 && t >= this.nextDueCheckAt) {
      const rows = this.tasks.due(wall, free + 32);
      this.due = rows.filter((r) => this.keep(r, busy));
      if (this.due.length === 0) this.nextDueCheckAt = t + DUE_CHECK_MS;
    }
    while (this.backlog.length === 0 && !this.backlogRead) {
      const rows = this.tasks.fresh(this.backlogCursor, this.liveFromId, this.pageSize);
      if (rows.length === 0) this.backlogRead = true;
      for (const r of rows) {
        this.backlogCursor = r.id;
        if (this.keep(r, busy)) this.backlog.push(r);
      }
    }
    for (const page of [this.live, this.due, this.backlog]) this.trimPaced(page);
    if (this.live.length > 0) out.live = { readings: this.live[0].readingCount };
    if (this.due.length > 0) out.due = { readings: this.due[0].readingCount };
    if (this.backlog.length > 0) out.backlog = { readings: this.backlog[0].readingCount };
    if (this.pace.waiting.size > 0 && dueDevices(this.pace, t).length > 0) out.paced = { readings: 0 };
    return out;
  }

  /**
   * Takes the head of `source`; for 'paced', the pending tasks of the device whose time has come
   * that fit one post (none: it has nothing waiting any more); `busyCount`: how many tasks are
   * on their way, so that reading past them still finds a full post.
   */
  take(source: Source, t: number, wall: number, busy: (id: number) => boolean, busyCount: () => number): TaskRow[] {
    if (source !== 'paced') {
      const page = source === 'live' ? this.live : source === 'due' ? this.due : this.backlog;
      return [page.shift()!];
    }
    const device = dueDevices(this.pace, t)[0];
    const paged = new Set(this.ids());
    const rows = this.tasks.pendingOfDevice(device, wall, PACED_MAX_TASKS + paged.size + busyCount()).filter((r) => !busy(r.id) && !paged.has(r.id));
    const group = takeForPost(rows, PACED_MAX_READINGS, PACED_MAX_TASKS);
    if (group.length === rows.length) this.pace = clearWaiting(this.pace, device);
    return group;
  }

  /**
   * The end of a fill: retries left unsent (the budget held them) are read again at the next
   * check, not at every pump.
   */
  endFill(t: number): void {
    if (this.due.length > 0) this.nextDueCheckAt = t + DUE_CHECK_MS;
    this.due = [];
  }

  /** When the next retry check is (monotonic). */
  get dueCheckAt(): number {
    return this.nextDueCheckAt;
  }

  /** Heads of devices that became paced after their page was read are left for the pacer. */
  private trimPaced(page: TaskRow[]): void {
    while (page.length > 0 && isPaced(this.pace, page[0].device)) this.pace = markWaiting(this.pace, page.shift()!.device);
  }

  /** A task worth offering: not busy, and not a paced device's (left for the pacer). */
  private keep(r: TaskRow, busy: (id: number) => boolean): boolean {
    if (busy(r.id)) return false;
    if (!isPaced(this.pace, r.device)) return true;
    this.pace = markWaiting(this.pace, r.device);
    return false;
  }
}
