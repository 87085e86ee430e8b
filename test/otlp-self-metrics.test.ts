/**
 * The agent's own metrics over OTLP (config `selfMetrics`): the real agent (child process) with
 * an otlp uplink to a real gRPC collector (test/helpers/otlp-server.ts) exports its Prometheus
 * registry through @opentelemetry/exporter-metrics-otlp-grpc: holdfast_* metrics arrive as
 * monotonic cumulative sums, gauges and histograms with sensible values and the gateway's
 * resource attributes, jittered but never faster than the interval allows, never as stored
 * tasks. An endpoint that is down is counted and logged once, not retried, and picked up when
 * it comes back. Also the registry conversion on its own.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type DataPoint, type Histogram as OtelHistogram } from '@opentelemetry/sdk-metrics';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { OtlpTestServer, attrs, type Metric, type Recorded } from './helpers/otlp-server.js';
import { count, diagnoseOnFailure, launchAgent, log, makeAgentDir, startAgent } from './helpers/agent.js';
import { registryToResourceMetrics, unitOf, SELF_SCOPE } from '../agent/api/otlp-metrics.js';
import { VERSION } from '../agent/version.js';

const INTERVAL_MS = 1000;
const JITTER = 0.2;
const LATENCY_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const isSelf = (r: Recorded) => r.request.resource_metrics[0]?.scope_metrics[0]?.scope.name === SELF_SCOPE;
function metric(r: Recorded, name: string): Metric | undefined {
  return r.request.resource_metrics[0].scope_metrics[0].metrics.find((m) => m.name === name);
}
/** The value of a sum's data point with exactly these attributes. */
function sumValue(r: Recorded, name: string, labels: Record<string, string> = {}): number | undefined {
  const p = metric(r, name)?.sum?.data_points.find((d) => JSON.stringify(attrs(d.attributes)) === JSON.stringify(labels));
  return p?.as_double;
}
/** A sample of the Prometheus text, by name and exact label text. */
function promValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

t.test("the agent's metrics arrive over OTLP: sums, gauges, histograms, resource attributes", async (t) => {
  const srv = await OtlpTestServer.start();
  const port = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 10, points: 5 }],
    batch: { maxReadings: 100, maxAgeMs: 200 },
    api: { port },
    selfMetrics: { uplink: 'collector', intervalMs: INTERVAL_MS, jitter: JITTER },
  });
  a.config.uplinks = [{ name: 'collector', type: 'otlp', url: srv.url, compression: 'gzip', timeoutMs: 2000, drain: { startJitterMs: 0 } }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await srv.close();
  });

  const selfs = () => srv.exports.filter(isSelf);
  // Buffer depth is cached for 5 s by the agent (a GROUP BY over the store): wait until it shows deliveries too.
  const deliveredDepth = (r: Recorded) => metric(r, 'holdfast_buffer_batches')?.gauge?.data_points
    .find((p) => attrs(p.attributes).status === 'delivered' && attrs(p.attributes).uplink === 'collector')?.as_double ?? 0;
  await waitFor(() => selfs().length >= 4 && (sumValue(selfs().at(-1)!, 'holdfast_deliveries_total', { uplink: 'collector' }) ?? 0) > 0 && deliveredDepth(selfs().at(-1)!) > 0,
    30_000, 'four self-metric exports, deliveries counted and in the buffer depth');
  const all = selfs();
  const last = all.at(-1)!;
  const rm = last.request.resource_metrics[0];
  t.same(attrs(rm.resource.attributes), {
    'service.name': 'holdfast', 'service.version': VERSION, 'service.instance.id': 'gw-test', 'holdfast.hardware.profile': 'generic-linux',
  }, 'resource attributes: the gateway, no batch key');
  const readingExports = srv.exports.filter((r) => !isSelf(r) && r.request.resource_metrics.length > 0);
  t.ok(readingExports.length > 0 && readingExports.every((r) => JSON.stringify(r.request.resource_metrics[0].resource) === JSON.stringify(rm.resource)),
    'the readings carry the very same resource: one target per gateway at the collector');
  t.same([rm.scope_metrics.length, rm.scope_metrics[0].scope.name, rm.scope_metrics[0].scope.version], [1, SELF_SCOPE, VERSION]);
  t.match(last.metadata['user-agent'], /^holdfast\//, 'sent by the agent (user agent)');
  const names = rm.scope_metrics[0].metrics.map((m) => m.name);
  t.ok(names.every((n) => n.startsWith('holdfast_')), `only holdfast_* metrics (${names.length})`);

  const committed = metric(last, 'holdfast_readings_committed_total')!;
  t.equal(committed.data, 'sum', 'a counter is a Sum');
  t.equal(committed.sum!.is_monotonic, true, '... monotonic');
  t.equal(committed.sum!.aggregation_temporality, 'AGGREGATION_TEMPORALITY_CUMULATIVE', '... cumulative');
  const cp = committed.sum!.data_points[0];
  t.ok(cp.as_double! > 0, `readings committed: ${cp.as_double}`);
  t.ok(BigInt(cp.start_time_unix_nano) < BigInt(cp.time_unix_nano), 'start time before the point time');
  const series = all.map((r) => metric(r, 'holdfast_readings_committed_total')?.sum?.data_points[0]).filter((p) => p !== undefined);
  t.ok(series.every((p, i) => i === 0 || p.as_double! >= series[i - 1].as_double!), `never decreasing across exports: ${series.map((p) => p.as_double).join(', ')}`);
  t.equal(new Set(series.map((p) => p.start_time_unix_nano)).size, 1, 'one start time for every cumulative point');
  const startMs = Number(BigInt(cp.start_time_unix_nano) / 1_000_000n);
  t.ok(Math.abs(Date.now() - startMs) < 120_000, 'the start time is when the agent started');

  t.ok(sumValue(last, 'holdfast_deliveries_total', { uplink: 'collector' })! > 0, 'deliveries of the collector lane counted');
  t.ok(sumValue(last, 'holdfast_attempts_total', { uplink: 'collector', result: 'ok' })! > 0, 'attempts by result');
  t.ok((sumValue(last, 'holdfast_self_metrics_exports_total', { result: 'ok' }) ?? 0) >= 1, 'its own successful exports, counted');

  const depth = metric(last, 'holdfast_buffer_batches')!;
  t.equal(depth.data, 'gauge', 'a gauge is a Gauge');
  const delivered = depth.gauge!.data_points.find((p) => attrs(p.attributes).status === 'delivered' && attrs(p.attributes).uplink === 'collector');
  t.ok(delivered && delivered.as_double! > 0, 'buffer depth by uplink and status');
  t.equal(delivered?.start_time_unix_nano, delivered?.time_unix_nano, 'a gauge point is an instant');
  t.same(metric(last, 'holdfast_breaker_state')!.gauge!.data_points.map((p) => [attrs(p.attributes).state, p.as_double]).sort(),
    [['closed', 1], ['half_open', 0], ['open', 0]], 'breaker state: closed');

  const lat = metric(last, 'holdfast_delivery_latency_seconds')!;
  t.equal(lat.data, 'histogram', 'a histogram is a Histogram');
  t.equal(lat.unit, 's', 'unit from the name: seconds');
  t.equal(lat.histogram!.aggregation_temporality, 'AGGREGATION_TEMPORALITY_CUMULATIVE');
  const hp = lat.histogram!.data_points.find((p) => attrs(p.attributes).uplink === 'collector')!;
  t.same(attrs(hp.attributes), { uplink: 'collector' }, 'no `le` attribute');
  t.same(hp.explicit_bounds, LATENCY_BOUNDS, 'the buckets of /metrics');
  t.equal(hp.bucket_counts.length, LATENCY_BOUNDS.length + 1, 'one count per bucket plus the overflow');
  const total = hp.bucket_counts.reduce((x, c) => x + Number(c), 0);
  t.ok(Number(hp.count) > 0, `latencies observed: ${hp.count}`);
  t.equal(total, Number(hp.count), 'bucket counts per bucket (not cumulative): they add up to count');
  t.ok(hp.sum! > 0 && hp.sum! / Number(hp.count) < 30, `mean latency ${(hp.sum! / Number(hp.count)).toFixed(4)} s`);

  // The same numbers as /metrics: read after the last export, never below it.
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.ok(promValue(text, 'holdfast_readings_committed_total') >= cp.as_double!, '/metrics is at or beyond the exported count');
  t.ok(promValue(text, 'holdfast_self_metrics_exports_total{result="ok"}') >= all.length - 1, `/metrics counts the exports (${all.length} arrived)`);

  // Jittered, but never closer than intervalMs x (1 - jitter) (less 100 ms for scheduling). Measured
  // on the collection times the agent stamps (arrival times also vary with the first connect).
  const at = series.map((p) => Number(BigInt(p.time_unix_nano) / 1_000_000n));
  const gaps = at.slice(1).map((x, i) => x - at[i]);
  t.ok(gaps.every((g) => g >= INTERVAL_MS * (1 - JITTER) - 100), `gaps between collections ${gaps.join(', ')} ms`);

  t.equal(await agent.stop(), 0, 'clean stop');
  const batches = count(a, 'SELECT count(*) FROM payloads');
  t.equal(count(a, 'SELECT count(*) FROM recovery_tasks'), batches, 'not stored: one task per batch, none for the metrics');
  const keys = srv.exports.filter((r) => !isSelf(r) && r.request.resource_metrics.length > 0).map((r) => r.metadata['idempotency-key']);
  t.ok(keys.length > 0 && keys.every((k) => typeof k === 'string' && count(a, 'SELECT count(*) FROM recovery_tasks WHERE idempotency_key = ?', k) === 1),
    `every other export (${keys.length}) is a stored batch of readings`);
});

t.test('a self-metrics endpoint that is down: counted, logged once, not retried, picked up when back', async (t) => {
  const srv = await OtlpTestServer.start();
  const sinkPort = await freePort();
  const port = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3 }],
    api: { port },
    selfMetrics: { uplink: 'metrics-sink', intervalMs: INTERVAL_MS },
  });
  a.config.uplinks = [
    { name: 'collector', type: 'otlp', url: srv.url, compression: 'none', timeoutMs: 2000, drain: { startJitterMs: 0 } },
    // Disabled: it gets no tasks and carries only the agent's metrics.
    { name: 'metrics-sink', type: 'otlp', enabled: false, url: `http://127.0.0.1:${sinkPort}`, compression: 'none' },
  ];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = startAgent(a);
  diagnoseOnFailure(t, a, agent);
  let sink: OtlpTestServer | null = null;
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await srv.close();
    await sink?.close();
  });
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => ''));
  await waitFor(async () => promValue(await metrics(), 'holdfast_self_metrics_exports_total{result="failed"}') >= 3, 30_000, 'three failed exports');
  const text = await metrics();
  t.ok(promValue(text, 'holdfast_self_metrics_export_failures_total{code="ECONNREFUSED"}') >= 3, 'failures counted by code (ECONNREFUSED)');
  const failLines = log(a).split('\n').filter((l) => l.includes('self-metrics export failed'));
  t.equal(failLines.length, 1, 'logged once, not once per failure');
  t.match(failLines[0], /"code":"ECONNREFUSED"/);
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'metrics-sink'`), 0, 'nothing stored for it');
  t.equal(count(a, `SELECT count(*) FROM recovery_events WHERE subject = 'metrics-sink'`), 0, 'no recovery data either: these are not readings');
  t.equal(srv.exports.filter(isSelf).length, 0, 'nothing went to the other collector');

  sink = await OtlpTestServer.start({ port: sinkPort });
  await waitFor(() => sink!.exports.some(isSelf), 30_000, 'exports reach the endpoint once it is up');
  await waitFor(() => log(a).includes('self-metrics export works again'), 10_000, 'the recovery is logged');
  const first = sink.exports.find(isSelf)!;
  t.ok((sumValue(first, 'holdfast_self_metrics_exports_total', { result: 'failed' }) ?? 0) >= 3, 'the first export after the outage carries the failure count');
  t.equal(sink.exports.filter((r) => !isSelf(r)).length, 0, 'a disabled uplink gets no readings');
  t.equal(await agent.stop(), 0, 'clean stop');
});

t.test('a collector that does not answer: one export in flight, ticks skipped and counted, stop does not wait for it', async (t) => {
  const sink = await OtlpTestServer.start();
  sink.answer(...Array.from({ length: 50 }, () => ({ kind: 'delay' as const, ms: 60_000 })));
  const port = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [], api: { port }, selfMetrics: { uplink: 'sink', intervalMs: INTERVAL_MS, timeoutMs: 10_000 } });
  a.config.uplinks = [{ name: 'sink', type: 'otlp', enabled: false, url: sink.url, compression: 'none' }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await sink.close();
  });
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => ''));
  await waitFor(async () => promValue(await metrics(), 'holdfast_self_metrics_exports_total{result="skipped"}') >= 2, 30_000, 'ticks skipped while an export hangs');
  t.equal(sink.exports.filter(isSelf).length, 1, 'exactly one export reached the collector: at most one in flight');
  const t0 = Date.now();
  t.equal(await agent.stop(), 0, 'clean stop');
  const ms = Date.now() - t0;
  t.ok(ms < 5000, `stopped in ${ms} ms, without waiting out the hanging export's 10 s deadline`);
});

t.test('registry conversion: types, per-bucket counts, units, what is left out', async (t) => {
  const r = new Registry();
  const c = new Counter({ name: 'x_requests_total', help: 'requests', labelNames: ['u'], registers: [r] });
  c.inc({ u: 'a' }, 3);
  c.inc({ u: 'b' });
  new Counter({ name: 'x_never_total', help: 'never incremented', labelNames: ['u'], registers: [r] });
  const h = new Histogram({ name: 'x_wait_seconds', help: 'wait', labelNames: ['u'], buckets: [0.1, 1], registers: [r] });
  for (const v of [0.05, 0.5, 0.7, 5]) h.observe({ u: 'a' }, v);
  h.observe({ u: 'b' }, 0.01);
  new Gauge({ name: 'x_temp_celsius', help: 'temp', registers: [r], collect() { this.set(41.5); } });
  new Summary({ name: 'x_summary', help: 'not converted', registers: [r] }).observe(1);
  const res = resourceFromAttributes({ 'service.name': 't' });
  const { resourceMetrics, skipped } = await registryToResourceMetrics(r, res, 1_000_000, () => 2_000_500);
  t.equal(skipped, 1, 'the summary is skipped');
  const ms = resourceMetrics.scopeMetrics[0].metrics;
  t.same(ms.map((m) => m.descriptor.name), ['x_requests_total', 'x_wait_seconds', 'x_temp_celsius'], 'a counter without series is left out');
  const [sum, hist, gauge] = ms;
  t.same([sum.dataPointType, sum.aggregationTemporality, 'isMonotonic' in sum && sum.isMonotonic], [DataPointType.SUM, AggregationTemporality.CUMULATIVE, true]);
  t.same(sum.dataPoints.map((p) => [p.attributes, p.value, p.startTime, p.endTime]), [
    [{ u: 'a' }, 3, [1000, 0], [2000, 500_000_000]],
    [{ u: 'b' }, 1, [1000, 0], [2000, 500_000_000]],
  ], 'values, labels as attributes, start and end times');
  t.equal(hist.dataPointType, DataPointType.HISTOGRAM);
  t.equal(hist.descriptor.unit, 's');
  const hp = hist.dataPoints as DataPoint<OtelHistogram>[];
  t.same(hp.map((p) => [p.attributes, p.value.buckets, p.value.count, p.value.sum]), [
    [{ u: 'a' }, { boundaries: [0.1, 1], counts: [1, 2, 1] }, 4, 6.25],
    [{ u: 'b' }, { boundaries: [0.1, 1], counts: [1, 0, 0] }, 1, 0.01],
  ], 'per-bucket counts with the overflow bucket, one point per label set');
  t.same([gauge.dataPointType, gauge.descriptor.unit, gauge.dataPoints[0].value, gauge.dataPoints[0].startTime], [DataPointType.GAUGE, 'Cel', 41.5, [2000, 500_000_000]]);
  t.same(['a_seconds_total', 'b_volts', 'c_bytes', 'd_total', 'e_seconds_x'].map(unitOf), ['s', 'V', 'By', '', '']);
});
