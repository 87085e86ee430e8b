/**
 * Operator-facing store operations: status, the retry repair, the sweeper's re-admission,
 * purge, and breaker-reset requests. All are plain SQL against the live WAL database, so they
 * work from the CLI next to a running agent as well as on a stopped one.
 */
import type { DB } from './db.js';
import { segmentUsage } from './segment-gc.js';
import { clockBatchCounts } from './clock-rebase.js';

export interface UplinkStatus {
  uplink: string;
  pending: { tasks: number; readings: number };
  failed: { tasks: number; readings: number };
  delivered: { tasks: number; readings: number };
  oldestPendingAgeMs: number | null;
  breaker: string;
  breakerSince: number | null;
  connected: boolean;
  lastError: { code: string; message: string; at: number } | null;
  /** Readings the uplink delivered batches without, summed from its `skipped` events (kept for the retention period), most first. */
  skipped: SkippedRow[];
}

export interface SkippedRow { device: string; point: string; reason: string; unit: string; readings: number; lastAt: number }

export interface StoreStatus {
  at: number;
  schemaVersion: number;
  payloads: number;
  /** Segment files holding payload bodies (store/segments.ts) and their bytes; null for a database in memory. */
  segments: { files: number; bytes: number } | null;
  uplinks: UplinkStatus[];
  counters: Record<string, number>;
  openOutages: { subject: string; code: string | null; since: number }[];
  /** Field faults not yet recovered: the wiring (physical), a device, the config, the network. */
  openFieldFaults: { scope: string; subject: string; code: string | null; faultClass: string | null; since: number; detail: unknown }[];
  /**
   * The wall clock (docs/clocks.md): since when it has been unsynchronised (null: it is good), its
   * last step, and batches holding readings it stamped while unsynchronised, by state.
   */
  clock: {
    unsyncedSince: number | null;
    lastStep: { at: number; stepMs: number } | null;
    batches: Record<string, { batches: number; readings: number }>;
  };
}

export interface DepthRow {
  uplink: string;
  status: string;
  tasks: number;
  readings: number;
}

export interface StorageFacts {
  fullSince: number | null;
  lastSalvage: { at: number; detail: unknown } | null;
  lastOutage: { since: number; durationMs: number | null; detail: unknown } | null;
  /** `dropped_readings:<uplink>:<reason>` and `dropped_batches:...` counters. */
  dropCounters: { name: string; value: number }[];
}

export interface PurgeResult {
  tasks: number;
  payloads: number;
  events: number;
}

/** The operator's queries on one store (Store.admin). */
export class StoreAdmin {
  constructor(
    private readonly db: DB,
    private readonly dataDir: string | null,
  ) {}

  /** What `holdfast status` and GET /status show of the store. */
  status(now: number, configured: readonly string[] = []): StoreStatus {
    const db = this.db;
    const names = new Set<string>(configured);
    const depth = db
      .prepare(`SELECT uplink, status, count(*) AS tasks, coalesce(sum(reading_count), 0) AS readings FROM recovery_tasks GROUP BY uplink, status`)
      .all() as { uplink: string; status: 'pending' | 'failed' | 'delivered'; tasks: number; readings: number }[];
    const links = db.prepare('SELECT * FROM link_state').all() as {
      uplink: string; connected: number; breaker: string; breaker_since: number | null;
      last_error_code: string | null; last_error: string | null; last_error_at: number | null;
    }[];
    for (const d of depth) names.add(d.uplink);
    for (const l of links) names.add(l.uplink);
    const oldest = db.prepare(`SELECT min(created_at) FROM recovery_tasks WHERE uplink = ? AND status = 'pending'`).pluck();
    const skipped = db.prepare(
      `SELECT e.subject AS uplink, json_extract(j.value, '$.device') AS device, json_extract(j.value, '$.point') AS point,
              json_extract(j.value, '$.reason') AS reason, json_extract(j.value, '$.unit') AS unit,
              sum(json_extract(j.value, '$.readings')) AS readings, max(e.started_at) AS lastAt
       FROM recovery_events e, json_each(e.detail, '$.skipped') j WHERE e.kind = 'skipped' AND json_valid(e.detail)
       GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 6 DESC, 2, 3, 4`,
    ).all() as (SkippedRow & { uplink: string })[];
    const uplinks = [...names].sort().map((uplink): UplinkStatus => {
      const of = (s: string) => {
        const r = depth.find((d) => d.uplink === uplink && d.status === s);
        return { tasks: r?.tasks ?? 0, readings: r?.readings ?? 0 };
      };
      const l = links.find((x) => x.uplink === uplink);
      const o = oldest.get(uplink) as number | null;
      return {
        uplink,
        pending: of('pending'),
        failed: of('failed'),
        delivered: of('delivered'),
        oldestPendingAgeMs: o === null ? null : Math.max(0, now - o),
        breaker: l?.breaker ?? 'closed',
        breakerSince: l?.breaker_since ?? null,
        connected: l?.connected === 1,
        lastError: l?.last_error_code ? { code: l.last_error_code, message: l.last_error ?? '', at: l.last_error_at ?? 0 } : null,
        skipped: skipped.filter((x) => x.uplink === uplink).map(({ uplink: _, ...x }) => x),
      };
    });
    const counters = Object.fromEntries(
      (db.prepare('SELECT name, value FROM counters ORDER BY name').all() as { name: string; value: number }[]).map((c) => [c.name, c.value]),
    );
    const openOutages = db
      .prepare(`SELECT subject, code, started_at AS since FROM recovery_events WHERE kind = 'outage' AND ended_at IS NULL ORDER BY id`)
      .all() as StoreStatus['openOutages'];
    const openFieldFaults = (
      db
        .prepare(`SELECT scope, subject, code, fault_class AS faultClass, started_at AS since, detail FROM recovery_events
                  WHERE kind LIKE 'fault:%' AND ended_at IS NULL ORDER BY id`)
        .all() as (Omit<StoreStatus['openFieldFaults'][number], 'detail'> & { detail: string | null })[]
    ).map((f) => ({ ...f, detail: f.detail === null ? null : (JSON.parse(f.detail) as unknown) }));
    const dataDir = this.dataDir;
    const unsyncedSince = db.prepare(`SELECT min(started_at) FROM recovery_events WHERE scope = 'gateway' AND kind = 'unsynced' AND ended_at IS NULL`).pluck().get() as number | null;
    const step = db.prepare(`SELECT started_at AS at, detail FROM recovery_events WHERE scope = 'gateway' AND kind = 'clock_step' ORDER BY id DESC LIMIT 1`).get() as
      { at: number; detail: string | null } | undefined;
    const clock = {
      unsyncedSince,
      lastStep: step ? { at: step.at, stepMs: Number((JSON.parse(step.detail ?? '{}') as { stepMs?: number }).stepMs ?? 0) } : null,
      batches: clockBatchCounts(db),
    };
    return {
      at: now,
      clock,
      openFieldFaults,
      schemaVersion: db.pragma('user_version', { simple: true }) as number,
      payloads: db.prepare('SELECT count(*) FROM payloads').pluck().get() as number,
      segments: dataDir === null ? null : segmentUsage(dataDir),
      uplinks,
      counters,
      openOutages,
    };
  }

  /** The documented repair, as a command: failed tasks get retry_count 0; the sweeper re-admits them. */
  retryReset(uplink?: string): number {
    const db = this.db;
    const sql = `UPDATE recovery_tasks SET retry_count = 0 WHERE status = 'failed'${uplink ? ' AND uplink = ?' : ''}`;
    return (uplink ? db.prepare(sql).run(uplink) : db.prepare(sql).run()).changes;
  }

  /**
   * The sweeper: failed tasks with retry_count = 0 were reset by an operator (a task is only
   * dead-lettered after an attempt, so the agent itself never leaves that combination). They go
   * back to pending as new entries: due now, age limit restarted.
   */
  readmitReset(now: number): { uplink: string; n: number }[] {
    const db = this.db;
    return db.transaction(() => {
      const per = db
        .prepare(`SELECT uplink, count(*) AS n FROM recovery_tasks WHERE status = 'failed' AND retry_count = 0 GROUP BY uplink`)
        .all() as { uplink: string; n: number }[];
      if (per.length === 0) return per;
      db.prepare(
        `UPDATE recovery_tasks SET status = 'pending', next_attempt_at = 0, first_attempt_at = NULL WHERE status = 'failed' AND retry_count = 0`,
      ).run();
      const ev = db.prepare(
        `INSERT INTO recovery_events (scope, subject, kind, started_at, ended_at, duration_ms, detail) VALUES ('uplink', ?, 'readmit', ?, ?, 0, ?)`,
      );
      for (const p of per) ev.run(p.uplink, now, now, JSON.stringify({ tasks: p.n }));
      return per;
    }).immediate();
  }

  /** Asks the live agent to reset a breaker (picked up by its sweeper); also resets the stored state. */
  requestBreakerReset(uplink: string, now: number): void {
    const db = this.db;
    db.transaction(() => {
      db.prepare(`INSERT INTO admin_requests (kind, uplink, created_at) VALUES ('breaker_reset', ?, ?)`).run(uplink, now);
      db.prepare(`UPDATE link_state SET breaker = 'closed', breaker_since = ?, updated_at = ? WHERE uplink = ?`).run(now, now, uplink);
    }).immediate();
  }


  /**
   * Deletes delivered and dead-lettered tasks older than the cut-off, then payloads no task refers
   * to any more, then old closed events. Pending data is never purged. Counts go to `counters`.
   * The segment files the deleted payloads leave unreferenced are collected after it
   * (Store.collectSegments, store/store.ts).
   */
  purge(olderThanMs: number, now: number): PurgeResult {
    const db = this.db;
    const cut = now - olderThanMs;
    return db.transaction(() => {
      const tasks = db.prepare(`DELETE FROM recovery_tasks WHERE status IN ('delivered', 'failed') AND created_at < ?`).run(cut).changes;
      const payloads = db
        .prepare(`DELETE FROM payloads WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM recovery_tasks t WHERE t.payload_id = payloads.id)`)
        .run(cut).changes;
      const events = db.prepare('DELETE FROM recovery_events WHERE ended_at IS NOT NULL AND ended_at < ?').run(cut).changes;
      const bump = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value');
      bump.run('purged_tasks', tasks);
      bump.run('purged_payloads', payloads);
      return { tasks, payloads, events };
    }).immediate();
  }

  /** Tasks and readings by uplink and state (the depth gauges): one GROUP BY over recovery_tasks. */
  depth(): DepthRow[] {
    return this.db
      .prepare('SELECT uplink, status, count(*) AS tasks, coalesce(sum(reading_count), 0) AS readings FROM recovery_tasks GROUP BY uplink, status')
      .all() as DepthRow[];
  }

  /** Null when the store takes (and releases) its write lock; else why not (a read-only disk, a locked file). */
  notWritable(): string | null {
    try {
      this.db.exec('BEGIN IMMEDIATE; ROLLBACK');
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** The storage facts of `holdfast status`: an open STORAGE_FULL, the last salvage and outage, the drop counters. Each is empty when unreadable. */
  storageFacts(): StorageFacts {
    const q = <T>(sql: string): T | null => {
      try {
        return (this.db.prepare(sql).get() as T | undefined) ?? null;
      } catch {
        return null;
      }
    };
    const parse = (d: string | null | undefined): unknown => (d ? (JSON.parse(d) as unknown) : null);
    const full = q<{ since: number }>(`SELECT started_at AS since FROM recovery_events WHERE kind = 'storage_full' AND ended_at IS NULL ORDER BY id DESC LIMIT 1`);
    const salvage = q<{ at: number; detail: string }>(`SELECT started_at AS at, detail FROM recovery_events WHERE kind = 'salvage' ORDER BY id DESC LIMIT 1`);
    const outage = q<{ since: number; duration: number | null; detail: string }>(
      `SELECT started_at AS since, duration_ms AS duration, detail FROM recovery_events WHERE kind = 'unavailable' ORDER BY id DESC LIMIT 1`,
    );
    let dropCounters: { name: string; value: number }[] = [];
    try {
      dropCounters = this.db.prepare(`SELECT name, value FROM counters WHERE name LIKE 'dropped_%'`).all() as { name: string; value: number }[];
    } catch {
      // an unreadable database: no counters to show
    }
    return {
      fullSince: full?.since ?? null,
      lastSalvage: salvage ? { at: salvage.at, detail: parse(salvage.detail) } : null,
      lastOutage: outage ? { since: outage.since, durationMs: outage.duration, detail: parse(outage.detail) } : null,
      dropCounters,
    };
  }

  /** A store outage that is over, as an `unavailable` event with its numbers. */
  recordOutage(since: number, at: number, detail: Record<string, unknown>): void {
    this.db.prepare(
      `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail)
       VALUES ('store', 'store', 'unavailable', 'STORE_UNAVAILABLE', 'local', ?, ?, ?, ?)`,
    ).run(since, at, at - since, JSON.stringify(detail));
  }

  /** Counts a reopen of the store (also a real write that proves the disk takes one). */
  countReopen(): void {
    this.db.prepare(`INSERT INTO counters (name, value) VALUES ('store_reopened', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1`).run();
  }

  /** Readings dropped, by uplink and reason: the counters and one `drop` event, in one transaction. */
  recordDrops(drops: readonly { uplink: string; reason: string; readings: number; batches: number }[], code: string, at: number): void {
    const db = this.db;
    db.transaction(() => {
      const bump = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value');
      for (const d of drops) {
        bump.run(`dropped_readings:${d.uplink}:${d.reason}`, d.readings);
        bump.run(`dropped_batches:${d.uplink}:${d.reason}`, d.batches);
      }
      db.prepare(
        `INSERT INTO recovery_events (scope, subject, kind, code, fault_class, started_at, ended_at, duration_ms, detail)
         VALUES ('store', 'ledger', 'drop', ?, 'local', ?, ?, 0, ?)`,
      ).run(code, at, at, JSON.stringify({ dropped: drops }));
    }).immediate();
  }
}

/** Parses 7d, 12h, 30m, 45s, 500ms into milliseconds; undefined if malformed. */
export function parseDuration(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m) return undefined;
  const mult = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * mult);
}
