/**
 * One open store: the database connection and its segment files, and everything that works on
 * them handed out from here (the outbox, a task queue per uplink, the events, the admin queries).
 * Nothing finds a writer or a reader by its connection: whoever holds the Store holds them.
 *
 *   - Store.open: the agent's store. The database is checked (salvaged when it must be:
 *     open-store.ts), then the segment writer is created with its recovery (segment-gc.ts).
 *   - Store.attach: a second connection next to a live agent or a stopped one (the CLI's status,
 *     purge, retry reset). No writer: segments are read with a reader of its own, never cut or
 *     appended to; the newest segment is synced before the close (whose checkpoint may make rows
 *     durable).
 *   - Store.on: a connection opened by the caller (tools, tests), with a writer unless told not.
 *   - Store.memory: a database in memory, bodies kept in the rows (the stand-in while the agent's
 *     store is unavailable).
 */
import Database from 'better-sqlite3';
import { migrate, openDb, type DB, type OpenOptions } from './db.js';
import { Events, type EventClock } from './events.js';
import { openStore, type SalvageReport, type StoreOpenOptions } from './open-store.js';
import { Outbox } from './outbox.js';
import { collectSegments, createWriter, GC_GRACE_MS, syncNewestSegment, type GcResult } from './segment-gc.js';
import { dataDirOf, SegmentReader, segmentDir, type SegmentWriter } from './segments.js';
import { readPayload, TaskQueue, type SegmentAccess } from './tasks.js';
import { StoreAdmin } from './admin.js';
import type { EncodedPayload } from './codec.js';

export interface SegmentSizes {
  /** A segment file is closed and a new one started past this size. */
  rollBytes?: number;
  /** The WAL is checkpointed past this size (and journal_size_limit is set to it). */
  checkpointBytes?: number;
}

export interface AgentStoreOptions extends StoreOpenOptions {
  /** Segment sizes for the space the store has, asked once the data directory exists. */
  sizes?: () => SegmentSizes;
}

export class Store implements SegmentAccess {
  /** Status, retry reset, purge, breaker-reset requests: the operator's queries. */
  readonly admin: StoreAdmin;
  private closed = false;

  private constructor(
    readonly db: DB,
    /** The data directory (null for a database in memory). */
    readonly dataDir: string | null,
    /** Where bodies are appended: the agent's store only. */
    readonly writer: SegmentWriter | null,
    private readonly ownReader: SegmentReader | null,
    /** What salvage did at the open, when it ran. */
    readonly salvage: SalvageReport | null = null,
  ) {
    this.admin = new StoreAdmin(db, dataDir);
  }

  /** The agent's store: checked, salvaged when it must be, with its segment writer. */
  static open(dataDir: string, opts: AgentStoreOptions): Store {
    const { db, salvage } = openStore(dataDir, opts);
    try {
      const sizes = opts.sizes?.() ?? {};
      // The WAL file keeps its largest size unless told otherwise; on a small disk that matters.
      if (sizes.checkpointBytes !== undefined) db.pragma(`journal_size_limit = ${sizes.checkpointBytes}`);
      return new Store(db, dataDir, createWriter(db, dataDir, sizes.rollBytes, sizes.checkpointBytes), null, salvage);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** A connection next to the agent (the CLI): reads segments, never writes them. */
  static attach(dataDir: string, opts: OpenOptions = {}): Store {
    return new Store(openDb(dataDir, opts), dataDir, null, new SegmentReader(segmentDir(dataDir)));
  }

  /**
   * A connection the caller opened. With `writer` (the default) it is the agent's kind of store:
   * the writer is created with its recovery, which cuts what no row refers to, so never on a
   * connection next to a live agent.
   */
  static on(db: DB, opts: SegmentSizes & { writer?: boolean } = {}): Store {
    const dir = dataDirOf(db);
    if (dir === null) return new Store(db, null, null, null);
    if (opts.writer === false) return new Store(db, dir, null, new SegmentReader(segmentDir(dir)));
    return new Store(db, dir, createWriter(db, dir, opts.rollBytes, opts.checkpointBytes), null);
  }

  /** A migrated database in memory, bodies in the rows. */
  static memory(): Store {
    const db = new Database(':memory:');
    migrate(db);
    return new Store(db, null, null, null);
  }

  /** What reads bodies from segment files: the writer's, else this connection's own. */
  get reader(): SegmentReader | null {
    return this.writer?.reader ?? this.ownReader;
  }

  get open(): boolean {
    return this.db.open && !this.closed;
  }

  /** The write side: batches in, a task per uplink. */
  outbox(uplinks: readonly string[]): Outbox {
    return new Outbox(this.db, uplinks, this.writer);
  }

  /** One uplink's tasks. */
  tasks(uplink: string): TaskQueue {
    return new TaskQueue(this.db, uplink, this);
  }

  events(clock?: EventClock): Events {
    return new Events(this.db, clock);
  }

  /** One batch's stored payload by its key, its body read from its segment. */
  payload(batchKey: string): EncodedPayload | undefined {
    return readPayload(this.db, this.reader, batchKey);
  }

  /** After a commit of anything: the agent's checkpoint check (segments.ts). */
  afterCommit(): void {
    this.writer?.afterCommit();
  }

  /**
   * Deletes the closed segment files no row refers to any more (after a purge). The agent's writer
   * knows the active segment; next to a live agent the newest file and files written in the last
   * `graceMs` stay (graceMs must exceed the agent's busy timeout: the longest it can wait between
   * an append and its commit).
   */
  collectSegments(graceMs = GC_GRACE_MS): GcResult {
    if (this.dataDir === null) return { files: 0, bytes: 0, ids: [] };
    const w = this.writer;
    const r = w ? collectSegments(this.db, w.dir, w.active) : collectSegments(this.db, segmentDir(this.dataDir), null, graceMs);
    for (const id of r.ids) this.reader?.forget(id);
    return r;
  }

  /** The segment files synced and closed, then the connection (whose close checkpoints). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.writer?.close();
      this.ownReader?.close();
      if (!this.writer && this.dataDir !== null && this.db.open && !this.db.readonly) syncNewestSegment(this.dataDir);
    } finally {
      if (this.db.open) this.db.close();
    }
  }
}
