/**
 * Recovery events (the history that `status`, reports and the ADAPTIVE strategy read) and the
 * per-uplink link state that admin commands read and write next to a live agent.
 */
import type { DB } from './db.js';

export interface EventInput {
  scope: 'uplink' | 'store' | 'device' | 'bus' | 'gateway';
  subject: string;
  kind: string;
  code?: string | null;
  faultClass?: string | null;
  at: number;
  detail?: unknown;
}

/** The clocks Events judges durations by (agent/clock.ts): monotonic ms, and the unsynchronised-stamp floor. */
export interface EventClock {
  mono(): number;
  readonly floor: number;
}

export class Events {
  /** Monotonic time at which this process opened each interval event (scope, subject, kind). */
  private readonly openedAt = new Map<string, number>();
  private readonly insert;
  private readonly openStmt;
  private readonly closeStmt;
  private readonly linkStmt;
  private readonly takeResets;
  private readonly doneReset;

  /**
   * `clock`: an interval opened by this process is measured on the monotonic clock, so a step of
   * the wall clock cannot stretch or shrink it. Without it, wall-time differences (tools).
   */
  constructor(
    private readonly db: DB,
    private readonly clock?: EventClock,
  ) {
    this.insert = db.prepare(
      `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail)
       VALUES (@scope, @subject, @kind, @code, @faultClass, @at, @endedAt, @duration, @detail)`,
    );
    this.openStmt = db.prepare(
      `SELECT id, started_at AS startedAt FROM recovery_events WHERE scope = ? AND subject = ? AND kind = ? AND ended_at IS NULL
       ORDER BY id DESC LIMIT 1`,
    );
    this.closeStmt = db.prepare('UPDATE recovery_events SET ended_at = ?, duration_ms = ? WHERE id = ?');
    this.linkStmt = db.prepare(
      `INSERT INTO link_state (uplink, connected, breaker, breaker_since, last_error_code, last_error, last_error_at, updated_at)
       VALUES (@uplink, @connected, @breaker, @breakerSince, @code, @error, @errorAt, @at)
       ON CONFLICT (uplink) DO UPDATE SET connected = excluded.connected, breaker = excluded.breaker,
         breaker_since = excluded.breaker_since, updated_at = excluded.updated_at,
         last_error_code = coalesce(excluded.last_error_code, last_error_code),
         last_error = coalesce(excluded.last_error, last_error),
         last_error_at = coalesce(excluded.last_error_at, last_error_at)`,
    );
    this.takeResets = db.prepare(`SELECT id, kind, uplink FROM admin_requests WHERE done_at IS NULL ORDER BY id`);
    this.doneReset = db.prepare('UPDATE admin_requests SET done_at = ? WHERE id = ?');
  }

  /** A point event (already over). */
  record(e: EventInput): void {
    this.insert.run({ ...this.row(e), endedAt: e.at, duration: 0 });
  }

  /** Opens an interval event (an outage) unless one of the same kind is open already. */
  open(e: EventInput): void {
    if (this.openStmt.get(e.scope, e.subject, e.kind)) return;
    this.insert.run({ ...this.row(e), endedAt: null, duration: null });
    if (this.clock) this.openedAt.set(`${e.scope}\0${e.subject}\0${e.kind}`, this.clock.mono());
  }

  /**
   * Closes the open interval event of that kind; returns its duration, or undefined if none was
   * open or its length cannot be told (opened by an earlier run, stamped by a clock below the
   * floor while the clock is now good: duration_ms stays NULL).
   */
  close(scope: EventInput['scope'], subject: string, kind: string, at: number): number | undefined {
    const open = this.openStmt.get(scope, subject, kind) as { id: number; startedAt: number } | undefined;
    const k = `${scope}\0${subject}\0${kind}`;
    const opened = this.openedAt.get(k);
    this.openedAt.delete(k);
    if (!open) return undefined;
    let ms: number | null;
    if (opened !== undefined && this.clock) ms = Math.max(0, Math.round(this.clock.mono() - opened));
    else if (this.clock && open.startedAt < this.clock.floor && at >= this.clock.floor) ms = null;
    else ms = Math.max(0, at - open.startedAt);
    this.closeStmt.run(at, ms, open.id);
    return ms ?? undefined;
  }

  link(s: { uplink: string; connected: boolean; breaker: string; breakerSince: number; at: number; code?: string; error?: string }): void {
    this.linkStmt.run({
      uplink: s.uplink, connected: s.connected ? 1 : 0, breaker: s.breaker, breakerSince: s.breakerSince,
      code: s.code ?? null, error: s.error ?? null, errorAt: s.code ? s.at : null, at: s.at,
    });
  }

  /** Durations of the uplink's last `limit` closed outages, oldest first (ADAPTIVE retry). */
  outageHistory(subject: string, limit = 50): number[] {
    const rows = this.db
      .prepare(`SELECT duration_ms FROM recovery_events WHERE scope = 'uplink' AND subject = ? AND kind = 'outage' AND ended_at IS NOT NULL AND duration_ms IS NOT NULL ORDER BY id DESC LIMIT ?`)
      .pluck()
      .all(subject, limit) as number[];
    return rows.reverse();
  }

  /** When the uplink's open outage began, if one is open. */
  outageStart(subject: string): number | undefined {
    return (this.openStmt.get('uplink', subject, 'outage') as { startedAt: number } | undefined)?.startedAt;
  }

  /** Admin requests (breaker resets) written by the CLI; marks them done as it hands them out. */
  adminRequests(at: number): { kind: string; uplink: string }[] {
    const rows = this.takeResets.all() as { id: number; kind: string; uplink: string }[];
    for (const r of rows) this.doneReset.run(at, r.id);
    return rows;
  }

  private row(e: EventInput) {
    return {
      scope: e.scope, subject: e.subject, kind: e.kind, code: e.code ?? null, faultClass: e.faultClass ?? null, at: e.at,
      detail: e.detail === undefined ? null : JSON.stringify(e.detail),
    };
  }
}
