/**
 * Readings an uplink delivered a batch without (IEEE 2030.5: a unit the standard cannot express,
 * a value that is not a number...: drivers/sep2/units.ts) are never left out silently:
 *   - counted at once in holdfast_sep2_skipped_readings_total{uplink,device,point,reason};
 *   - recorded in the store as events of kind `skipped` (scope uplink, subject the uplink, detail
 *     {skipped: [{device, point, reason, unit, readings}], first?}) whose `readings` add up to
 *     every reading skipped: `holdfast status` sums them by device, point and reason;
 *   - logged (a warning when first seen, then with each summary).
 *
 * Rate: the first time this process sees a device+point+reason on an uplink, it is recorded and
 * logged at once (`first: true`). After that its readings accumulate, and each uplink writes at
 * most ONE summary event per `summaryMs` (10 minutes) with everything skipped since its last one:
 * written at the first skip after the period, and by flush() when the agent stops. A point
 * skipped every second thus costs one row when first seen, then at most six an hour for the
 * whole uplink, whatever the number of points.
 */
import type { Logger } from 'pino';
import type { Events } from '../store/events.js';
import type { Clock } from './clock.js';
import type { SkippedReadings } from '../drivers/sep2/client.js';
import { describeSkip, type SkipReason } from '../drivers/sep2/units.js';

export const SKIP_SUMMARY_MS = 600_000;

type Labels = 'uplink' | 'device' | 'point' | 'reason';

export interface SkipReportDeps {
  events: Pick<Events, 'record'>;
  counter: { inc(labels: Record<Labels, string>, n: number): void };
  log: Logger;
  clock: Pick<Clock, 'mono' | 'wall'>;
  summaryMs?: number;
}

export interface SkipTally { device: string; point: string; reason: SkipReason; unit: string; readings: number }

interface UplinkState {
  /** device+point+reason keys recorded already. */
  seen: Set<string>;
  /** Readings skipped since the last event, by key. */
  pending: Map<string, SkipTally>;
  /** When the last summary was written (or the uplink's first skip was seen): monotonic ms. */
  summaryAt: number;
}

export class SkipReport {
  private readonly uplinks = new Map<string, UplinkState>();
  private readonly summaryMs: number;

  constructor(private readonly deps: SkipReportDeps) {
    this.summaryMs = deps.summaryMs ?? SKIP_SUMMARY_MS;
  }

  /** The skipped readings of one delivered batch. */
  take(e: SkippedReadings): void {
    const now = this.deps.clock.mono();
    let u = this.uplinks.get(e.uplink);
    if (!u) this.uplinks.set(e.uplink, (u = { seen: new Set(), pending: new Map(), summaryAt: now }));
    const first: SkipTally[] = [];
    for (const s of e.skipped) {
      if (s.readings <= 0) continue;
      this.deps.counter.inc({ uplink: e.uplink, device: e.device, point: s.point, reason: s.reason }, s.readings);
      const key = `${e.device}\u0000${s.point}\u0000${s.reason}`;
      const tally: SkipTally = { device: e.device, point: s.point, reason: s.reason, unit: s.unit, readings: s.readings };
      if (!u.seen.has(key)) {
        u.seen.add(key);
        first.push(tally);
        continue;
      }
      const p = u.pending.get(key);
      if (p) p.readings += s.readings;
      else u.pending.set(key, tally);
    }
    if (first.length > 0) {
      this.record(e.uplink, first, { first: true, task: e.taskId, key: e.key });
      for (const f of first) {
        this.deps.log.warn({ uplink: e.uplink, device: f.device, point: f.point, reason: f.reason, unit: f.unit, readings: f.readings, task: e.taskId },
          `uplink ${e.uplink}: readings of ${f.device} ${f.point} are not posted: ${describeSkip(f.reason, f.unit)} (counted from now on; summary every ${Math.round(this.summaryMs / 60_000)} min)`);
      }
    }
    if (u.pending.size > 0 && now - u.summaryAt >= this.summaryMs) this.summarise(e.uplink, u, now);
  }

  /** Writes every summary pending (the agent is stopping). */
  flush(): void {
    const now = this.deps.clock.mono();
    for (const [uplink, u] of this.uplinks) if (u.pending.size > 0) this.summarise(uplink, u, now);
  }

  private summarise(uplink: string, u: UplinkState, now: number): void {
    const list = [...u.pending.values()];
    u.pending.clear();
    u.summaryAt = now;
    this.record(uplink, list, {});
    const readings = list.reduce((n, x) => n + x.readings, 0);
    this.deps.log.info({ uplink, readings, points: list.length, skipped: list }, `uplink ${uplink}: ${readings} reading(s) of ${list.length} point(s) not posted since the last summary`);
  }

  /** GuardedEvents never throws: while the store is unavailable the event waits in memory. */
  private record(uplink: string, skipped: SkipTally[], extra: Record<string, unknown>): void {
    this.deps.events.record({ scope: 'uplink', subject: uplink, kind: 'skipped', faultClass: 'payload', at: this.deps.clock.wall(), detail: { skipped, ...extra } });
  }
}
