/**
 * The IEEE 2030.5 uplink (drivers/sep2/client.ts) against a real mutual-TLS HTTPS server
 * (test/helpers/sep2-server.ts) that checks every body it receives against the XSD element
 * order, the namespace, the media type and the client certificate.
 *
 * Covered: discovery (DeviceCapability -> MirrorUsagePointList, an existing MUP found by its
 * stable mRID, pollRate/postRate), MUP creation with a stable mRID and ReadingTypes, readings
 * posted with their ORIGINAL times, a vanished MUP (404) re-created within the same send, 503 and
 * 429 with Retry-After -> soft with retryAfterMs, 401/403 -> link hard, 400 -> payload hard, an
 * untrusted server certificate and a refused client certificate -> kind tls, a timeout and a dead
 * server -> onDown, and the CCM8 suite 2030.5 requires when this OpenSSL has it.
 * Failures are checked twice: the RawFailure the driver reports and what classify() makes of it.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { classify } from '../agent/policy/classify.js';
import type { Reading } from '../agent/reading.js';
import type { OutboundMessage } from '../drivers/uplink.js';
import { Sep2Driver, type Sep2DriverOptions, parseRetryAfter } from '../drivers/sep2/client.js';
import { identityOf, stableMrid } from '../drivers/sep2/identity.js';
import { parseXml, readDeviceCapability, readError, SEP2_NS, writeMirrorMeterReading } from '../drivers/sep2/xml.js';
import { checkOrder, makePki, startOpensslServer, startSep2Server, tokenize, type Sep2Server, type Sep2ServerOptions } from './helpers/sep2-server.js';

type TLike = { teardown(fn: () => unknown): void };
const pki = makePki();
const PEN = 32473;
const GW = 'gw-test';
const T0 = Date.now();
const mupId = (device: string) => stableMrid(PEN, GW, 'mup', device);
const mmrId = (device: string, point: string) => stableMrid(PEN, GW, 'mmr', device, point);

async function server(t: TLike, o: Partial<Sep2ServerOptions> = {}): Promise<Sep2Server> {
  const srv = await startSep2Server({ pki, pen: PEN, ...o });
  t.teardown(() => srv.close());
  return srv;
}
function driver(t: TLike, srv: { url: string }, o: Partial<Sep2DriverOptions> = {}): Sep2Driver {
  const d = new Sep2Driver({ name: 'utility', url: srv.url, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, pen: PEN, gatewayId: GW, timeoutMs: 5000, ...o });
  t.teardown(() => d.close());
  return d;
}
const r = (point: string, value: Reading['value'], unit: string, ts = T0, quality: Reading['quality'] = 'good'): Reading => ({ device: 'x', point, ts, value, unit, quality });
let seq = 0;
function msg(device: string, readings: Reading[], raw?: string): OutboundMessage {
  seq++;
  const text = raw ?? JSON.stringify(readings);
  return { taskId: seq, key: `key-${seq}`, seq, device, historical: false, readingCount: readings.length, readings: Buffer.from(text) };
}

t.test('discovery: an existing MirrorUsagePoint is found by its stable mRID; pollRate and postRate kept', async (t) => {
  const srv = await server(t, { pollRate: 300, maxVersion: 'TLSv1.3' });
  srv.preload({ mRID: stableMrid(PEN, 'other-gw', 'mup', 'meter-1'), deviceLFDI: 'AB'.repeat(20), postRate: 5 });
  srv.preload({ mRID: mupId('meter-1'), deviceLFDI: 'CD'.repeat(20), postRate: 60 });
  const d = driver(t, srv);
  t.same(await d.connect(), { ok: true });
  t.ok(d.connected);
  t.equal(d.sendWindow, 1);
  t.equal(d.pollRateS, 300, 'list pollRate');
  t.equal(d.minIntervalMs, 60_000, 'largest postRate seen');
  t.same(srv.log.map((l) => `${l.method} ${l.path}`), ['GET /dcap', 'GET /mup?s=0&l=100']);
  const res = await d.send(msg('meter-1', [r('voltage_l1', 230.1, 'V')]));
  t.ok(res.ok, 'sent');
  if (res.ok) t.equal(res.notBefore, res.ackAt + 60_000, 'notBefore = ack + postRate of this MUP');
  t.same(srv.creations, [], 'no MirrorUsagePoint created: the listed one was used');
  t.ok(srv.log.every((l) => l.protocol === 'TLSv1.2'), 'TLS 1.2 by default, even with a server that offers 1.3');
  t.equal(srv.log.at(-1)?.path, '/mup/2', 'posted to the listed href');
  t.same(srv.problems, []);
});

t.test('discovery pages through a long MirrorUsagePointList', async (t) => {
  const srv = await server(t);
  for (let i = 0; i < 150; i++) srv.preload({ mRID: stableMrid(PEN, 'other-gw', 'mup', `m${i}`), deviceLFDI: 'AB'.repeat(20), postRate: i === 7 ? 30 : undefined });
  const ours = srv.preload({ mRID: mupId('meter-9'), deviceLFDI: 'CD'.repeat(20) });
  const d = driver(t, srv);
  t.same(await d.connect(), { ok: true });
  t.same(srv.log.map((l) => l.path), ['/dcap', '/mup?s=0&l=100', '/mup?s=100&l=100'], 'two pages');
  t.equal(d.minIntervalMs, 30_000);
  t.ok((await d.send(msg('meter-9', [r('frequency', 50.01, 'Hz')]))).ok);
  t.equal(srv.log.at(-1)?.path, `/mup/${ours.id}`, 'found on the second page');
  t.same(srv.creations, []);
  t.same(ours.mmrs.get(mmrId('meter-9', 'frequency'))?.readings.map((x) => x.value), [5001], 'Hz x10^-2');
});

t.test('the response parser: prefixes, entities, refusals', async (t) => {
  const dc = readDeviceCapability(`<?xml version="1.0"?><!-- c --><s:DeviceCapability xmlns:s="${SEP2_NS}" pollRate="60"><s:MirrorUsagePointListLink href="/m?a=1&amp;b=2" all="0"/></s:DeviceCapability>`);
  t.same(dc, { pollRate: 60, mirrorUsagePointListHref: '/m?a=1&b=2' }, 'prefixed names and entities');
  t.throws(() => readDeviceCapability('<DeviceCapability/>'), /expected DeviceCapability in urn/, 'no namespace refused');
  t.throws(() => parseXml('<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'), /DOCTYPE/, 'no DTDs, no entity expansion');
  t.throws(() => parseXml('<a><b></a>'), /unexpected/);
  t.throws(() => parseXml('<a>x & y</a>'), /bare/);
  t.throws(() => parseXml('<p:a/>'), /unbound prefix/);
  t.same(readError(`<Error xmlns="${SEP2_NS}"><reasonCode>4</reasonCode></Error>`), { reasonCode: 4, maxRetryDuration: undefined });
  t.equal(readError('<html>busy</html>'), undefined, 'a non-2030.5 body is no Error');
});

t.test('creation: stable mRIDs, ReadingTypes in XSD order, readings at their original times', async (t) => {
  const srv = await server(t);
  const d = driver(t, srv);
  t.same(await d.connect(), { ok: true });
  t.equal(d.minIntervalMs, 0, 'no postRate given');
  const old = T0 - 2 * 3600_000 - 123; // two hours ago, with milliseconds
  const batch = [
    r('voltage_l1', 230.14, 'V', old), r('voltage_l1', 230.2, 'V', old + 100_000), r('current_l2', 12.34, 'A', old),
    r('active_power', 2700, 'W', old), r('energy', 123456.7, 'kWh', old, 'uncertain'),
    r('power_factor', 0.95, '', old), r('status', 'on', 'V', old), r('temp', 41.5, '°C', old, 'bad'), r('phB_x', 1, 'Hz', old, 'not_implemented'),
  ];
  const res = await d.send(msg('meter-2', batch));
  t.ok(res.ok, 'sent');
  t.same(srv.problems, [], 'the server found nothing wrong');
  t.same(srv.creations, [mupId('meter-2')], 'one MUP, with the stable mRID');
  t.equal(srv.log.find((l) => l.path === '/mup' && l.method === 'POST')?.status, 201);
  const mup = [...srv.mups.values()][0];
  t.equal(mup.deviceLFDI, identityOf(readFileSync(pki.clientCert)).lfdi, 'deviceLFDI = the gateway LFDI');
  t.equal(d.identity?.lfdi, mup.deviceLFDI);
  const v = mup.mmrs.get(mmrId('meter-2', 'voltage_l1'))!;
  t.same(v.readings.map((x) => [x.start, x.value, x.duration]), [[Math.floor(old / 1000), 2301, 0], [Math.floor(old / 1000) + 100, 2302, 0]], 'original times (s), 0.1 V');
  t.ok(v.readings.every((x) => x.set === stableMrid(PEN, GW, 'set', 'meter-2', 'voltage_l1', `key-${seq}`)), 'two readings -> one MirrorReadingSet');
  t.same(Object.keys(v.readingType), ['accumulationBehaviour', 'commodity', 'dataQualifier', 'flowDirection', 'intervalLength', 'kind', 'phase', 'powerOfTenMultiplier', 'uom'], 'ReadingType elements in XSD order');
  t.same(v.readingType, { accumulationBehaviour: '12', commodity: '1', dataQualifier: '0', flowDirection: '0', intervalLength: '0', kind: '0', phase: '128', powerOfTenMultiplier: '-1', uom: '29' });
  const a = mup.mmrs.get(mmrId('meter-2', 'current_l2'))!;
  t.same([a.readings[0].value, a.readings[0].set, a.readingType.uom, a.readingType.phase], [1234, undefined, '5', '64'], 'one reading -> Reading; A x10^-2, phase B');
  const w = mup.mmrs.get(mmrId('meter-2', 'active_power'))!;
  t.same([w.readings[0].value, w.readingType.uom, w.readingType.kind, w.readings[0].qualityFlags], [2700, '38', '37', '0001']);
  const e = mup.mmrs.get(mmrId('meter-2', 'energy'))!;
  t.same([e.readings[0].value, e.readingType.uom, e.readingType.kind, e.readingType.accumulationBehaviour, e.readings[0].qualityFlags], [123456700, '72', '12', '9', '0010'], 'kWh -> Wh, summation, questionable');
  const c = mup.mmrs.get(mmrId('meter-2', 'temp'))!;
  t.same([c.readings[0].value, c.readingType.uom, c.readingType.commodity], [415, '23', '0'], '°C x10^-1');
  const pf = mup.mmrs.get(mmrId('meter-2', 'power_factor'))!;
  t.same([pf.readings[0].value, pf.readingType.uom, pf.readingType.powerOfTenMultiplier], [950, '65', '-3'], 'a unitless power factor: cos theta x10^-3');
  t.same(d.stats.skipped, { unknown_unit: 0, not_numeric: 1, not_implemented: 1, not_integer: 0, out_of_range: 0, malformed: 0, unit_mismatch: 0 }, 'skips counted by reason');
  t.equal(d.stats.postedReadings, 7);

  // A restarted gateway (new driver) finds the MUP through the list and reuses every mRID.
  const d2 = driver(t, srv);
  t.same(await d2.connect(), { ok: true });
  const again = await d2.send(msg('meter-2', [r('voltage_l1', 231, 'V', T0)]));
  t.ok(again.ok, 'the restarted gateway posts');
  t.equal(srv.creations.length, 1, 'no second MUP');
  t.equal(srv.log.at(-1)?.status, 204, 'known MMR mRID: 204');
  t.equal(v.readings.at(-1)?.start, Math.floor(T0 / 1000));
  t.same(srv.problems, []);
});

t.test('404: a vanished MirrorUsagePoint is re-created with the same mRID and the post retried once', async (t) => {
  const srv = await server(t);
  const d = driver(t, srv);
  await d.connect();
  t.ok((await d.send(msg('meter-3', [r('voltage_l1', 230, 'V')]))).ok);
  srv.vanish(mupId('meter-3'));
  const res = await d.send(msg('meter-3', [r('voltage_l1', 229, 'V', T0 + 1000)]));
  t.ok(res.ok, 'delivered within the same send');
  t.same(srv.creations, [mupId('meter-3'), mupId('meter-3')], 're-created with the same mRID');
  t.equal(d.stats.mupRecreated, 1);
  t.same(srv.log.slice(-4).map((l) => `${l.method} ${l.path} ${l.status}`), ['POST /mup/1 404', 'POST /mup 201', 'GET /mup/2 200', 'POST /mup/2 204'],
    '404, MUP re-created (with its MMRs, hence 204 for the retried MMR), same send');
  srv.script({ method: 'POST', path: /^\/mup\/\d+$/, status: 404, times: 2 });
  const twice = await d.send(msg('meter-3', [r('voltage_l1', 228, 'V')]));
  t.notOk(twice.ok, 'a second 404 in the same send is reported');
  if (!twice.ok) {
    t.match(twice.failure, { kind: 'http', code: 404 });
    t.match(classify(twice.failure), { code: 'HTTP_404', scope: 'link', retry: 'soft' });
  }
  t.same(srv.problems, []);
});

t.test('HTTP failures: 503/429 soft with the server hint, 401/403 link hard, 400 payload hard', async (t) => {
  const srv = await server(t);
  const d = driver(t, srv);
  await d.connect();
  t.ok((await d.send(msg('meter-4', [r('voltage_l1', 230, 'V')]))).ok);
  const fail = async (status: number, headers?: Record<string, string>, body?: string) => {
    srv.script({ method: 'POST', path: /^\/mup/, status, headers, body });
    const res = await d.send(msg('meter-4', [r('voltage_l1', 230, 'V')]));
    if (res.ok) throw new Error(`HTTP ${status} reported as success`);
    return { raw: res.failure, f: classify(res.failure) };
  };
  let x = await fail(503, { 'Retry-After': '7' });
  t.match(x.raw, { kind: 'http', code: 503, retryAfterMs: 7000 });
  t.match(x.f, { code: 'HTTP_503', scope: 'link', retry: 'soft', retryAfterMs: 7000 });
  x = await fail(503, { 'Retry-After': new Date(Date.now() + 30_000).toUTCString() });
  t.ok(x.f.retryAfterMs! > 27_000 && x.f.retryAfterMs! <= 30_000, `HTTP-date Retry-After (${x.f.retryAfterMs} ms)`);
  x = await fail(429, {}, '<Error><maxRetryDuration>12</maxRetryDuration><reasonCode>4</reasonCode></Error>');
  t.match(x.f, { code: 'HTTP_429', scope: 'link', retry: 'soft', retryAfterMs: 12_000 }, '429: the Error body maxRetryDuration');
  t.ok(d.connected, 'an HTTP status does not drop the link');
  x = await fail(403);
  t.match(x.f, { code: 'HTTP_403', scope: 'link', retry: 'hard' });
  x = await fail(401);
  t.match(x.f, { code: 'HTTP_401', scope: 'link', retry: 'hard' });
  x = await fail(400);
  t.match(x.f, { code: 'HTTP_400', scope: 'payload', retry: 'hard' });
  const junk = await d.send(msg('meter-4', [], '{"not":"an array"}'));
  t.notOk(junk.ok);
  if (!junk.ok) t.match(classify(junk.failure), { code: 'PAYLOAD_UNREADABLE', scope: 'payload', retry: 'hard', faultClass: 'local' }, 'a batch that is not an array: ours, payload hard, not sent');
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:50 GMT')), 10_000);
  t.equal(parseRetryAfter('soon', 0), undefined);
  t.same(srv.problems, []);
});

t.test('TLS: untrusted server certificate and refused client certificate are kind tls, link hard', async (t) => {
  const rogue = await server(t, { rogueServer: true });
  const d = driver(t, rogue);
  const res = await d.connect();
  t.notOk(res.ok);
  if (!res.ok) {
    t.equal(res.failure.kind, 'tls', `server certificate refused (${res.failure.code})`);
    t.match(res.failure.message, /^we refused the IEEE 2030\.5 server's certificate: /, 'says that we refused the server\'s certificate');
    t.match(classify(res.failure), { code: 'TLS_CERT_INVALID', scope: 'link', retry: 'hard' });
  }
  t.notOk(d.connected);
  const picky = await startOpensslServer(pki, pki.rogueCaCert);
  t.teardown(() => picky.close());
  const d2 = driver(t, picky);
  const res2 = await d2.connect();
  t.notOk(res2.ok);
  if (!res2.ok) {
    t.equal(res2.failure.kind, 'tls', `our client certificate refused by OpenSSL with an alert (${res2.failure.message.slice(0, 80)})`);
    t.match(res2.failure.message, /^the IEEE 2030\.5 server refused our client certificate \(certFile\) with "unknown ca"/, 'says that the server refused ours, and why');
    t.match(classify(res2.failure), { code: 'TLS_CERT_INVALID', scope: 'link', retry: 'hard' });
  }
  const trusting = await startOpensslServer(pki, pki.caCert);
  t.teardown(() => trusting.close());
  const d4 = driver(t, trusting);
  const res4 = await d4.connect();
  t.notOk(res4.ok, 'the same OpenSSL server with the right CA lets us in (and then serves no DeviceCapability)');
  if (!res4.ok) t.not(res4.failure.kind, 'tls', `not a TLS failure: ${res4.failure.kind} ${res4.failure.code ?? ''}`);
  // node's own server verifies after the handshake and resets: indistinguishable from a network reset.
  const nodePicky = await server(t, { rogueClientCa: true });
  const d5 = driver(t, nodePicky);
  const res5 = await d5.connect();
  t.notOk(res5.ok, `node server refusing our certificate: ${res5.ok ? '' : `${res5.failure.kind} ${res5.failure.code}`}`);
  t.ok(nodePicky.tlsErrors.length > 0 || nodePicky.log.length === 0, 'no request got through');
  const d3 = driver(t, nodePicky, { certFile: '/nonexistent/client.crt' });
  const res3 = await d3.connect();
  if (!res3.ok) t.match(classify(res3.failure), { code: 'CONFIG_FILE_MISSING', retry: 'soft', faultClass: 'config' }, 'a missing certificate file is a failed connect with its own code (retried: it may be being renewed)');
  else t.fail('connected without a certificate');
});

t.test('link loss: a timeout or a dead server fires onDown once and reports a soft failure', async (t) => {
  const srv = await server(t);
  const d = driver(t, srv, { timeoutMs: 300 });
  const downs: string[] = [];
  d.onDown((f) => downs.push(f.kind));
  await d.connect();
  srv.script({ method: 'POST', status: 0 });
  const res = await d.send(msg('meter-5', [r('voltage_l1', 230, 'V')]));
  t.notOk(res.ok);
  if (!res.ok) t.match(classify(res.failure), { code: 'ETIMEDOUT', scope: 'link', retry: 'soft' });
  t.same(downs, ['timeout']);
  t.notOk(d.connected);
  t.same(await d.connect(), { ok: true }, 'reconnects');
  await srv.close();
  const dead = await d.send(msg('meter-5', [r('voltage_l1', 230, 'V')]));
  t.notOk(dead.ok);
  if (!dead.ok) t.match(classify(dead.failure), { scope: 'link', retry: 'soft' }, `dead server: ${dead.failure.code}`);
  t.same(downs, ['timeout', 'socket']);
});

let ccm8 = true;
try {
  createSecureContext({ ciphers: 'ECDHE-ECDSA-AES128-CCM8' });
} catch {
  ccm8 = false;
}
t.test('TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (the 2030.5 suite) on a server restricted to it', { skip: ccm8 ? false : 'this OpenSSL has no ECDHE-ECDSA-AES128-CCM8' }, async (t) => {
  const srv = await server(t, { ciphers: 'ECDHE-ECDSA-AES128-CCM8', maxVersion: 'TLSv1.2' });
  const d = driver(t, srv, { ciphers: 'ECDHE-ECDSA-AES128-CCM8' });
  t.same(await d.connect(), { ok: true });
  t.ok((await d.send(msg('meter-6', [r('voltage_l1', 230, 'V')]))).ok);
  t.ok(srv.log.length >= 3 && srv.log.every((l) => l.cipher === 'ECDHE-ECDSA-AES128-CCM8'), 'every request used CCM8');
  const other = driver(t, srv, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  const res = await other.connect();
  t.notOk(res.ok, 'a client without CCM8 cannot connect');
  if (!res.ok) t.equal(res.failure.kind, 'tls', `no shared suite (${res.failure.code})`);
  t.same(srv.problems, []);
});

t.test('the order checker is not vacuous', async (t) => {
  const good = writeMirrorMeterReading({ mRID: mmrId('m', 'p'), reading: { start: 1, duration: 0, value: 5 } });
  t.same(checkOrder(tokenize(good), 'MirrorMeterReading', PEN), []);
  const bad = '<MirrorMeterReading xmlns="urn:ieee:std:2030.5:ns"><description>d</description><mRID>' + mmrId('m', 'p') +
    '</mRID><Reading><value>1</value><timePeriod><start>1</start><duration>0</duration></timePeriod></Reading>' +
    '<ReadingType><uom>29</uom><kind>0</kind></ReadingType><Reading><value>2</value></Reading></MirrorMeterReading>';
  const p = checkOrder(tokenize(bad), 'MirrorMeterReading', PEN);
  for (const want of [/<mRID> out of order/, /Reading: <timePeriod> out of order/, /timePeriod: <duration> out of order/, /ReadingType: <kind> out of order/, /too many <Reading>/]) {
    t.ok(p.some((x) => want.test(x)), `caught: ${want}`);
  }
  t.ok(checkOrder(tokenize(bad.replace(/00007ED9/g, '00000001')), 'MirrorMeterReading', PEN).some((x) => /PEN/.test(x)), 'wrong PEN caught');
  t.throws(() => tokenize('<a><b></a></b>'), 'mismatched tags refused');
});
