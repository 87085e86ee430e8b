/**
 * Downsampling, pure: the readings of a point within one interval merged into one summary
 * reading, `{device, point, ts, value, unit, quality, min, max, count, intervalMs}`:
 *
 *   - `ts` is the start of the interval (a multiple of intervalMs since the epoch), `value` the
 *     mean, `min`/`max` the extremes, `count` how many readings it stands for;
 *   - readings that are summaries already merge by their counts (a mean of means weighted by count);
 *   - a point whose values are not numbers (text, true/false, null) keeps the last value of the
 *     interval, with its count and no min/max;
 *   - the quality is the worst in the interval (bad, then uncertain, then not_implemented, then good).
 *
 * A consumer tells a summary from a reading by `count` (and `intervalMs`); MQTT carries them as
 * they are, OTLP and IEEE 2030.5 send `value` (the mean) (docs/storage.md).
 */
import type { Quality, Reading } from '../reading.js';

export interface SummaryReading extends Reading {
  min: number | null;
  max: number | null;
  count: number;
  intervalMs: number;
}

const WORST: Record<Quality, number> = { good: 0, not_implemented: 1, uncertain: 2, bad: 3 };

interface Acc {
  device: string;
  point: string;
  ts: number;
  unit: string;
  quality: Quality;
  count: number;
  sum: number;
  min: number;
  max: number;
  numeric: boolean;
  last: Reading['value'];
  lastTs: number;
}

function isSummary(r: Reading): r is SummaryReading {
  return typeof (r as Partial<SummaryReading>).count === 'number';
}

export function downsample(readings: readonly Reading[], intervalMs: number): SummaryReading[] {
  const groups = new Map<string, Acc>();
  for (const r of readings) {
    const ts = Math.floor(r.ts / intervalMs) * intervalMs;
    const k = `${r.device}\u0000${r.point}\u0000${ts}`;
    const n = isSummary(r) ? r.count : 1;
    const num = typeof r.value === 'number' && Number.isFinite(r.value);
    let a = groups.get(k);
    if (!a) {
      a = { device: r.device, point: r.point, ts, unit: r.unit, quality: r.quality, count: 0, sum: 0, min: Infinity, max: -Infinity, numeric: true, last: null, lastTs: -Infinity };
      groups.set(k, a);
    }
    a.count += n;
    if (WORST[r.quality] > WORST[a.quality]) a.quality = r.quality;
    if (r.ts >= a.lastTs) {
      a.last = r.value;
      a.lastTs = r.ts;
    }
    if (!num) {
      a.numeric = false;
      continue;
    }
    const v = r.value as number;
    a.sum += v * n;
    a.min = Math.min(a.min, isSummary(r) && r.min !== null ? r.min : v);
    a.max = Math.max(a.max, isSummary(r) && r.max !== null ? r.max : v);
  }
  return [...groups.values()]
    .sort((x, y) => x.ts - y.ts || (x.device < y.device ? -1 : x.device > y.device ? 1 : 0) || (x.point < y.point ? -1 : x.point > y.point ? 1 : 0))
    .map((a) => ({
      device: a.device, point: a.point, ts: a.ts, value: a.numeric ? a.sum / a.count : a.last, unit: a.unit, quality: a.quality,
      min: a.numeric ? a.min : null, max: a.numeric ? a.max : null, count: a.count, intervalMs,
    }));
}
