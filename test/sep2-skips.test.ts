/**
 * Readings an IEEE 2030.5 uplink delivered a batch without are never left out silently
 * (agent/skip-report.ts): counted in holdfast_sep2_skipped_readings_total{uplink,device,point,
 * reason}, recorded as `skipped` events whose readings add up to every reading skipped (one when
 * a device+point+reason is first seen, then at most one summary per uplink per period), summed
 * by `holdfast status`. A real store (in memory), a real prom-client counter, a manual clock.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { Store } from '../store/store.js';
import { SkipReport } from '../agent/skip-report.js';
import { formatStatus } from '../agent/cli/format.js';
import type { SkippedReadings } from '../drivers/sep2/client.js';
import type { PointSkip } from '../drivers/sep2/units.js';

const PERIOD = 600_000;

function setup() {
  const store = Store.memory();
  const registry = new Registry();
  const counter = new Counter({ name: 'holdfast_sep2_skipped_readings_total', help: 'h', labelNames: ['uplink', 'device', 'point', 'reason'] as const, registers: [registry] });
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { lines.push(JSON.parse(c.toString()) as Record<string, unknown>); cb(); } }));
  const clock = { monoMs: 1_000, wallMs: Date.UTC(2026, 5, 1), mono() { return this.monoMs; }, wall() { return this.wallMs; } };
  const report = new SkipReport({ events: store.events(), counter, log, clock, summaryMs: PERIOD });
  const events = () => (store.db.prepare(`SELECT scope, subject, fault_class AS faultClass, started_at AS at, detail FROM recovery_events WHERE kind = 'skipped' ORDER BY id`).all() as
    { scope: string; subject: string; faultClass: string; at: number; detail: string }[]).map((e) => ({ ...e, detail: JSON.parse(e.detail) as { skipped: (PointSkip & { device: string })[]; first?: boolean } }));
  const metric = async (labels: Record<string, string>) => (await counter.get()).values.find((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ?? 0;
  return { store, report, clock, lines, events, metric };
}

let task = 0;
const batch = (device: string, ...skipped: PointSkip[]): SkippedReadings => ({ uplink: 'utility', taskId: ++task, key: `k${task}`, device, skipped });
const rpm = (readings = 1): PointSkip => ({ point: 'rpm', reason: 'unknown_unit', unit: 'rpm', readings });
const mn = (readings = 1): PointSkip => ({ point: 'm1.Mn', reason: 'not_numeric', unit: '', readings });

t.test('first sighting recorded at once, then one summary per period with what was skipped since', async (t) => {
  const s = setup();
  s.report.take(batch('inv-1', rpm(2), mn()));
  let ev = s.events();
  t.equal(ev.length, 1, 'one event for the first sightings of the batch');
  t.match(ev[0], { scope: 'uplink', subject: 'utility', faultClass: 'payload', at: s.clock.wallMs });
  t.same(ev[0].detail.skipped, [{ device: 'inv-1', point: 'rpm', reason: 'unknown_unit', unit: 'rpm', readings: 2 }, { device: 'inv-1', point: 'm1.Mn', reason: 'not_numeric', unit: '', readings: 1 }]);
  t.equal(ev[0].detail.first, true);
  t.equal(s.lines.filter((l) => l.level === 40).length, 2, 'a warning per first sighting');
  t.match(String(s.lines[0].msg), /inv-1 rpm are not posted: unit 'rpm' has no IEEE 2030\.5 unit of measure/);

  for (let i = 0; i < 100; i++) {
    s.clock.monoMs += 1000;
    s.report.take(batch('inv-1', rpm(), mn()));
  }
  t.equal(s.events().length, 1, 'within the period: counted, not recorded');
  t.equal(await s.metric({ uplink: 'utility', device: 'inv-1', point: 'rpm', reason: 'unknown_unit' }), 102, 'the metric counts every reading at once');
  s.report.take(batch('inv-2', rpm()));
  t.equal(s.events().length, 2, 'a new device+point+reason is recorded at once');

  s.clock.monoMs += PERIOD;
  s.report.take(batch('inv-1', rpm(3)));
  ev = s.events();
  t.equal(ev.length, 3, 'the period over: one summary');
  t.notOk(ev[2].detail.first);
  t.same(ev[2].detail.skipped.map((x) => [x.point, x.readings]), [['rpm', 103], ['m1.Mn', 100]], 'everything since the last event');
  s.report.flush();
  t.equal(s.events().length, 3, 'nothing pending: flush writes nothing');
  s.report.take(batch('inv-1', mn(4)));
  s.report.flush();
  t.same(s.events()[3].detail.skipped, [{ device: 'inv-1', point: 'm1.Mn', reason: 'not_numeric', unit: '', readings: 4 }], 'flush (the agent stopping) writes what is pending');
});

t.test('a point skipped every second for an hour: seven rows, and the rows add up to every reading', async (t) => {
  const s = setup();
  for (let i = 0; i < 3600; i++) {
    s.report.take(batch('inv-1', rpm()));
    s.clock.monoMs += 1000;
  }
  s.report.flush();
  const ev = s.events();
  t.ok(ev.length <= 7, `${ev.length} events: the first sighting and one summary per 10 minutes`);
  t.equal(ev.flatMap((e) => e.detail.skipped).reduce((n, x) => n + x.readings, 0), 3600, 'no reading missing from the events');
  t.equal(await s.metric({ point: 'rpm' }), 3600);
});

t.test('holdfast status sums the events by device, point and reason, most first', async (t) => {
  const s = setup();
  s.report.take(batch('inv-1', rpm(5), mn(1)));
  s.clock.monoMs += PERIOD;
  s.report.take(batch('inv-1', rpm(7)));
  s.report.take(batch('inv-2', { point: 'ratio', reason: 'not_integer', unit: '', readings: 2 }));
  s.report.flush();
  const st = s.store.admin.status(s.clock.wallMs + 60_000, ['utility', 'other']);
  const u = st.uplinks.find((x) => x.uplink === 'utility')!;
  t.same(u.skipped.map((x) => [x.device, x.point, x.reason, x.unit, x.readings]), [
    ['inv-1', 'rpm', 'unknown_unit', 'rpm', 12], ['inv-2', 'ratio', 'not_integer', '', 2], ['inv-1', 'm1.Mn', 'not_numeric', '', 1],
  ]);
  t.equal(u.skipped[0].lastAt, s.clock.wallMs);
  t.same(st.uplinks.find((x) => x.uplink === 'other')?.skipped, [], 'another uplink skipped nothing');
  const text = formatStatus(st, 'gw');
  t.match(text, /skipped\s+15 readings not posted/);
  t.match(text, /\n\s+12 inv-1 rpm: unknown_unit \(unit 'rpm'\), last 60s ago/);
  t.notMatch(text.slice(text.indexOf('uplink other'), text.indexOf('uplink utility')), /skipped/, 'nothing said for an uplink without skips');
});
