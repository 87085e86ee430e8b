/**
 * Prometheus metrics of the contract, with prom-client (the reference implementation of the text
 * exposition format: escaping, histogram buckets and `# TYPE` lines that promtool accepts).
 * Buffer depth comes from the store's partial indexes at scrape time (cheap); deliveries, retries
 * and latency are counted by the lanes as they happen; temperature and bus voltage are the last
 * samples of the board sensors; field faults are counted by class and code as verdicts arrive.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DepthRow } from '../../store/admin.js';

export type { DepthRow };

export interface MetricsSources {
  depth(): DepthRow[];
  breakers(): { uplink: string; state: string }[];
  cpuTempC(): number | null;
  /** The thermal governor's factor: 1 at full speed, below 1 while throttled. */
  throttleFactor(): number;
  busVolts(): { bus: string; volts: number | null }[];
}

const BREAKER_STATES = ['closed', 'open', 'half_open'];

export class Metrics {
  readonly registry = new Registry();
  readonly deliveries: Counter<'uplink'>;
  readonly attempts: Counter<'uplink' | 'result'>;
  readonly retries: Counter<'uplink'>;
  readonly latency: Histogram<'uplink'>;
  readonly faults: Counter<'class' | 'code'>;
  readonly linkFailures: Counter<'uplink' | 'code'>;
  readonly internalErrors: Counter<'site' | 'code'>;
  readonly readings: Counter;
  readonly otlpRejected: Counter<'uplink'>;
  readonly sep2Skipped: Counter<'uplink' | 'device' | 'point' | 'reason'>;
  readonly selfExports: Counter<'result'>;
  readonly selfExportFailures: Counter<'code'>;
  readonly clockSteps: Counter<'direction'>;
  readonly clockSynced: Gauge;
  readonly unsyncedReadings: Counter<'outcome'>;
  /** The local HTTP API's connections (agent/api/server.ts): open, refused at the cap, dropped. */
  readonly apiConnections: Gauge;
  readonly apiRefused: Counter;
  readonly apiDropped: Counter<'reason'>;
  /** When the counters started (epoch ms): the start time of every cumulative OTLP point. */
  readonly startedAt = Date.now();

  constructor(src: MetricsSources) {
    const r = this.registry;
    this.deliveries = new Counter({ name: 'holdfast_deliveries_total', help: 'Batches acknowledged by an uplink', labelNames: ['uplink'], registers: [r] });
    this.attempts = new Counter({ name: 'holdfast_attempts_total', help: 'Delivery attempts by result (ok, payload, link)', labelNames: ['uplink', 'result'], registers: [r] });
    this.retries = new Counter({ name: 'holdfast_retries_total', help: 'Attempts that were retries of an earlier failure', labelNames: ['uplink'], registers: [r] });
    this.latency = new Histogram({
      name: 'holdfast_delivery_latency_seconds', help: 'Request to acknowledgement time of a delivery', labelNames: ['uplink'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [r],
    });
    this.faults = new Counter({ name: 'holdfast_field_faults_total', help: 'Field fault verdicts by class and code', labelNames: ['class', 'code'], registers: [r] });
    this.internalErrors = new Counter({ name: 'holdfast_internal_errors_total', help: 'Failures caught by the owner of a timer or callback (agent/guard.ts), by site and error code', labelNames: ['site', 'code'], registers: [r] });
    this.linkFailures = new Counter({ name: 'holdfast_link_failures_total', help: 'Failed connects and lost connections per uplink, by error code', labelNames: ['uplink', 'code'], registers: [r] });
    this.readings = new Counter({ name: 'holdfast_readings_committed_total', help: 'Readings committed to the store', registers: [r] });
    this.otlpRejected = new Counter({
      name: 'holdfast_otlp_rejected_points_total', help: 'Data points an OTLP collector refused in partial successes (the batch counts as delivered)',
      labelNames: ['uplink'], registers: [r],
    });
    this.sep2Skipped = new Counter({
      name: 'holdfast_sep2_skipped_readings_total', help: 'Readings an IEEE 2030.5 uplink delivered a batch without (a unit 2030.5 cannot express, not a number...), by device, point and reason',
      labelNames: ['uplink', 'device', 'point', 'reason'], registers: [r],
    });
    this.selfExports = new Counter({
      name: 'holdfast_self_metrics_exports_total', help: 'Exports of these metrics over OTLP by result (ok, failed, skipped: the previous one still in flight)',
      labelNames: ['result'], registers: [r],
    });
    this.selfExportFailures = new Counter({
      name: 'holdfast_self_metrics_export_failures_total', help: 'Failed exports of these metrics over OTLP by error code (never stored nor retried)',
      labelNames: ['code'], registers: [r],
    });
    this.clockSteps = new Counter({
      name: 'holdfast_clock_steps_total', help: 'Steps of the wall clock beyond the threshold, by direction (forward, backward); timers run on the monotonic clock',
      labelNames: ['direction'], registers: [r],
    });
    this.clockSynced = new Gauge({ name: 'holdfast_clock_synced', help: '1 when the wall clock is at or above the release\'s floor (synchronised), 0 while readings are flagged unsynced', registers: [r] });
    this.unsyncedReadings = new Counter({
      name: 'holdfast_unsynced_readings_total',
      help: 'Readings stamped by an unsynchronised wall clock, by outcome: flagged, rebased_memory / rebased_stored (re-based once the clock was good), unrebasable (their boot never had a good clock)',
      labelNames: ['outcome'], registers: [r],
    });
    this.apiConnections = new Gauge({ name: 'holdfast_api_connections', help: 'Open connections to the local HTTP API (at most api.maxConnections)', registers: [r] });
    this.apiRefused = new Counter({
      name: 'holdfast_api_connections_refused_total', help: 'Connections to the local HTTP API closed at once: api.maxConnections open, none of them evictable', registers: [r],
    });
    this.apiDropped = new Counter({
      name: 'holdfast_api_connections_dropped_total',
      help: 'Connections to the local HTTP API closed by the agent, by reason: evicted (no request in progress, its slot taken by a new connection at the cap), timeout (request head not complete in time: 408), idle (no request for api.idleTimeoutMs)',
      labelNames: ['reason'], registers: [r],
    });
    for (const reason of ['evicted', 'timeout', 'idle']) this.apiDropped.inc({ reason }, 0);
    new Gauge({
      name: 'holdfast_buffer_batches', help: 'Tasks in the store by uplink and status', labelNames: ['uplink', 'status'], registers: [r],
      collect() {
        this.reset();
        for (const d of src.depth()) this.set({ uplink: d.uplink, status: d.status }, d.tasks);
      },
    });
    new Gauge({
      name: 'holdfast_buffer_readings', help: 'Readings in the store by uplink and status', labelNames: ['uplink', 'status'], registers: [r],
      collect() {
        this.reset();
        for (const d of src.depth()) this.set({ uplink: d.uplink, status: d.status }, d.readings);
      },
    });
    new Gauge({
      name: 'holdfast_breaker_state', help: 'Circuit breaker state per uplink (1 for the current state)', labelNames: ['uplink', 'state'], registers: [r],
      collect() {
        this.reset();
        for (const b of src.breakers()) for (const s of BREAKER_STATES) this.set({ uplink: b.uplink, state: s }, b.state === s ? 1 : 0);
      },
    });
    let tempC: number | null = null;
    const temp = new Gauge({
      name: 'holdfast_cpu_temperature_celsius', help: 'CPU temperature (absent when the board has no readable sensor)', registers: [r],
      collect() {
        tempC = src.cpuTempC();
        if (tempC !== null) this.set(tempC);
      },
    });
    // prom-client keeps a 0 sample for a gauge without labels even after reset(): without a
    // sensor the sample is left out, as a 0 °C reading is a lie that alerting rules would act on.
    const getTemp = temp.get.bind(temp);
    temp.get = async () => {
      const m = await getTemp();
      return tempC === null ? { ...m, values: [] } : m;
    };
    new Gauge({
      name: 'holdfast_throttle_factor', help: 'Thermal governor: fraction of the drain, retry and poll rates in force (1 = full speed)', registers: [r],
      collect() {
        this.set(src.throttleFactor());
      },
    });
    new Gauge({
      name: 'holdfast_bus_voltage_volts', help: 'RS-485 bus voltage per bus (absent when not measured)', labelNames: ['bus'], registers: [r],
      collect() {
        this.reset();
        for (const b of src.busVolts()) if (b.volts !== null) this.set({ bus: b.bus }, b.volts);
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
