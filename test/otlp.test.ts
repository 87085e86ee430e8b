/**
 * The OTLP/gRPC uplink (drivers/otlp) against a real gRPC collector on loopback
 * (test/helpers/otlp-server.ts, decoding with opentelemetry-proto v1 field numbers): what a
 * batch looks like on the wire, how every scripted gRPC status is classified, that one send()
 * is exactly one request (no hidden retry), partial success, TLS, and a collector that goes
 * down and comes back.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { classify, DEFAULT_BUSY_HINT_MS, GRPC_TABLE, type RawFailure } from '../agent/policy/classify.js';
import { OtlpDriver, type OtlpDriverOptions, type OtlpSendResult, type PartialEvent } from '../drivers/otlp/client.js';
import { batchToResourceMetrics, metricName, msToHrTime, ucumUnit } from '../drivers/otlp/model.js';
import { grpcRawFailure, rawFromGrpcError, retryDelayMs, GRPC_STATUS_NAMES } from '../drivers/otlp/grpc-status.js';
import type { OutboundMessage } from '../drivers/uplink.js';
import type { Reading } from '../agent/reading.js';
import { OtlpTestServer, attrs, statusDetailsBin } from './helpers/otlp-server.js';
import { waitFor } from './helpers/mosquitto.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The exporter's RetryingTransport would retry after 1000 ms +-20 %: wait past that to be sure none comes. */
const HIDDEN_RETRY_WINDOW_MS = 1500;

function driver(url: string, patch: Partial<OtlpDriverOptions> = {}): OtlpDriver {
  return new OtlpDriver({
    name: 'otel', url, gatewayId: 'gw-7', hardwareProfile: 'rpi4-rs485', compression: 'none', timeoutMs: 2000,
    headers: { Authorization: 'Bearer s3cret' }, ...patch,
  });
}

/** A test server and a driver pointed at it, both closed at the test's end. */
async function served(t: Test, patch: Partial<OtlpDriverOptions> = {}): Promise<{ srv: OtlpTestServer; d: OtlpDriver }> {
  const srv = await OtlpTestServer.start();
  const d = driver(srv.url, patch);
  t.teardown(async () => {
    await d.close();
    await srv.close();
  });
  return { srv, d };
}

let seq = 0;
function msg(readings: unknown[]): OutboundMessage {
  seq++;
  return { taskId: seq, key: `gw-7:inv:${seq}`, seq, device: 'inv', historical: false, readingCount: readings.length, readings: Buffer.from(JSON.stringify(readings)) };
}

const T0 = 1717171717123; // ms, not a whole second: the nanoseconds must keep the milliseconds
const READINGS: Reading[] = [
  { device: 'inv', point: 'm103.W', ts: T0, value: 4312.5, unit: 'W', quality: 'good' },
  { device: 'inv', point: 'm103.Hz', ts: T0 + 1, value: 50.01, unit: 'Hz', quality: 'good' },
  { device: 'inv', point: 'm103.PhVphA', ts: T0 - 60_000, value: 231, unit: 'V', quality: 'uncertain' },
  { device: 'inv', point: 'breaker.closed', ts: T0 + 2, value: true, unit: '', quality: 'good' },
  { device: 'inv', point: 'm1.Mn', ts: T0, value: 'Holdfast', unit: '', quality: 'good' },
  { device: 'inv', point: 'm103.TmpCab', ts: T0, value: null, unit: 'C', quality: 'not_implemented' },
  { device: 'meter-2', point: 'm701.W', ts: 1_000_000_000_000, value: -12.25, unit: 'W', quality: 'bad' },
];
const NUMERIC = READINGS.filter((r) => typeof r.value === 'number' || typeof r.value === 'boolean');

function failure(r: OtlpSendResult): RawFailure {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r)}`);
  return r.failure;
}

t.test('a batch arrives whole: every numeric point, original timestamps in ns, attributes, resource', async (t) => {
  const { srv, d } = await served(t);
  t.same(await d.connect(), { ok: true }, 'connect: an empty export is answered');
  t.equal(srv.requests.length, 1, 'connect sent one request');
  t.equal(srv.requests[0].request.resource_metrics.length, 0, '... with no resource_metrics');
  t.ok(d.connected);
  t.equal(d.sendWindow, 4);

  const m = msg(READINGS);
  const r = await d.send(m);
  t.ok(r.ok, 'delivered');
  if (!r.ok) return;
  t.equal(r.dataPoints, NUMERIC.length, 'numbers and booleans become data points');
  t.equal(r.skipped, 2, 'the string and the null are skipped and counted');
  t.equal(r.invalid, 0);
  t.notOk(r.partial);

  const rec = srv.exports.at(-1)!;
  t.equal(rec.metadata.authorization, 'Bearer s3cret', 'headers travel as gRPC metadata');
  t.match(rec.metadata['user-agent'], /^holdfast\//, 'user agent names holdfast');
  t.equal(rec.request.resource_metrics.length, 1, 'one batch, one ResourceMetrics');
  t.equal(rec.metadata['idempotency-key'], m.key, 'the idempotency key travels as gRPC metadata');
  t.notOk(srv.requests[0].metadata['idempotency-key'], "connect's empty export carries none");
  const rm = rec.request.resource_metrics[0];
  t.same(attrs(rm.resource.attributes), {
    'service.name': 'holdfast', 'service.version': '0.0.0', 'service.instance.id': 'gw-7', 'holdfast.hardware.profile': 'rpi4-rs485',
  }, 'resource attributes: the gateway only, nothing per batch');
  t.equal(rm.scope_metrics.length, 1);
  t.equal(rm.scope_metrics[0].scope.name, 'holdfast');
  const metrics = rm.scope_metrics[0].metrics;
  // An independent statement of the mapping (docs/uplinks.md): one gauge per point, UCUM units.
  const want: Record<string, [string, string]> = {
    'm103.W': ['sunspec.inverter.W', 'W'], 'm103.Hz': ['sunspec.inverter.Hz', 'Hz'], 'm103.PhVphA': ['sunspec.inverter.PhVphA', 'V'],
    'breaker.closed': ['field.breaker.closed', '1'], 'm701.W': ['sunspec.der_ac.W', 'W'],
  };
  t.same(metrics.map((x) => [x.name, x.unit, x.data]).sort(), Object.values(want).map(([n, u]) => [n, u, 'gauge']).sort(), 'a gauge per point, its unit in UCUM');
  for (const want1 of NUMERIC) {
    const [name, unit] = want[want1.point];
    const metric = metrics.find((x) => x.name === name && x.unit === unit)!;
    const dp = metric.gauge!.data_points.find((p) => attrs(p.attributes).device === want1.device)!;
    const ns = String(BigInt(want1.ts) * 1_000_000n);
    t.equal(dp.time_unix_nano, ns, `${want1.point}: time = original ts in ns (${ns})`);
    t.equal(dp.start_time_unix_nano, ns, `${want1.point}: start time = the same`);
    t.equal(dp.value, 'as_double');
    t.equal(dp.as_double, typeof want1.value === 'boolean' ? (want1.value ? 1 : 0) : want1.value, `${want1.point}: value`);
    t.same(attrs(dp.attributes), { device: want1.device, point: want1.point, quality: want1.quality }, `${want1.point}: attributes device, point, quality`);
  }
  t.equal(metrics.reduce((n, x) => n + x.gauge!.data_points.length, 0), NUMERIC.length, 'every numeric point arrived, once');
  t.equal(srv.exports.length, 1, 'one request per send');
});

/** A loopback TCP relay that counts the bytes the client sends. */
async function byteCounter(port: number): Promise<{ port: number; bytes: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const socks = new Set<net.Socket>();
  const relay = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    for (const s of [down, up]) {
      socks.add(s);
      s.on('error', () => {});
      s.on('close', () => socks.delete(s));
    }
    down.on('data', (b: Buffer) => (bytes += b.length));
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    port: (relay.address() as net.AddressInfo).port,
    bytes: () => bytes,
    close: () => new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      relay.close(() => r());
    }),
  };
}

t.test('gzip compression: fewer bytes on the wire, the collector decodes the same batch', async (t) => {
  const srv = await OtlpTestServer.start();
  const big: Reading[] = Array.from({ length: 2000 }, (_, i) => ({
    device: 'inverter-north-01', point: `m103.point${i % 20}`, ts: T0 + i, value: 230 + (i % 7), unit: 'V', quality: 'good',
  }));
  const sent: Record<string, number> = {};
  for (const compression of ['none', 'gzip'] as const) {
    const relay = await byteCounter(Number(new URL(srv.url).port));
    const d = driver(`http://127.0.0.1:${relay.port}`, { compression });
    t.ok((await d.connect()).ok, `${compression}: connect`);
    const before = relay.bytes();
    t.ok((await d.send(msg(big))).ok, `${compression}: delivered`);
    sent[compression] = relay.bytes() - before;
    await d.close();
    await relay.close();
    const rec = srv.exports.at(-1)!;
    t.equal(rec.request.resource_metrics[0].scope_metrics[0].metrics.reduce((n, x) => n + x.gauge!.data_points.length, 0), big.length, `${compression}: every point decoded`);
  }
  t.ok(sent.gzip * 3 < sent.none, `gzip sent ${sent.gzip} bytes, none ${sent.none}`);
  await srv.close();
});

t.test('every scripted status maps to its failure; exactly one request per send (no hidden retry)', async (t) => {
  const { srv, d } = await served(t, { timeoutMs: 800 });
  t.ok((await d.connect()).ok);

  type Case = { name: string; code: number; message: string; retryDelayMs?: number; delayMs?: number; scope: 'link' | 'payload'; retry: 'soft' | 'hard'; hint?: number };
  const cases: Case[] = [
    { name: 'UNAVAILABLE', code: 14, message: 'collector restarting', scope: 'link', retry: 'soft' },
    { name: 'UNAVAILABLE + RetryInfo 2.5 s', code: 14, message: 'memory limiter', retryDelayMs: 2500, scope: 'link', retry: 'soft', hint: 2500 },
    { name: 'RESOURCE_EXHAUSTED + RetryInfo 1.25 s', code: 8, message: 'rate limited', retryDelayMs: 1250, scope: 'link', retry: 'soft', hint: 1250 },
    { name: 'RESOURCE_EXHAUSTED, no RetryInfo', code: 8, message: 'queue full', scope: 'link', retry: 'soft', hint: DEFAULT_BUSY_HINT_MS },
    { name: 'RESOURCE_EXHAUSTED, too large', code: 8, message: 'Received message larger than max (5000000 vs. 4194304)', scope: 'payload', retry: 'hard' },
    { name: 'DEADLINE_EXCEEDED from the server', code: 4, message: 'pipeline timeout', scope: 'link', retry: 'soft' },
    { name: 'DEADLINE_EXCEEDED: no answer before our deadline', code: 4, message: '', delayMs: 1500, scope: 'link', retry: 'soft' },
    { name: 'INVALID_ARGUMENT', code: 3, message: 'bad data point', scope: 'payload', retry: 'hard' },
    { name: 'UNAUTHENTICATED', code: 16, message: 'missing bearer token', scope: 'link', retry: 'hard' },
    { name: 'PERMISSION_DENIED', code: 7, message: 'tenant not allowed', scope: 'link', retry: 'hard' },
    { name: 'INTERNAL', code: 13, message: 'exporter panic', scope: 'link', retry: 'soft' },
  ];
  for (const c of cases) {
    const before = srv.exports.length;
    srv.answer(c.delayMs !== undefined ? { kind: 'delay', ms: c.delayMs } : { kind: 'status', code: c.code, message: c.message, retryDelayMs: c.retryDelayMs });
    const r = await d.send(msg(READINGS));
    const raw = failure(r);
    const f = classify(raw);
    t.same([raw.kind, raw.code], ['grpc', c.code], `${c.name}: reported as gRPC status ${c.code}`);
    t.equal(f.code, `GRPC_${GRPC_STATUS_NAMES[c.code]}`, `${c.name}: code GRPC_${GRPC_STATUS_NAMES[c.code]}`);
    t.equal(f.scope, c.scope, `${c.name}: scope ${c.scope}`);
    t.equal(f.retry, c.retry, `${c.name}: retry ${c.retry}`);
    t.equal(f.retryAfterMs, c.hint, `${c.name}: retryAfterMs ${c.hint}`);
    t.match(raw.message, `gRPC ${GRPC_STATUS_NAMES[c.code]} (${c.code})`, `${c.name}: the message names the gRPC status`);
    t.equal(srv.exports.length, before + 1, `${c.name}: exactly one request reached the collector`);
    t.ok(d.connected, `${c.name}: a status is not a lost connection`);
  }
  const sent = srv.exports.length;
  await sleep(HIDDEN_RETRY_WINDOW_MS);
  t.equal(srv.exports.length, sent, `no request came later either (waited ${HIDDEN_RETRY_WINDOW_MS} ms)`);
  t.equal(sent, cases.length, `${cases.length} sends, ${cases.length} requests`);
});

t.test('partial success is delivered, with the rejected count recorded', async (t) => {
  const told: PartialEvent[] = [];
  const { srv, d } = await served(t, { onPartial: (e) => told.push(e) });
  t.ok((await d.connect()).ok);
  srv.answer({ kind: 'partial', rejected: 2, message: '2 data points older than 7 days' });
  const r = await d.send(msg(READINGS));
  t.ok(r.ok, 'a partial success is a delivery (the rejected points must not be re-sent)');
  if (r.ok) t.same(r.partial, { rejected: 2, message: '2 data points older than 7 days' });
  srv.answer({ kind: 'partial', rejected: 0, message: 'deprecated attribute' });
  const w = await d.send(msg(READINGS));
  t.ok(w.ok);
  if (w.ok) t.same(w.partial, { rejected: 0, message: 'deprecated attribute' }, 'a warning (0 rejected, a message) is recorded too');
  const plain = await d.send(msg(READINGS));
  t.ok(plain.ok);
  if (plain.ok) t.equal(plain.partial, undefined, 'a plain OK has no partial');
  t.equal(d.rejectedTotal, 2);
  t.equal(srv.exports.length, 3);
  t.same(told.map((e) => [e.uplink, e.rejected, e.message]), [['otel', 2, '2 data points older than 7 days'], ['otel', 0, 'deprecated attribute']],
    'onPartial: told of both, never of the plain OK');
  t.match(told[0].key, /^gw-7:inv:/, 'with the batch key');

  const throwing = driver(srv.url, { onPartial: () => { throw new Error('store busy'); } });
  t.ok((await throwing.connect()).ok);
  srv.answer({ kind: 'partial', rejected: 1, message: 'one too old' });
  t.ok((await throwing.send(msg(READINGS))).ok, 'a throwing onPartial does not turn the delivery into a failure');
  await throwing.close();
});

t.test('collector down: onDown once, sends and connects fail soft (ECONNREFUSED); back up: ok', async (t) => {
  const { srv, d } = await served(t);
  const downs: RawFailure[] = [];
  d.onDown((f) => downs.push(f));
  t.ok((await d.connect()).ok);
  t.ok((await d.send(msg(READINGS))).ok, 'delivered while up');

  srv.stop();
  await waitFor(() => downs.length > 0, 5000, 'onDown');
  t.equal(downs.length, 1, 'onDown once');
  t.same([classify(downs[0]).scope, classify(downs[0]).retry], ['link', 'soft']);
  t.notOk(d.connected);

  const r = await d.send(msg(READINGS));
  const f = classify(failure(r));
  t.same([f.scope, f.retry, f.code], ['link', 'soft', 'ECONNREFUSED'], `send while down: ${failure(r).message}`);
  const c = await d.connect();
  t.notOk(c.ok, 'connect while down fails');
  if (!c.ok) t.same([classify(c.failure).scope, classify(c.failure).retry, classify(c.failure).code], ['link', 'soft', 'ECONNREFUSED']);
  await sleep(100);
  t.equal(downs.length, 1, 'no second onDown for the failed attempts');

  await srv.restart();
  const t0 = Date.now();
  t.same(await d.connect(), { ok: true }, 'back up: connect at once (a fresh channel, no grpc-js backoff)');
  t.ok(Date.now() - t0 < 1000, `connected in ${Date.now() - t0} ms`);
  const ok = await d.send(msg(READINGS));
  t.ok(ok.ok, 'delivered after the restart');
  t.equal(srv.exports.length, 2, 'the collector saw the batch before and the batch after');
  t.equal(downs.length, 1);
});

t.test('TLS: the CA file is honoured; an unknown certificate is a hard TLS failure', async (t) => {
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-otlp-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
  } catch (e) {
    t.fail(`openssl failed (bash scripts/system-deps.sh test installs it): ${(e as Error).message}`);
    return;
  }
  const srv = await OtlpTestServer.start({ tls: { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) } });
  const good = driver(srv.url, { tlsCaFile: join(dir, 'cert.pem') });
  const bad = driver(srv.url);
  t.teardown(async () => {
    await good.close();
    await bad.close();
    await srv.close();
  });
  t.same(await good.connect(), { ok: true }, 'trusted through tlsCaFile');
  t.ok((await good.send(msg(READINGS))).ok);
  const c = await bad.connect();
  t.notOk(c.ok, 'without the CA the handshake is refused');
  if (!c.ok) {
    const f = classify(c.failure);
    t.same([f.code, f.scope, f.retry], ['TLS_CERT_INVALID', 'link', 'hard'], c.failure.message);
  }
  t.throws(() => driver('http://127.0.0.1:4317', { tlsCaFile: join(dir, 'cert.pem') }), /https/, 'TLS files with http: are refused');
  t.throws(() => driver('http://127.0.0.1:4317', { headers: { 'bad header': 'x' } }), /CONFIG_INVALID/, 'a header gRPC cannot carry is refused up front');
});

t.test('close() cancels what is in flight; not connected: soft failure, no request', async (t) => {
  const srv = await OtlpTestServer.start();
  const d = driver(srv.url, { timeoutMs: 5000 });
  t.teardown(() => srv.close());
  const early = await d.send(msg(READINGS));
  t.same([classify(failure(early)).scope, classify(failure(early)).retry], ['link', 'soft'], 'send before connect');
  t.ok((await d.connect()).ok);
  srv.answer({ kind: 'delay', ms: 3000 });
  const p = d.send(msg(READINGS));
  await waitFor(() => srv.exports.length === 1, 2000, 'the request to arrive');
  await d.close();
  const r = await p;
  t.same([classify(failure(r)).scope, classify(failure(r)).retry], ['link', 'soft'], `in flight at close: ${failure(r).message}`);
  t.notOk(d.connected);
});

t.test('pure parts: batch building, the gRPC table, RetryInfo decoding', async (t) => {
  t.same(msToHrTime(T0), [1717171717, 123_000_000]);
  t.same(msToHrTime(0), [0, 0]);
  const b = batchToResourceMetrics([...READINGS, 7, null, { device: 'x', point: 'p', ts: 'yesterday', value: 1 }, { point: 'p', ts: 1, value: 1 }], {
    gatewayId: 'g', hardwareProfile: 'h',
  });
  t.same([b.dataPoints, b.skipped, b.invalid], [NUMERIC.length, 2, 4], 'non-readings are counted as invalid');
  t.throws(() => batchToResourceMetrics({ not: 'an array' }, { gatewayId: 'g', hardwareProfile: 'h' }), TypeError);
  const onlyStrings = batchToResourceMetrics([READINGS[4]], { gatewayId: 'g', hardwareProfile: 'h' });
  t.equal(onlyStrings.resourceMetrics.scopeMetrics[0].metrics.length, 0, 'nothing numeric: no metric');
  const twoUnits = batchToResourceMetrics([
    { device: 'a', point: 'temp', ts: 1, value: 20, unit: 'C' }, { device: 'b', point: 'temp', ts: 1, value: 290, unit: 'K' },
    { device: 'a', point: 'temp', ts: 2, value: 21, unit: 'degC' },
  ], { gatewayId: 'g', hardwareProfile: 'h' }).resourceMetrics.scopeMetrics[0].metrics;
  t.same(twoUnits.map((x) => [x.descriptor.name, x.descriptor.unit, x.dataPoints.length]), [['field.temp', 'Cel', 2], ['field.temp', 'K', 1]],
    'one point name in two units stays two metrics; C and degC are one UCUM unit');
  t.same(['voltage_l1', 'meter:1', 'm103.PhVphA', 'm101.A', 'm102.A', 'm1.DA', 'm701.TotWhInj', 'm160.DCA', '3phase'].map(metricName),
    ['field.voltage_l1', 'field.meter_1', 'sunspec.inverter.PhVphA', 'sunspec.inverter.A', 'sunspec.inverter.A', 'sunspec.common.DA', 'sunspec.der_ac.TotWhInj', 'field.m160.DCA', 'field.3phase'],
    'names: field.<point>, SunSpec by model family (a model without a table stays a field point)');
  t.ok(['voltage_l1', 'meter:1', '3phase', 'a-b.c'].map(metricName).every((n) => /^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$/.test(n)), 'every name is a valid OTel instrument name');
  t.same(['V', 'Wh', 'kWh', 'var', 'Var', 'Varh', 'C', 'Pct', '%', '', 'Hz', 'mA', 'furlong'].map(ucumUnit),
    ['V', 'W.h', 'kW.h', '{var}', '{var}', '{var}.h', 'Cel', '%', '%', '1', 'Hz', 'mA', 'furlong'], 'UCUM units; one not in the table passes verbatim');

  // The table, against an independent statement of the intended rows, through classify().
  const want: Record<number, [string, string]> = {
    1: ['link', 'soft'], 2: ['link', 'soft'], 3: ['payload', 'hard'], 4: ['link', 'soft'], 5: ['link', 'soft'], 6: ['link', 'soft'],
    7: ['link', 'hard'], 8: ['link', 'soft'], 9: ['link', 'soft'], 10: ['link', 'soft'], 11: ['link', 'soft'], 12: ['link', 'hard'],
    13: ['link', 'soft'], 14: ['link', 'soft'], 15: ['link', 'soft'], 16: ['link', 'hard'], 99: ['link', 'soft'],
  };
  for (const [code, [scope, retry]] of Object.entries(want)) {
    const n = Number(code);
    const f = classify(grpcRawFailure(n, 'x'));
    const name = GRPC_STATUS_NAMES[n] ? `GRPC_${GRPC_STATUS_NAMES[n]}` : `GRPC_STATUS_${n}`;
    t.same([f.code, f.scope, f.retry], [name, scope, retry], `gRPC ${code}: ${name} ${scope}/${retry}`);
  }
  t.same(Object.keys(GRPC_TABLE).map(Number), [1, 3, 4, 7, 8, 10, 11, 12, 14, 15, 16], 'listed rows');
  t.equal(classify(grpcRawFailure(8, 'busy')).retryAfterMs, DEFAULT_BUSY_HINT_MS, 'RESOURCE_EXHAUSTED without RetryInfo: the busy hint');
  t.equal(classify(grpcRawFailure(14, 'x', 750)).retryAfterMs, 750, 'RetryInfo wins');
  t.equal(classify(grpcRawFailure(16, 'x', 750)).retryAfterMs, undefined, 'no hint on a hard failure');

  // RetryInfo, encoded by protobufjs (through proto-loader), decoded by the driver's own reader.
  t.equal(retryDelayMs(statusDetailsBin(14, 'x', 2500)), 2500);
  t.equal(retryDelayMs(statusDetailsBin(8, 'x', 61_001)), 61_001, 'seconds and nanos');
  t.equal(retryDelayMs(statusDetailsBin(14, 'x')), undefined, 'no detail');
  t.equal(retryDelayMs(new Uint8Array([0x1a, 0xff])), undefined, 'malformed: undefined, no throw');
  t.equal(retryDelayMs(new Uint8Array(0)), undefined);

  // Client-side UNAVAILABLE with an errno or an OpenSSL message.
  t.same(rawFromGrpcError(14, 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:4317'),
    { kind: 'socket', code: 'ECONNREFUSED', message: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:4317' });
  t.equal(rawFromGrpcError(14, 'No connection established. Last error: Error: certificate has expired').code, 'CERT_HAS_EXPIRED');
  t.equal(classify(rawFromGrpcError(14, 'busy', statusDetailsBin(14, 'busy', 3000))).retryAfterMs, 3000);

  // A stored batch that is not JSON never reaches the wire: payload, hard.
  const d = driver('http://127.0.0.1:1');
  const bad = await d.send({ ...msg([]), readings: Buffer.from('{not json') } as OutboundMessage);
  t.same([classify(failure(bad)).scope, classify(failure(bad)).retry], ['payload', 'hard']);
  const empty = await d.send(msg([READINGS[4], READINGS[5]]));
  t.ok(empty.ok, 'nothing representable: delivered without a call');
  if (empty.ok) t.same([empty.dataPoints, empty.skipped], [0, 2]);
});

t.test('a stored batch that is not an array of readings is never sent: PAYLOAD_UNREADABLE, ours', async (t) => {
  const { srv, d } = await served(t);
  t.ok((await d.connect()).ok);
  const before = srv.exports.length;
  const bad = { ...msg([]), readings: Buffer.from('{"not":"an array"}') } as unknown as OutboundMessage;
  const r = await d.send(bad);
  t.match(classify(failure(r)), { code: 'PAYLOAD_UNREADABLE', scope: 'payload', retry: 'hard', faultClass: 'local' });
  t.equal(srv.exports.length, before, 'nothing reached the collector');
});
