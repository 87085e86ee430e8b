/**
 * Every dropped reading is accounted for: by uplink and reason in the metrics
 * (holdfast_dropped_readings_total), in the store (`dropped_readings:<uplink>:<reason>` counters
 * and a `drop` event: what `holdfast status` shows), in the log, and on each MQTT uplink's
 * `faults` topic when a link is up.
 *
 * Drops made by emptying a segment are written to the store in the same transaction
 * (store/reclaim.ts): stored() only reports them. Drops decided outside a transaction (refused
 * new batches, a full spool, batches a failed store took with it) are counted at once and
 * written to the store at the next flush(), which the keeper and the space manager call while
 * the store works, so they are never lost even when the store was down when they happened.
 */
import type { Logger } from 'pino';
import type { StoreAdmin } from '../../store/admin.js';
import type { DropCount } from '../../store/reclaim.js';
import { LogLimiter } from '../log-limit.js';
import type { StorageMetrics } from './metrics.js';

export type DropReason = 'dead_letter' | 'oldest' | 'downsampled' | 'rejected' | 'spool_full' | 'spool_error' | 'store_lost';

export interface Drop {
  uplink: string;
  reason: DropReason;
  batches: number;
  readings: number;
}

/** A log line per reason at most this often (a store refusing every commit must not flood the log). */
const LOG_MS = 60_000;

export class DropLedger {
  private pending = new Map<string, Drop>();
  /** Drops not yet in a log line or a faults message, by uplink and reason. */
  private unreported = new Map<string, Drop>();
  private readonly logs = new LogLimiter(LOG_MS);

  constructor(
    private readonly metrics: StorageMetrics,
    private readonly log: Logger,
    private readonly publish: (m: Record<string, unknown>) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Drops already written to the store. */
  stored(drops: readonly DropCount[], detail: Record<string, unknown>): void {
    this.report(drops as readonly Drop[], detail);
  }

  /** Drops to write to the store at the next flush(). */
  count(drops: readonly Drop[], detail: Record<string, unknown> = {}): void {
    for (const d of drops) {
      const k = `${d.uplink}\u0000${d.reason}`;
      const p = this.pending.get(k) ?? { uplink: d.uplink, reason: d.reason, batches: 0, readings: 0 };
      p.batches += d.batches;
      p.readings += d.readings;
      this.pending.set(k, p);
    }
    this.report(drops, detail);
  }

  /** Reports every drop not in a log line yet (the condition behind them ended). */
  reportAll(detail: Record<string, unknown> = {}): void {
    const list = [...this.unreported.values()];
    this.unreported.clear();
    for (const u of list) {
      this.logs.clear(`${u.uplink}\u0000${u.reason}`);
      this.emit(u, detail);
    }
  }

  /** Drops not yet in the store. */
  get unwritten(): number {
    return this.pending.size;
  }

  /** Writes the drops counted since the last flush (counters and one event); throws a store error, keeping them. */
  flush(admin: StoreAdmin): void {
    if (this.pending.size === 0) return;
    const drops = [...this.pending.values()];
    const at = this.now();
    admin.recordDrops(drops, drops.some((d) => d.reason === 'rejected' || d.reason === 'dead_letter' || d.reason === 'oldest' || d.reason === 'downsampled') ? 'STORAGE_FULL' : 'STORE_UNAVAILABLE', at);
    this.pending.clear();
  }

  /**
   * Metrics at once; a log line and a faults message per uplink and reason at most every
   * LOG_MS, with everything dropped since the previous one (a store refusing every commit tick
   * must not flood the log or the broker).
   */
  private report(drops: readonly Drop[], detail: Record<string, unknown>): void {
    for (const d of drops) {
      if (d.readings === 0 && d.batches === 0) continue;
      this.metrics.droppedReadings.inc({ uplink: d.uplink, reason: d.reason }, d.readings);
      this.metrics.droppedBatches.inc({ uplink: d.uplink, reason: d.reason }, d.batches);
      const k = `${d.uplink}\u0000${d.reason}`;
      const u = this.unreported.get(k) ?? { uplink: d.uplink, reason: d.reason, batches: 0, readings: 0 };
      u.batches += d.batches;
      u.readings += d.readings;
      this.unreported.set(k, u);
      if (!this.logs.take(k).log) continue;
      this.unreported.delete(k);
      this.emit(u, detail);
    }
  }

  private emit(u: Drop, detail: Record<string, unknown>): void {
    const code = u.reason === 'spool_full' || u.reason === 'spool_error' || u.reason === 'store_lost' ? 'STORE_UNAVAILABLE' : 'STORAGE_FULL';
    this.publish({ type: 'drop', code, uplink: u.uplink, reason: u.reason, batches: u.batches, readings: u.readings, at: this.now(), ...detail });
    this.log.warn({ code, uplink: u.uplink, reason: u.reason, batches: u.batches, readings: u.readings, ...detail }, `dropped ${u.readings} reading(s) (${u.reason})`);
  }
}
