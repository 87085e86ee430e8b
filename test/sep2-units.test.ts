/**
 * Units on the IEEE 2030.5 uplink (drivers/sep2/units.ts): each unit a field device gives, the
 * ReadingType it is posted under (uom, powerOfTenMultiplier) and the value posted, checked at the
 * real mutual-TLS test server, which checks every body against the schema's element order and
 * the ranges of its numeric types (UInt8 uom, multiplier -9..9, Int48 value). And what is still
 * skipped: counted by point and reason, told to onSkipped once per DELIVERED batch only.
 */
import t from 'tap';
import type { Reading } from '../agent/reading.js';
import type { OutboundMessage } from '../drivers/uplink.js';
import { Sep2Driver, type SkippedReadings } from '../drivers/sep2/client.js';
import { stableMrid } from '../drivers/sep2/identity.js';
import { mapReadings, ruleFor, UNIT_TABLE } from '../drivers/sep2/units.js';
import { makePki, startSep2Server } from './helpers/sep2-server.js';

const pki = makePki();
const PEN = 32473;
const GW = 'gw-units';
const T0 = Date.UTC(2026, 0, 1, 12);
const r = (point: string, value: Reading['value'], unit: string, quality: Reading['quality'] = 'good'): Reading => ({ device: 'inv-1', point, ts: T0, value, unit, quality });
let seq = 0;
const msg = (readings: Reading[]): OutboundMessage =>
  ({ taskId: ++seq, key: `k${seq}`, seq, device: 'inv-1', historical: false, readingCount: readings.length, readings: Buffer.from(JSON.stringify(readings)) });

/** [point, value, unit] -> [uom, powerOfTenMultiplier, posted value]: the mapping table's new rows. */
const CASES: [string, number, string, [number, number, number]][] = [
  ['counter', 123456, '', [0, 0, 123456]], // a count: not applicable, as is
  ['m103.St', 4, '', [0, 0, 4]], // a SunSpec enum
  ['m103.Evt1', 0x80000001, '', [0, 0, 0x80000001]], // a bitfield32
  ['m701.PF', 0.95, '', [65, -3, 950]], // SunSpec 701 PF: no unit, a fraction -> cos theta
  ['m701.PFL2', -0.87, '', [65, -3, -870]],
  ['power_factor', 0.953, '', [65, -3, 953]],
  ['m103.PF', 95.5, '%', [65, -3, 955]], // SunSpec 101-103 PF in percent, as sunspec.ts names it
  ['PF', -87, 'Pct', [65, -3, -870]], // ... or as a hand-written map spells SunSpec's unit
  ['m701.ThrotPct', 75, '%', [0, -4, 7500]], // a percentage: the fraction 0.7500
  ['ThrotPct', 12.34, 'Pct', [0, -4, 1234]],
  ['m103.VAr', -1200, 'Var', [63, 0, -1200]], // SunSpec's capital V
  ['m701.TotVarhInj', 5000, 'Varh', [73, 0, 5000]],
  ['q_cim', 10, 'VAr', [63, 0, 10]],
  ['demand_period', 15, 'min', [4, 0, 900]], // minutes posted as seconds
  ['uptime', 12, 's', [4, 0, 12]],
  ['latency', 250, 'ms', [4, -3, 250]],
  ['runtime', 1.5, 'h', [4, 0, 5400]],
];

t.test('each unit: the uom, multiplier and value posted, accepted by the server', async (t) => {
  const srv = await startSep2Server({ pki, pen: PEN });
  t.teardown(() => srv.close());
  const skips: SkippedReadings[] = [];
  const d = new Sep2Driver({ name: 'utility', url: srv.url, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, pen: PEN, gatewayId: GW,
    timeoutMs: 5000, onSkipped: (e) => skips.push(e) });
  t.teardown(() => d.close());
  t.same(await d.connect(), { ok: true });
  t.ok((await d.send(msg(CASES.map(([p, v, unit]) => r(p, v, unit))))).ok, 'sent');
  t.same(srv.problems, [], 'every body in order, every number within its schema type');
  const mup = [...srv.mups.values()][0];
  for (const [point, , unit, [uom, mult, value]] of CASES) {
    const m = mup.mmrs.get(stableMrid(PEN, GW, 'mmr', 'inv-1', point));
    t.same(m && [Number(m.readingType.uom), Number(m.readingType.powerOfTenMultiplier), m.readings[0]?.value], [uom, mult, value], `${point} '${unit}'`);
  }
  t.same(skips, [], 'nothing skipped, nothing told');
  t.equal(d.stats.postedReadings, CASES.length);
});

t.test('what is still skipped: by point and reason, told once per delivered batch, never for a failed attempt', async (t) => {
  const srv = await startSep2Server({ pki, pen: PEN });
  t.teardown(() => srv.close());
  const skips: SkippedReadings[] = [];
  const d = new Sep2Driver({ name: 'utility', url: srv.url, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, pen: PEN, gatewayId: GW,
    timeoutMs: 5000, onSkipped: (e) => skips.push(e) });
  t.teardown(() => d.close());
  await d.connect();
  const batch = [
    r('voltage_l1', 230, 'V'), r('rpm', 1500, 'rpm'), r('rpm', 1501, 'rpm'), r('m1.Mn', 'Fronius', ''), r('breaker', true, ''),
    r('m103.PhVphB', null, 'V', 'not_implemented'), r('ratio', 0.5, ''), r('huge', 2 ** 50, 'W'), r('voltage_l1', 0.231, 'kV'),
    { ts: T0 } as unknown as Reading,
  ];
  srv.script({ method: 'POST', status: 503, headers: { 'Retry-After': '1' } });
  const failed = await d.send(msg(batch));
  t.notOk(failed.ok, 'the first attempt fails (503)');
  t.same(skips, [], 'a failed attempt tells nothing: its batch comes again');
  t.equal(Object.values(d.stats.skipped).reduce((a, b) => a + b, 0), 0, 'nor counts');
  const sent = await d.send({ ...msg(batch), taskId: 77, key: 'k-retry' });
  t.ok(sent.ok, 'the retry is delivered, without what cannot be posted');
  t.equal(skips.length, 1, 'told once');
  t.match(skips[0], { uplink: 'utility', taskId: 77, key: 'k-retry', device: 'inv-1' });
  const by = Object.fromEntries(skips[0].skipped.map((s) => [`${s.point}:${s.reason}`, [s.readings, s.unit]]));
  t.same(by, {
    'rpm:unknown_unit': [2, 'rpm'], 'm1.Mn:not_numeric': [1, ''], 'breaker:not_numeric': [1, ''], 'm103.PhVphB:not_implemented': [1, 'V'],
    'ratio:not_integer': [1, ''], 'huge:out_of_range': [1, 'W'], 'voltage_l1:unit_mismatch': [1, 'kV'], ':malformed': [1, ''],
  });
  t.same(d.stats.skipped, { unknown_unit: 2, not_numeric: 2, not_implemented: 1, not_integer: 1, out_of_range: 1, malformed: 1, unit_mismatch: 1 });
  t.same(srv.problems, []);
});

t.test('the table: exact conversions, every uom a UInt8, every multiplier within -9..9', async (t) => {
  for (const [unit, rule] of Object.entries(UNIT_TABLE)) {
    t.ok(Number.isInteger(rule.uom) && rule.uom >= 0 && rule.uom <= 255, `'${unit}': uom ${rule.uom}`);
    t.ok(rule.multiplier >= -9 && rule.multiplier <= 9, `'${unit}': multiplier ${rule.multiplier}`);
  }
  const post = (point: string, value: number, unit: string) => mapReadings([{ point, ts: T0, value, unit, quality: 'good' }]).points[0]?.readings[0]?.value;
  t.equal(post('p', 2.5, 'kW'), 2500, 'kW -> W');
  t.equal(post('p', 0.07, '%'), 7, '0.07 % -> 0.0007 at 10^-4');
  t.equal(post('p', 0.5, 'min'), 30, 'half a minute -> 30 s');
  t.equal(ruleFor('m701.PF', 'V')?.uom, 29, 'a PF name with another unit keeps that unit');
  t.equal(ruleFor('profile', '')?.uom, 0, 'only a power factor name is cos theta');
  t.equal(ruleFor('x', 'rpm'), undefined, 'no rule: skipped as unknown_unit');
});
