/**
 * How readings become OpenTelemetry metrics (docs/uplinks.md, "OTLP mapping"). Pure.
 *
 *   resource   the gateway, the same for every batch and for the agent's own metrics, so a
 *              collector sees one target per gateway (one `target_info` series in its Prometheus
 *              exporter): service.name 'holdfast', service.version, service.instance.id = the
 *              gateway id, holdfast.hardware.profile. Nothing per batch: the idempotency key
 *              travels as gRPC metadata (client.ts), where a collector can read it
 *              (`include_metadata`) without a new series per batch.
 *   scope      name 'holdfast', version = the agent version.
 *   metric     one gauge per point name and unit: `field.<point>` (`:` -> `_`, which OTel names
 *              may not hold), SunSpec points `sunspec.<model family>.<point>` (m103.PhVphA ->
 *              sunspec.inverter.PhVphA, so 101, 102 and 103 inverters share their metrics), with
 *              the device map's unit in UCUM (UCUM_UNITS; a unit not in it passes verbatim).
 *   point      NumberDataPoint as_double, start_time = time = the reading's ORIGINAL ts (ms ->
 *              ns); attributes device, point, quality (+ holdfast.clock on a reading stamped by
 *              an unsynchronised clock). A re-sent batch yields the same points at the same
 *              timestamps, which a time-series store keeps once.
 *   values     finite numbers as they are; booleans as 1/0; strings and null are not
 *              representable in a gauge: skipped and counted. Elements that are not readings
 *              (no device/point, bad ts) are counted as invalid.
 */
import { ValueType, type HrTime } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type DataPoint, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { sunspecModel } from '../modbus/sunspec.js';

const UNKNOWN_VERSION = '0.0.0';
export const FIELD_NAMESPACE = 'field';

/**
 * Device-map unit -> UCUM (the units OpenTelemetry asks for). UCUM has no var: reactive power
 * goes as the annotation {var}, which UCUM reads as dimensionless but keeps the word.
 * Dimensionless readings (counters, enums, a power factor) are '1'.
 */
export const UCUM_UNITS: Readonly<Record<string, string>> = Object.freeze({
  '': '1', PF: '1', cosPhi: '1',
  '%': '%', Pct: '%',
  C: 'Cel', '°C': 'Cel', degC: 'Cel',
  Wh: 'W.h', kWh: 'kW.h', MWh: 'MW.h', Ah: 'A.h', VAh: 'VA.h', kVAh: 'kVA.h',
  var: '{var}', Var: '{var}', kvar: '{kvar}', Mvar: '{Mvar}',
  varh: '{var}.h', Varh: '{var}.h', kvarh: '{kvar}.h',
});

export function ucumUnit(unit: string): string {
  return Object.hasOwn(UCUM_UNITS, unit) ? UCUM_UNITS[unit] : unit;
}

/** The metric a point's readings go to. Point names match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$. */
export function metricName(point: string): string {
  const m = /^m(\d+)\.(.+)$/.exec(point);
  const model = m ? sunspecModel(Number(m[1])) : undefined;
  const name = model ? `sunspec.${model.family}.${m![2]}` : `${FIELD_NAMESPACE}.${point}`;
  return name.replaceAll(':', '_');
}

/** The gateway as an OTel resource: the readings' and the agent's own metrics' alike. */
export function gatewayResource(gatewayId: string, hardwareProfile: string, version?: string): Resource {
  return resourceFromAttributes({
    'service.name': 'holdfast',
    'service.version': version ?? UNKNOWN_VERSION,
    'service.instance.id': gatewayId,
    'holdfast.hardware.profile': hardwareProfile,
  });
}

/** Epoch milliseconds as OTel HrTime [seconds, nanoseconds], exact for integer ms. */
export function msToHrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

export interface BatchMeta {
  gatewayId: string;
  hardwareProfile: string;
  /** The agent's version, for the resource and the instrumentation scope. */
  version?: string;
}

export interface BuiltBatch {
  resourceMetrics: ResourceMetrics;
  dataPoints: number;
  skipped: number;
  invalid: number;
}

/** A reading element as stored; validated field by field, never trusted. */
interface StoredReading {
  device?: unknown;
  point?: unknown;
  ts?: unknown;
  value?: unknown;
  unit?: unknown;
  quality?: unknown;
  clock?: unknown;
}

/** One stored batch (the readings array) as one ResourceMetrics. Throws a TypeError only when `readings` is not an array. */
export function batchToResourceMetrics(readings: unknown, meta: BatchMeta): BuiltBatch {
  if (!Array.isArray(readings)) throw new TypeError('the stored batch is not a JSON array of readings');
  const metrics = new Map<string, MetricData & { dataPoints: DataPoint<number>[] }>();
  let dataPoints = 0;
  let skipped = 0;
  let invalid = 0;
  for (const el of readings as unknown[]) {
    const r = (typeof el === 'object' && el !== null ? el : {}) as StoredReading;
    if (typeof r.device !== 'string' || typeof r.point !== 'string' || typeof r.ts !== 'number' || !Number.isFinite(r.ts) || r.ts < 0) {
      invalid++;
      continue;
    }
    let value: number;
    if (typeof r.value === 'number' && Number.isFinite(r.value)) value = r.value;
    else if (typeof r.value === 'boolean') value = r.value ? 1 : 0;
    else {
      skipped++;
      continue;
    }
    const name = metricName(r.point);
    const unit = ucumUnit(typeof r.unit === 'string' ? r.unit : '');
    // Name and unit together: one point name in two units (two device maps) stays two metrics.
    const id = `${name}\0${unit}`;
    let metric = metrics.get(id);
    if (!metric) {
      metric = {
        descriptor: { name, unit, description: `Field reading ${r.point}; attributes device, point, quality`, valueType: ValueType.DOUBLE },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints: [],
      };
      metrics.set(id, metric);
    }
    const t = msToHrTime(r.ts);
    metric.dataPoints.push({
      startTime: t,
      endTime: t,
      value,
      attributes: {
        device: r.device,
        point: r.point,
        quality: typeof r.quality === 'string' ? r.quality : 'uncertain',
        // Only on readings stamped while the gateway's clock was not synchronised (docs/clocks.md).
        ...(r.clock === 'unsynced' || r.clock === 'rebased' ? { 'holdfast.clock': r.clock } : {}),
      },
    });
    dataPoints++;
  }
  const resourceMetrics: ResourceMetrics = {
    resource: gatewayResource(meta.gatewayId, meta.hardwareProfile, meta.version),
    scopeMetrics: [{ scope: { name: 'holdfast', version: meta.version ?? UNKNOWN_VERSION }, metrics: [...metrics.values()] }],
  };
  return { resourceMetrics, dataPoints, skipped, invalid };
}
