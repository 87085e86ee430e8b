/**
 * The agent's Prometheus registry (agent/api/metrics.ts) as one OTLP ResourceMetrics, the shape
 * @opentelemetry/exporter-metrics-otlp-grpc exports. One source of truth: what an OTLP
 * collector receives is what /metrics shows at that instant, under the same names.
 *
 *   prom-client      OTLP
 *   counter          Sum, monotonic, CUMULATIVE, start = when the registry was created
 *   gauge            Gauge (start = time = the collection)
 *   histogram        Histogram, CUMULATIVE: explicit bounds = the finite `le` bounds, bucket
 *                    counts per bucket (prom-client's are cumulative: differenced here, +Inf
 *                    last), sum and count from `_sum` and `_count`
 *   summary          none in the registry; skipped (and counted in `skipped`)
 *
 * Names stay the Prometheus names (holdfast_deliveries_total, not holdfast.deliveries): an
 * operator greps one name in both places, and a collector exporting to Prometheus keeps them.
 * Labels become data point attributes. The unit comes from the name's suffix where the name
 * says it (_seconds -> s, _celsius -> Cel, _volts -> V, _bytes -> By; UCUM, as OTLP wants).
 * Values are doubles; a metric without a series yet is left out. Pure apart from running the
 * registry's collect callbacks.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type DataPoint, type Histogram, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Registry } from 'prom-client';
import { VERSION } from '../version.js';

export const SELF_SCOPE = 'holdfast.agent';

/** One metric as prom-client's getMetricsAsJSON() returns it (its types say less than it gives). */
interface PromMetric {
  name: string;
  help: string;
  type: unknown;
  values: { value: number; labels: Record<string, string | number | undefined>; metricName?: string }[];
}

export interface Converted {
  resourceMetrics: ResourceMetrics;
  /** Metrics that have no OTLP form here (summaries). */
  skipped: number;
}

const UNITS: readonly [RegExp, string][] = [
  [/_seconds(_total)?$/, 's'],
  [/_celsius$/, 'Cel'],
  [/_volts$/, 'V'],
  [/_bytes(_total)?$/, 'By'],
];

export function unitOf(name: string): string {
  for (const [re, unit] of UNITS) if (re.test(name)) return unit;
  return '';
}

/** Epoch milliseconds as HrTime. */
function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** prom-client reports `type` as 'counter' at run time; its typings say a numeric enum. Both accepted. */
function kindOf(t: unknown): string {
  if (typeof t === 'string') return t;
  return ['counter', 'gauge', 'histogram', 'summary'][t as number] ?? 'unknown';
}

function attributes(labels: Record<string, string | number | undefined>, drop?: string): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(labels)) if (k !== drop && v !== undefined) out[k] = String(v);
  return out;
}

/** The label set as a key (sorted, without `le`), to group a histogram's series. */
function seriesKey(labels: Record<string, string | number | undefined>): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function histogramPoints(m: PromMetric, start: HrTime, end: HrTime): DataPoint<Histogram>[] {
  type Series = { labels: Record<string, string | number | undefined>; buckets: [number, number][]; sum: number; count: number };
  const series = new Map<string, Series>();
  for (const v of m.values) {
    const key = seriesKey(v.labels);
    let s = series.get(key);
    if (!s) series.set(key, (s = { labels: v.labels, buckets: [], sum: 0, count: 0 }));
    if (v.metricName === `${m.name}_bucket`) s.buckets.push([v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), v.value]);
    else if (v.metricName === `${m.name}_sum`) s.sum = v.value;
    else if (v.metricName === `${m.name}_count`) s.count = v.value;
  }
  const points: DataPoint<Histogram>[] = [];
  for (const s of series.values()) {
    s.buckets.sort((a, b) => a[0] - b[0]);
    const boundaries = s.buckets.filter(([le]) => Number.isFinite(le)).map(([le]) => le);
    const counts: number[] = [];
    let below = 0;
    for (const [, cumulative] of s.buckets) {
      counts.push(Math.max(0, cumulative - below));
      below = cumulative;
    }
    if (counts.length === boundaries.length) counts.push(Math.max(0, s.count - below)); // no +Inf bucket reported
    points.push({ startTime: start, endTime: end, attributes: attributes(s.labels, 'le'), value: { buckets: { boundaries, counts }, sum: s.sum, count: s.count } });
  }
  return points;
}

/** One prom-client metric as OTLP metric data; null for a type without an OTLP form here. */
export function toMetricData(m: PromMetric, startMs: number, nowMs: number): MetricData | null {
  const descriptor = { name: m.name, description: m.help, unit: unitOf(m.name), valueType: ValueType.DOUBLE };
  const start = hr(startMs);
  const end = hr(nowMs);
  const numberPoints = (from: HrTime): DataPoint<number>[] =>
    m.values.map((v) => ({ startTime: from, endTime: end, attributes: attributes(v.labels), value: v.value }));
  switch (kindOf(m.type)) {
    case 'counter':
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: numberPoints(start) };
    case 'gauge':
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints: numberPoints(end) };
    case 'histogram':
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.HISTOGRAM, dataPoints: histogramPoints(m, start, end) };
    default:
      return null;
  }
}

/**
 * Collects the registry (its gauges' collect callbacks run, as for a scrape) and converts it.
 * `startMs`: when the registry's counters started counting (the start of every cumulative point).
 */
export async function registryToResourceMetrics(registry: Registry, resource: Resource, startMs: number, nowMs: () => number = Date.now): Promise<Converted> {
  const json = (await registry.getMetricsAsJSON()) as unknown as PromMetric[];
  const at = nowMs();
  const metrics: MetricData[] = [];
  let skipped = 0;
  for (const m of json) {
    const d = toMetricData(m, startMs, at);
    if (!d) skipped++;
    else if (d.dataPoints.length > 0) metrics.push(d); // a labelled counter never incremented, an absent sensor: nothing to say

  }
  return { resourceMetrics: { resource, scopeMetrics: [{ scope: { name: SELF_SCOPE, version: VERSION }, metrics }] }, skipped };
}
