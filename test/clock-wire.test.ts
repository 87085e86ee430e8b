/**
 * The unsynchronised-clock flag on the wire (docs/uplinks.md). MQTT carries the stored readings as
 * they are (`clock`, `mono` included; test/e2e-clock.test.ts sees them at a subscriber); OTLP adds
 * the attribute `holdfast.clock`; IEEE 2030.5 marks the reading questionable (qualityFlags bit 4,
 * never valid) while unsynced, and derived (bit 5) once re-based.
 */
import t from 'tap';
import { batchToResourceMetrics } from '../drivers/otlp/model.js';
import { mapReadings } from '../drivers/sep2/units.js';

const base = { device: 'm', point: 'voltage_l1', value: 230, unit: 'V', quality: 'good' };
const rows = [
  { ...base, ts: 3_600_000, clock: 'unsynced', mono: 1234 },
  { ...base, ts: 1_796_385_600_000, clock: 'rebased' },
  { ...base, ts: 1_796_385_601_000 },
  { ...base, ts: 1_796_385_602_000, quality: 'uncertain', clock: 'rebased' },
];

t.test('IEEE 2030.5: qualityFlags', async (t) => {
  const [p] = mapReadings(rows).points;
  t.same(p.readings.map((r) => [r.start, r.qualityFlags]), [
    [3600, 0x10],
    [1_796_385_600, 0x21],
    [1_796_385_601, 0x01],
    [1_796_385_602, 0x30],
  ], 'unsynced: questionable, not valid; rebased: derived as well; unflagged: as before');
});

t.test('OTLP: the holdfast.clock attribute, only where set', async (t) => {
  const b = batchToResourceMetrics(rows, { gatewayId: 'g', hardwareProfile: 'h' });
  const points = b.resourceMetrics.scopeMetrics[0].metrics[0].dataPoints;
  t.same(points.map((p) => p.attributes['holdfast.clock']), ['unsynced', 'rebased', undefined, 'rebased']);
  t.notOk('holdfast.clock' in points[2].attributes, 'no attribute on a reading the clock was good for');
});
