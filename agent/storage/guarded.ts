/**
 * The store as the rest of the agent sees it: objects that never throw a store error and
 * follow the keeper (keeper.ts) from session to session.
 *
 *   - StoreOutbox: ingest commits through it. While the store works a commit goes to the store
 *     (after the storage policy's admission: reject-new may refuse it); a commit that fails, or
 *     any commit while the store is unavailable, goes to the spool instead.
 *   - GuardedEvents: recovery events. While the store is unavailable they wait in memory
 *     (bounded, the oldest dropped and counted) and are written when it works again.
 *   - GuardedTaskQueue: a lane's tasks. While the store is unavailable there is nothing to read
 *     (lanes are paused anyway); an outcome that cannot be written is handed to the keeper, which
 *     keeps acknowledgements (in the spool, by key) so a delivered batch is not sent again.
 *
 * Events and TaskQueue are classes other modules are typed against; these extend them and
 * delegate every method, the base being built on a small in-memory database that is never used.
 */
import { Events, type EventInput } from '../../store/events.js';
import type { CommitResult, SealedBatch } from '../../store/outbox.js';
import { TaskQueue, type Outcome, type TaskRow } from '../../store/tasks.js';
import { Store } from '../../store/store.js';
import type { Session } from './session.js';

/** What the guarded objects need of the keeper. */
export interface KeeperView {
  readonly available: boolean;
  /** The session in use, or the failed one while it still reads (null when there is none). */
  readonly session: Session | null;
  /** A store operation failed: the keeper takes the store out of use. Never throws. */
  fail(e: unknown, where: string): void;
  /** Outcomes that could not be written. */
  unwritten(outcomes: readonly Outcome[]): void;
  /** Batches the store could not take (unavailable): to the spool, or counted as dropped. */
  spool(batches: readonly SealedBatch[], cursors: ReadonlyMap<string, number>): CommitResult;
  /** Checks the store is still the one opened (inodes); false after failing it. */
  verify(): boolean;
  /** The highest cursor of a source in the spool (0: none). */
  spoolCursor(device: string): number;
}

/** What the storage policy (space.ts) decides about a commit. */
export interface Admission {
  /** The batches refused (reject-new at a full store); counted by the caller of admit. */
  admit(batches: readonly SealedBatch[]): readonly SealedBatch[];
  /** Bytes just committed (a large burst checks the space at once). */
  committed(bytes: number): void;
}

let placeholder: Store | null = null;

/** A store in memory: the base the guarded classes are built on (never used), and the stand-in while the store is unavailable. */
export function placeholderStore(): Store {
  placeholder ??= Store.memory();
  return placeholder;
}

const EMPTY: CommitResult = { committed: 0, readings: 0, duplicates: 0, collisions: [] };

export class StoreOutbox {
  constructor(
    private readonly g: KeeperView,
    private readonly space: Admission,
  ) {}

  commit(batches: readonly SealedBatch[], cursors: ReadonlyMap<string, number> = new Map()): CommitResult {
    const keep = this.g.available ? this.space.admit(batches) : batches;
    const s = this.g.session;
    if (this.g.available && s && this.g.verify()) {
      try {
        const r = s.outbox.commit(keep, cursors);
        let bytes = 0;
        for (const b of keep) bytes += b.payload.body.length;
        this.space.committed(bytes);
        return r;
      } catch (e) {
        this.g.fail(e, 'commit');
      }
    }
    return keep.length > 0 || cursors.size > 0 ? this.g.spool(keep, cursors) : EMPTY;
  }

  /**
   * Where a source resumes: after the last batch stored or spooled (a spool not imported yet
   * holds batches the store does not know of), 0 when neither can say.
   */
  cursor(device: string): number {
    let stored = 0;
    try {
      stored = this.g.session?.outbox.cursor(device) ?? 0;
    } catch (e) {
      this.g.fail(e, 'cursor');
    }
    return Math.max(stored, this.g.spoolCursor(device));
  }
}

type Deferred =
  | { op: 'record'; e: EventInput }
  | { op: 'open'; e: EventInput }
  | { op: 'close'; scope: EventInput['scope']; subject: string; kind: string; at: number }
  | { op: 'link'; s: Parameters<Events['link']>[0] };

/** Events kept in memory while the store is unavailable, at most. */
export const DEFERRED_EVENTS = 1000;

export class GuardedEvents extends Events {
  private deferred: Deferred[] = [];
  /** Events dropped because more than DEFERRED_EVENTS waited. */
  droppedEvents = 0;

  constructor(private readonly g: KeeperView) {
    super(placeholderStore().db);
  }

  private run<T>(what: string, fn: (ev: Events) => T, d: Deferred | null, dflt: T): T {
    const s = this.g.session;
    if (this.g.available && s) {
      try {
        return fn(s.events);
      } catch (e) {
        this.g.fail(e, what);
      }
    }
    if (d) this.defer(d);
    return dflt;
  }

  private defer(d: Deferred): void {
    if (d.op === 'link') this.deferred = this.deferred.filter((x) => !(x.op === 'link' && x.s.uplink === d.s.uplink));
    if (this.deferred.length >= DEFERRED_EVENTS) {
      this.deferred.shift();
      this.droppedEvents++;
    }
    this.deferred.push(d);
  }

  override record(e: EventInput): void {
    this.run('event', (ev) => ev.record(e), { op: 'record', e }, undefined);
  }

  override open(e: EventInput): void {
    this.run('event', (ev) => ev.open(e), { op: 'open', e }, undefined);
  }

  override close(scope: EventInput['scope'], subject: string, kind: string, at: number): number | undefined {
    return this.run('event', (ev) => ev.close(scope, subject, kind, at), { op: 'close', scope, subject, kind, at }, undefined);
  }

  override link(s: Parameters<Events['link']>[0]): void {
    this.run('link state', (ev) => ev.link(s), { op: 'link', s }, undefined);
  }

  override outageHistory(subject: string, limit?: number): number[] {
    return this.run('outage history', (ev) => ev.outageHistory(subject, limit), null, []);
  }

  override outageStart(subject: string): number | undefined {
    return this.run('outage start', (ev) => ev.outageStart(subject), null, undefined);
  }

  override adminRequests(at: number): { kind: string; uplink: string }[] {
    return this.run('admin requests', (ev) => ev.adminRequests(at), null, []);
  }

  /** Writes the events that waited (the store works again); how many. Throws a store error. */
  replay(ev: Events): number {
    const list = this.deferred;
    this.deferred = [];
    for (const d of list) {
      if (d.op === 'record') ev.record(d.e);
      else if (d.op === 'open') ev.open(d.e);
      else if (d.op === 'close') ev.close(d.scope, d.subject, d.kind, d.at);
      else ev.link(d.s);
    }
    return list.length;
  }
}

export class GuardedTaskQueue extends TaskQueue {
  private lastMaxId = 0;

  constructor(
    private readonly g: KeeperView,
    uplink: string,
  ) {
    super(placeholderStore().db, uplink, placeholderStore());
  }

  private inner(): TaskQueue | null {
    return this.g.available ? (this.g.session?.tasks.get(this.uplink) ?? null) : null;
  }

  private read(what: string, fn: (q: TaskQueue) => TaskRow[]): TaskRow[] {
    const q = this.inner();
    if (!q) return [];
    try {
      return fn(q);
    } catch (e) {
      this.g.fail(e, what);
      return [];
    }
  }

  override fresh(afterId: number, beforeId: number, limit: number): TaskRow[] {
    return this.read('fresh tasks', (q) => q.fresh(afterId, beforeId, limit));
  }

  override due(now: number, limit: number): TaskRow[] {
    return this.read('due tasks', (q) => q.due(now, limit));
  }

  override pendingOfDevice(device: string, now: number, limit: number): TaskRow[] {
    return this.read('paced tasks', (q) => q.pendingOfDevice(device, now, limit));
  }

  override maxId(): number {
    const q = this.inner();
    if (!q) return this.lastMaxId;
    try {
      this.lastMaxId = q.maxId();
    } catch (e) {
      this.g.fail(e, 'max task id');
    }
    return this.lastMaxId;
  }

  override flush(outcomes: readonly Outcome[]): void {
    if (outcomes.length === 0) return;
    const q = this.inner();
    if (q) {
      try {
        q.flush(outcomes);
        return;
      } catch (e) {
        this.g.fail(e, 'outcomes');
      }
    }
    this.g.unwritten(outcomes);
  }
}
