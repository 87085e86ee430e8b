/**
 * Fault discrimination (agent/policy/faults.ts), table-driven: each scenario is a sequence of
 * driver outcomes and voltage readings on one bus, and the exact list of verdicts it must
 * produce, written as "step type scope code class retry [device][@address]". Listing every
 * verdict (not just the ones of interest) is what checks edge triggering: a fault appears
 * once, its recovery once, and nothing else is said. Detail fields get their own checks.
 */
import t from 'tap';
import {
  activeFaults,
  CONDITION_RULES,
  DEFAULT_FAULT_CONFIG,
  EXCEPTION_RULES,
  exceptionRule,
  initialFaultState,
  observe,
  observeVoltage,
  TRANSPORT_RULES,
  type FaultConfig,
  type FaultState,
  type Transport,
  type Verdict,
} from '../agent/policy/faults.js';
import type { ModbusFailure } from '../drivers/modbus/types.js';

type Step =
  | { volts: number | null }
  | { dev: string; ok: true; addr?: number }
  | { dev: string; fail: ModbusFailure; addr?: number };
const ok = (dev: string, addr?: number): Step => ({ dev, ok: true, addr });
const to = (dev: string): Step => ({ dev, fail: { kind: 'timeout', message: 'timeout' } });
const crc = (dev: string): Step => ({ dev, fail: { kind: 'crc', message: 'bad crc' } });
const framing = (dev: string): Step => ({ dev, fail: { kind: 'framing', message: 'short frame' } });
const exc = (dev: string, exception: number, addr?: number): Step => ({ dev, fail: { kind: 'exception', exception, message: 'exception' }, addr });
const err = (dev: string, errno: string): Step => ({ dev, fail: { kind: 'transport', errno, message: errno } });
const v = (volts: number | null): Step => ({ volts });
const times = (n: number, f: (i: number) => Step[]): Step[] => Array.from({ length: n }, (_, i) => f(i)).flat();

interface Run {
  state: FaultState;
  lines: string[];
  verdicts: (Verdict & { step: number })[];
}
function run(steps: Step[], transport: Transport = 'rtu', cfg: FaultConfig = DEFAULT_FAULT_CONFIG): Run {
  let state = initialFaultState();
  const verdicts: Run['verdicts'] = [];
  steps.forEach((s, step) => {
    const now = 1000 * (step + 1);
    const r =
      'volts' in s
        ? observeVoltage(state, { now, bus: 'b1', volts: s.volts, window: { min: 2.5, max: 5 } })
        : observe(state, { now, bus: 'b1', device: s.dev, address: s.addr, transport, outcome: 'ok' in s ? { ok: true } : { ok: false, failure: s.fail } }, cfg);
    state = r.state;
    for (const x of r.verdicts) verdicts.push({ ...x, step });
  });
  const lines = verdicts.map((x) => `${x.step} ${x.type} ${x.scope} ${x.code} ${x.faultClass} ${x.retry}${x.device ? ` ${x.device}` : ''}${x.address !== undefined ? `@${x.address}` : ''}`);
  return { state, lines, verdicts };
}

const SCENARIOS: { name: string; transport?: Transport; steps: Step[]; expect: string[] }[] = [
  { name: 'voltage low, then recovered', steps: [v(3.3), v(1.9), v(2.0), v(3.3)], expect: ['1 fault bus RS485_VOLTAGE_LOW physical soft', '3 recovery bus RS485_VOLTAGE_LOW physical soft'] },
  { name: 'voltage high, straight to low', steps: [v(5.6), v(5.7), v(1.0), v(3.0)], expect: ['0 fault bus RS485_VOLTAGE_HIGH physical soft', '2 recovery bus RS485_VOLTAGE_HIGH physical soft', '2 fault bus RS485_VOLTAGE_LOW physical soft', '3 recovery bus RS485_VOLTAGE_LOW physical soft'] },
  { name: 'voltage: hysteresis at the edge, null changes nothing', steps: [v(2.4), v(2.52), v(null), v(2.6)], expect: ['0 fault bus RS485_VOLTAGE_LOW physical soft', '3 recovery bus RS485_VOLTAGE_LOW physical soft'] },
  {
    name: 'one device times out, its neighbour answers: device fault, then recovery',
    steps: [ok('d1'), ok('d2'), ...times(4, () => [to('d1'), ok('d2')]), ok('d1')],
    expect: ['6 fault device MODBUS_TIMEOUT device soft d1', '10 recovery device MODBUS_TIMEOUT device soft d1'],
  },
  {
    name: 'every device silent: one physical bus fault, no device faults; recovery on any answer',
    steps: [ok('d1'), ok('d2'), ok('d3'), ...times(5, () => [to('d1'), to('d2'), to('d3')]), ok('d2')],
    expect: ['11 fault bus MODBUS_TIMEOUT physical soft', '18 recovery bus MODBUS_TIMEOUT physical soft'],
  },
  {
    name: 'every device silent behind a TCP gateway: network, not physical',
    transport: 'tcp',
    steps: [ok('d1'), ok('d2'), ...times(3, () => [to('d1'), to('d2')])],
    expect: ['7 fault bus MODBUS_TIMEOUT network soft'],
  },
  {
    name: 'during a voltage fault, timeouts are explained by it',
    steps: [ok('d1'), ok('d2'), v(1.2), ...times(4, () => [to('d1'), ok('d2')]), ...times(4, () => [to('d1'), to('d2')]), v(3.3)],
    expect: ['2 fault bus RS485_VOLTAGE_LOW physical soft', '19 recovery bus RS485_VOLTAGE_LOW physical soft'],
  },
  {
    name: 'CRC storm: physical with the rate; recovery when the rate falls under the threshold',
    steps: [...times(10, () => [ok('d1')]), ...times(5, () => [crc('d1'), framing('d2')]), ...times(15, () => [ok('d1')])],
    // 5 errors first at step 14 (5/15 > 0.3); the 20-window drops to 5/20 < 0.3 at step 34.
    expect: ['14 fault bus MODBUS_CRC physical soft', '34 recovery bus MODBUS_CRC physical soft'],
  },
  { name: 'a few CRC errors stay under the minimum count', steps: [crc('d1'), crc('d1'), ok('d1'), crc('d1')], expect: [] },
  {
    name: 'exceptions: 02 config/hard/point, 04 device/soft, 06 sooner, 0B network',
    steps: [exc('d1', 2, 100), exc('d1', 2, 100), exc('d1', 4), exc('d1', 6), exc('d2', 0x0b), exc('d1', 6), ok('d1'), ok('d1', 100)],
    expect: [
      '0 fault point MODBUS_EXCEPTION_02 config hard d1@100',
      '2 fault device MODBUS_EXCEPTION_04 device soft d1',
      '3 fault device MODBUS_EXCEPTION_06 device soft d1',
      '4 fault device MODBUS_EXCEPTION_0B network soft d2',
      '6 recovery device MODBUS_EXCEPTION_04 device soft d1',
      '6 recovery device MODBUS_EXCEPTION_06 device soft d1',
      '7 recovery point MODBUS_EXCEPTION_02 config hard d1@100',
    ],
  },
  {
    name: 'TCP ECONNREFUSED: network, device scope, never physical',
    transport: 'tcp',
    steps: [err('plc', 'ECONNREFUSED'), err('plc', 'ECONNREFUSED'), err('plc', 'ECONNREFUSED'), ok('plc')],
    expect: ['0 fault device ECONNREFUSED network soft plc', '3 recovery device ECONNREFUSED network soft plc'],
  },
  {
    name: 'RTU EIO on the serial port: local, bus scope',
    steps: [err('d1', 'EIO'), err('d2', 'EIO'), ok('d2')],
    expect: ['0 fault bus SERIAL_PORT_ERROR local soft', '2 recovery bus SERIAL_PORT_ERROR local soft'],
  },
  {
    name: 'a dead device stays a device fault when the bus then goes silent',
    steps: [ok('d1'), ok('d2'), ...times(3, () => [to('d1'), ok('d2')]), ...times(3, () => [to('d1'), to('d2')]), ok('d2'), ok('d1')],
    expect: ['6 fault device MODBUS_TIMEOUT device soft d1', '13 fault bus MODBUS_TIMEOUT physical soft', '14 recovery bus MODBUS_TIMEOUT physical soft', '15 recovery device MODBUS_TIMEOUT device soft d1'],
  },
];

t.test('scenarios', async (t) => {
  for (const s of SCENARIOS) t.same(run(s.steps, s.transport).lines, s.expect, s.name);
});

t.test('details: rate, volts, sooner hint, counts', async (t) => {
  const storm = run(SCENARIOS.find((s) => s.name.startsWith('CRC storm'))!.steps).verdicts;
  t.match(storm[0].detail, { errors: 5, window: 15 });
  t.ok(Math.abs((storm[0].detail.rate as number) - 5 / 15) < 1e-12, 'rate = errors / window');
  t.match(storm[1].detail, { errors: 5, window: 20, rate: 0.25 }, 'recovered under the threshold');

  const low = run([v(1.9), v(3.3)]).verdicts;
  t.match(low[0].detail, { volts: 1.9, min: 2.5, max: 5 });
  t.match(low[1].detail, { volts: 3.3, activeMs: 1000 });

  const busy = run([exc('d1', 6), exc('d1', 5), exc('d1', 4)]).verdicts;
  t.equal(busy[0].retrySoonerFactor, 0.25, '06 carries the sooner hint');
  t.equal(busy[1].retrySoonerFactor, 0.25, '05 too');
  t.equal(busy[2].retrySoonerFactor, undefined, '04 does not');

  const silent = run([ok('d1'), ok('d2'), ...times(3, () => [to('d1'), to('d2')])]).verdicts;
  t.match(silent[0].detail, { devices: 2, timeouts: 3 });
  t.match(run([err('d1', 'EIO')]).verdicts[0].detail, { errno: 'EIO', catalogued: false });
  t.match(run([err('d1', 'ETIMEDOUT')], 'tcp').verdicts[0].detail, { errno: 'ETIMEDOUT', catalogued: true });
});

t.test('state: immutable, activeFaults, configurable N, stale neighbours', async (t) => {
  const s0 = initialFaultState();
  const r = observeVoltage(s0, { now: 1, bus: 'b1', volts: 9, window: { min: 2.5, max: 5 } });
  t.same(s0, initialFaultState(), 'the input state is not mutated');
  t.same(activeFaults(r.state).map((f) => [f.code, f.since]), [['RS485_VOLTAGE_HIGH', 1]]);
  t.same(observeVoltage(r.state, { now: 2, bus: 'b1', volts: 9 }).verdicts, [], 'the default window, still high: nothing new');
  t.same(observeVoltage(s0, { now: 1, bus: 'b1', volts: 2, window: { min: 5, max: 1 } }).verdicts.map((x) => x.code), ['RS485_VOLTAGE_LOW'], 'an inverted window falls back to 2.5-5 V');

  const n5 = { ...DEFAULT_FAULT_CONFIG, timeouts: 5 };
  const steps = [ok('d2'), ...times(4, () => [to('d1'), ok('d2')])];
  t.same(run(steps, 'rtu', n5).lines, [], 'four timeouts are not enough with N = 5');
  t.same(run([...steps, to('d1')], 'rtu', n5).lines, ['9 fault device MODBUS_TIMEOUT device soft d1']);

  // d2 answered once, long ago: not a live neighbour, so d1 alone is "every device".
  const stale = { ...DEFAULT_FAULT_CONFIG, staleMs: 2500 };
  t.same(run([ok('d2'), to('d1'), to('d1'), to('d1')], 'rtu', stale).lines, ['3 fault bus MODBUS_TIMEOUT physical soft']);
});

t.test('rule tables', async (t) => {
  for (const n of [1, 2, 3]) t.match(EXCEPTION_RULES[n], { faultClass: 'config', retry: 'hard', scope: 'point' }, `0${n}`);
  for (const n of [4, 5, 6]) t.match(EXCEPTION_RULES[n], { faultClass: 'device', retry: 'soft' }, `0${n}`);
  for (const n of [0x0a, 0x0b]) t.match(EXCEPTION_RULES[n], { faultClass: 'network', answered: false });
  t.match(exceptionRule(0x07), { code: 'MODBUS_EXCEPTION_07', faultClass: 'device', retry: 'soft' }, 'unlisted codes keep their number');
  t.equal(TRANSPORT_RULES.tcp.faultClass, 'network');
  t.equal(TRANSPORT_RULES.rtu.faultClass, 'local');
  for (const [name, rule] of Object.entries(CONDITION_RULES)) t.not(rule.faultClass, 'upstream', `${name} is never an uplink fault`);
});
