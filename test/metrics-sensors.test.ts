/**
 * Sensor gauges on /metrics: a reading the board cannot make is absent, never a 0 that alerting
 * rules would take for a measurement (prom-client keeps a 0 sample for a label-less gauge).
 */
import t from 'tap';
import { Metrics, type MetricsSources } from '../agent/api/metrics.js';

function metrics(over: Partial<MetricsSources>): Metrics {
  return new Metrics({ depth: () => [], breakers: () => [], cpuTempC: () => null, throttleFactor: () => 1, busVolts: () => [], ...over });
}

const samples = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));

t.test('no temperature sensor: HELP and TYPE, no sample', async (t) => {
  const text = await metrics({}).text();
  t.match(text, /# TYPE holdfast_cpu_temperature_celsius gauge/);
  t.same(samples(text, 'holdfast_cpu_temperature_celsius'), [], 'no 0 °C sample');
});

t.test('a sensor that reads, then stops reading: the sample comes and goes', async (t) => {
  let c: number | null = 41.5;
  const m = metrics({ cpuTempC: () => c });
  t.same(samples(await m.text(), 'holdfast_cpu_temperature_celsius'), ['holdfast_cpu_temperature_celsius 41.5']);
  c = null;
  t.same(samples(await m.text(), 'holdfast_cpu_temperature_celsius'), [], 'gone once the sensor is');
  c = 0;
  t.same(samples(await m.text(), 'holdfast_cpu_temperature_celsius'), ['holdfast_cpu_temperature_celsius 0'], 'a real 0 °C is shown');
});

t.test('bus voltage: only the buses measured', async (t) => {
  const text = await metrics({ busVolts: () => [{ bus: 'a', volts: 3.3 }, { bus: 'b', volts: null }] }).text();
  t.same(samples(text, 'holdfast_bus_voltage_volts'), ['holdfast_bus_voltage_volts{bus="a"} 3.3']);
});
