/**
 * The read/update side of recovery_tasks for one forward lane.
 *
 * Fresh tasks (never attempted, or re-admitted by an operator) have next_attempt_at = 0 and are
 * scanned oldest first by id (index recovery_tasks_pending); tasks waiting for a retry have
 * next_attempt_at > 0 and sit in the partial index recovery_tasks_due (migration 2), which ingest
 * never touches (new tasks have next_attempt_at = 0). Outcomes are written in groups (one
 * transaction for many acknowledgements), never one fsync per message.
 *
 * Bodies live in segment files (store/segments.ts) and are read with pread as the rows are
 * (rawToTask).
 */
import type { DB } from './db.js';
import type { EncodedPayload } from './codec.js';
import type { BodyReader } from './segment-reader.js';

/** What a task queue needs of its store's segments: a reader for bodies, the checkpoint check after a commit (store/store.ts). */
export interface SegmentAccess {
  readonly reader: BodyReader | null;
  afterCommit(): void;
}

/** A task without its payload. */
export interface TaskMeta {
  id: number;
  payloadId: number;
  key: string;
  device: string;
  readingCount: number;
  retryCount: number;
  firstAttemptAt: number | null;
  createdAt: number;
}

export interface TaskRow extends TaskMeta {
  payload: EncodedPayload;
}

export type Outcome =
  | { id: number; ok: true; requestAt: number; ackAt: number }
  | {
      id: number;
      ok: false;
      requestAt: number;
      code: string;
      message: string;
      faultClass: string;
      retryClass: 'soft' | 'hard';
      /** 'pending' with nextAttemptAt, or 'failed' (dead letter). */
      status: 'pending' | 'failed';
      nextAttemptAt: number;
    };

const COLS = `t.id, t.payload_id AS payloadId, t.idempotency_key AS key, p.device, t.reading_count AS readingCount,
  t.retry_count AS retryCount, t.first_attempt_at AS firstAttemptAt, t.created_at AS createdAt,
  p.codec, p.key_id AS keyId, p.iv, p.tag, p.body, p.body_segment, p.body_offset, p.body_length`;

/**
 * A row of COLS (statement in raw mode) as a task with its payload. The body is the row's own
 * (rows from before segments) or read from its segment with `segments`, into `into` when given
 * (a scratch buffer the caller decodes before the next read; else a buffer of its own). A body
 * that cannot be read (segment file missing, range short after a power cut) gives a payload that
 * decodes to PAYLOAD_UNREADABLE, never an exception here.
 */
export function rawToTask(r: unknown[], segments: BodyReader | null, into?: Buffer): TaskRow {
  const payload: EncodedPayload = {
    codec: r[8] as EncodedPayload['codec'], keyId: r[9] as string | null, iv: r[10] as Buffer | null, tag: r[11] as Buffer | null, body: r[12] as Buffer,
  };
  const seg = r[13] as number | null;
  if (seg !== null) {
    try {
      if (!segments) throw new Error('no segment directory for this database');
      payload.body = segments.read(seg, r[14] as number, r[15] as number, into);
    } catch (e) {
      payload.unreadable = (e as Error).message;
    }
  }
  return {
    id: r[0] as number, payloadId: r[1] as number, key: r[2] as string, device: r[3] as string, readingCount: r[4] as number,
    retryCount: r[5] as number, firstAttemptAt: r[6] as number | null, createdAt: r[7] as number, payload,
  };
}

/** The task queries (exported so a test can check their query plans). */
export const TASK_SQL = {
  fresh: `SELECT ${COLS} FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id
       WHERE t.uplink = ? AND t.status = 'pending' AND t.id > ? AND t.id < ? AND t.next_attempt_at = 0
       ORDER BY t.id LIMIT ?`,
  due: `SELECT ${COLS} FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id
       WHERE t.uplink = ? AND t.status = 'pending' AND t.next_attempt_at > 0 AND t.next_attempt_at <= ?
       ORDER BY t.next_attempt_at LIMIT ?`,
  /** A paced device's tasks that may be sent now (fresh, or due for a retry), oldest first. */
  ofDevice: `SELECT ${COLS} FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id
       WHERE t.uplink = ? AND t.status = 'pending' AND p.device = ? AND t.next_attempt_at <= ?
       ORDER BY t.id LIMIT ?`,
} as const;

export class TaskQueue {
  private readonly freshStmt;
  private readonly dueStmt;
  private readonly ofDeviceStmt;
  private readonly maxIdStmt;
  private readonly okStmt;
  private readonly okByKeyStmt;
  private readonly failStmt;
  private readonly flushTxn;

  /** Handed out by Store.tasks. */
  constructor(
    db: DB,
    readonly uplink: string,
    private readonly segments: SegmentAccess,
  ) {
    this.freshStmt = db.prepare(TASK_SQL.fresh).raw(true);
    this.dueStmt = db.prepare(TASK_SQL.due).raw(true);
    this.ofDeviceStmt = db.prepare(TASK_SQL.ofDevice).raw(true);
    this.maxIdStmt = db.prepare('SELECT coalesce(max(id), 0) FROM recovery_tasks').pluck();
    this.okStmt = db.prepare(
      `UPDATE recovery_tasks SET status = 'delivered', retry_count = retry_count + 1, request_timestamp = ?,
         acknowledgment_timestamp = ?, latency_ms = ?, first_attempt_at = coalesce(first_attempt_at, ?), next_attempt_at = 0
       WHERE id = ? AND status = 'pending'`,
    );
    this.okByKeyStmt = db.prepare(
      `UPDATE recovery_tasks SET status = 'delivered', retry_count = retry_count + 1, request_timestamp = ?, acknowledgment_timestamp = ?, latency_ms = ?,
         first_attempt_at = coalesce(first_attempt_at, ?), next_attempt_at = 0 WHERE idempotency_key = ? AND uplink = ? AND status = 'pending'`,
    );
    this.failStmt = db.prepare(
      `UPDATE recovery_tasks SET status = ?, retry_count = retry_count + 1, request_timestamp = ?, next_attempt_at = ?,
         last_error_code = ?, last_error = ?, fault_class = ?, retry_class = ?, first_attempt_at = coalesce(first_attempt_at, ?)
       WHERE id = ? AND status = 'pending'`,
    );
    this.flushTxn = db.transaction((outcomes: readonly Outcome[]) => {
      for (const o of outcomes) {
        if (o.ok) this.okStmt.run(o.requestAt, o.ackAt, o.ackAt - o.requestAt, o.requestAt, o.id);
        else {
          this.failStmt.run(o.status, o.requestAt, o.status === 'failed' ? 0 : Math.max(1, o.nextAttemptAt), o.code,
            o.message.slice(0, 500), o.faultClass, o.retryClass, o.requestAt, o.id);
        }
      }
    });
  }

  /** Fresh tasks with afterId < id < beforeId, oldest first. */
  fresh(afterId: number, beforeId: number, limit: number): TaskRow[] {
    return (this.freshStmt.all(this.uplink, afterId, beforeId, limit) as unknown[][]).map((r) => rawToTask(r, this.segments.reader));
  }

  /** Tasks whose retry time has come, earliest first. */
  due(now: number, limit: number): TaskRow[] {
    return (this.dueStmt.all(this.uplink, now, limit) as unknown[][]).map((r) => rawToTask(r, this.segments.reader));
  }

  /**
   * One device's pending tasks that may be sent at `now`, oldest first (the lane's pacer). It walks
   * the uplink's pending tasks (index recovery_tasks_pending): run once per device per postRate.
   */
  pendingOfDevice(device: string, now: number, limit: number): TaskRow[] {
    return (this.ofDeviceStmt.all(this.uplink, device, now, limit) as unknown[][]).map((r) => rawToTask(r, this.segments.reader));
  }

  /** The highest task id in the store (all uplinks): the live/backlog boundary at a recovery. */
  maxId(): number {
    return this.maxIdStmt.get() as number;
  }

  /** Writes a group of outcomes in one transaction (then the agent's checkpoint check, see store/segments.ts). */
  flush(outcomes: readonly Outcome[]): void {
    if (outcomes.length === 0) return;
    this.flushTxn.immediate(outcomes);
    this.segments.afterCommit();
  }

  /** A batch sent by key (straight from the spool, not as a task of this queue) was acknowledged. */
  ackedByKey(key: string, requestAt: number, ackAt: number): void {
    this.okByKeyStmt.run(requestAt, ackAt, ackAt - requestAt, requestAt, key, this.uplink);
  }
}

/** One batch's stored payload by its key, body read from its segment if it has one (Store.payload). */
export function readPayload(db: DB, reader: BodyReader | null, batchKey: string): EncodedPayload | undefined {
  const r = db
    .prepare(`SELECT 0, id, batch_key, device, reading_count, 0, NULL, created_at, codec, key_id, iv, tag, body, body_segment, body_offset, body_length
              FROM payloads WHERE batch_key = ?`)
    .raw(true)
    .get(batchKey) as unknown[] | undefined;
  return r ? rawToTask(r, reader).payload : undefined;
}
