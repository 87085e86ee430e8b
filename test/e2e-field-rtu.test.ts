/**
 * The field side end to end over a real serial line: the agent's RTU master on one end of a
 * socat pty pair, the RTU simulator (meter on unit 1, counter on unit 2) on the other, a fake
 * sysfs tree for the bus-voltage ADC and the fault LED, and a real Mosquitto for the `faults`
 * topic. Typed and scaled values; CRC corruption -> physical MODBUS_CRC; one silent device ->
 * device MODBUS_TIMEOUT; the ADC dropped to 1.2 V mid-run turns timeouts into RS485_VOLTAGE_LOW
 * and lights the LED, both clear when the voltage returns; no uplink breaker ever moves.
 */
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { ptyPair } from './helpers/socat.js';
import { cli, count, launchAgent, makeAgentDir, telemetry, withDb } from './helpers/agent.js';
import { simulate } from '../agent/cli/simulate.js';

function fakeSysfs(root: string) {
  const iio = join(root, 'sys/bus/iio/devices/iio:device0');
  const led = join(root, 'sys/class/leds/fault');
  mkdirSync(iio, { recursive: true });
  mkdirSync(led, { recursive: true });
  writeFileSync(join(iio, 'in_voltage0_scale'), '1.0\n'); // 1 mV per LSB
  writeFileSync(join(led, 'brightness'), '0\n');
  writeFileSync(join(led, 'max_brightness'), '1\n');
  const setVolts = (v: number) => writeFileSync(join(iio, 'in_voltage0_raw'), `${Math.round(v * 1000)}\n`);
  setVolts(3.3);
  return { setVolts, led: () => readFileSync(join(led, 'brightness'), 'utf8').trim() };
}

t.test('RTU over a pty pair: values, CRC storm, silent device, bus voltage low, LED', async (t) => {
  const pty = await ptyPair();
  const sim = await simulate({ mode: 'modbus-rtu', serial: pty.a, baud: 9600, parity: 'none', units: '1:meter,2:counter', print: () => {} });
  const broker = await startBroker();
  const faults = await subscribe(broker.url, 'holdfast/gw-test/faults');
  const tele = await subscribe(broker.url, 'holdfast/gw-test/telemetry');
  const a = makeAgentDir(broker.url, { sources: [] });
  const root = join(a.dir, 'root');
  const sys = fakeSysfs(root);
  const profile = join(a.dir, 'board.json');
  writeFileSync(profile, JSON.stringify({
    name: 'test-board', description: 'fake sysfs board for tests',
    serialPorts: { line: { device: '/dev/ttyUSB9', rs485: false } },
    buses: { rs485a: { port: 'line', voltage: { type: 'iio', device: 'iio:device0', channel: 'in_voltage0', scale: 1 } } },
    thermalZones: [], temperatureFallback: 'none', leds: { fault: 'fault' },
    verified: { onRealHardware: false, verified: [], notVerified: ['a test fixture'], assumptions: [], sources: [] },
  }));
  const counterMap = join(a.dir, 'counter.json');
  writeFileSync(counterMap, JSON.stringify({ name: 'counter', points: [{ name: 'counter', kind: 'holding', address: 0, type: 'uint32' }] }));
  const cfg = a.config;
  cfg.hardware = { profile, sysfsRoot: root };
  cfg.buses = [{
    name: 'rs485a', type: 'rtu', port: pty.b, baudRate: 9600, parity: 'none', timeoutMs: 150,
    voltage: { min: 2.5, max: 5, pollMs: 100 }, retry: { baseMs: 50, maxMs: 200 },
    devices: [
      { name: 'meter-1', unitId: 1, map: join(process.cwd(), 'config/devices/generic-energy-meter.json'), pollMs: 100 },
      { name: 'counter-2', unitId: 2, map: counterMap, pollMs: 100 },
    ],
  }];
  writeFileSync(a.configFile, JSON.stringify(cfg));
  const agent = launchAgent(t, a, async () => {
    await faults.close();
    await tele.close();
    await sim.close();
    await pty.close();
    await broker.stop();
  });
  const faultMsgs = () => faults.messages.map((m) => JSON.parse(m.payload.toString()) as { type: string; code: string; faultClass: string; scope: string; device?: string });
  const has = (type: string, code: string, cls: string) => faultMsgs().some((f) => f.type === type && f.code === code && f.faultClass === cls);

  // 1. values
  await waitFor(() => ['meter-1', 'counter-2'].every((d) => telemetry(tele.messages).some((m) => m.device === d)), 30_000, 'readings of both devices');
  const meter = telemetry(tele.messages).filter((m) => m.device === 'meter-1').flatMap((m) => m.readings);
  const v = meter.find((r) => r.point === 'voltage_l1')!;
  t.ok(typeof v.value === 'number' && Math.abs((v.value as number) - 230) < 5, `float32 voltage decoded (${v.value} V)`);
  const hz = meter.find((r) => r.point === 'frequency')!;
  t.ok(Math.abs((hz.value as number) - 50) < 0.1, `frequency ${hz.value} Hz`);
  t.equal(meter.find((r) => r.point === 'ct_ratio')?.value, 100, 'uint16 holding register');
  t.ok((meter.find((r) => r.point === 'energy_import')?.value as number) >= 1_234_567, 'uint32 energy');
  const counters = telemetry(tele.messages).filter((m) => m.device === 'counter-2').flatMap((m) => m.readings.map((r) => r.value as number)).sort((x, y) => x - y);
  t.ok(counters.length > 0 && counters.every((c, i) => i === 0 || c === counters[i - 1] + 1), `counter-2 contiguous: no poll lost (${counters[0]}..${counters[counters.length - 1]})`);

  // 2. CRC corruption on every answer: a physical fault of the bus, the LED on
  for (const d of sim.devices.values()) d.setFaults({ corruptCrc: 1 });
  await waitFor(() => has('fault', 'MODBUS_CRC', 'physical'), 20_000, 'MODBUS_CRC physical verdict');
  t.pass('CRC storm -> MODBUS_CRC, class physical');
  await waitFor(() => sys.led() !== '0', 5_000, 'fault LED on');
  t.pass('fault LED lit');
  for (const d of sim.devices.values()) d.setFaults({ corruptCrc: null });
  await waitFor(() => has('recovery', 'MODBUS_CRC', 'physical'), 30_000, 'CRC recovery');
  await waitFor(() => sys.led() === '0', 5_000, 'fault LED off');
  t.pass('recovered: LED off');

  // 3. one device silent while its neighbour answers: a device fault, not physical
  sim.devices.get(2)!.setFaults({ silence: true });
  await waitFor(() => faultMsgs().some((f) => f.type === 'fault' && f.code === 'MODBUS_TIMEOUT' && f.faultClass === 'device' && f.device === 'counter-2'), 20_000, 'device timeout verdict');
  t.pass('one silent device -> MODBUS_TIMEOUT, class device');
  t.equal(sys.led(), '0', 'a device fault does not light the bus LED');
  sim.devices.get(2)!.setFaults({ silence: null });
  await waitFor(() => faultMsgs().some((f) => f.type === 'recovery' && f.code === 'MODBUS_TIMEOUT' && f.device === 'counter-2'), 20_000, 'device recovery');

  // 4. bus voltage drops to 1.2 V and every device goes quiet: RS485_VOLTAGE_LOW explains it
  const before = faultMsgs().length;
  sys.setVolts(1.2);
  for (const d of sim.devices.values()) d.setFaults({ silence: true });
  await waitFor(() => has('fault', 'RS485_VOLTAGE_LOW', 'physical'), 20_000, 'RS485_VOLTAGE_LOW');
  await waitFor(() => sys.led() !== '0', 5_000, 'LED on for low voltage');
  const st = cli(['status', '--config', a.configFile]);
  t.match(st.stdout, /PHYSICAL\s+rs485a: RS485_VOLTAGE_LOW/, 'holdfast status tells the technician it is the wiring');
  await new Promise((r) => setTimeout(r, 1500));
  const during = faultMsgs().slice(before).filter((f) => f.type === 'fault');
  t.same(during.map((f) => f.code), ['RS485_VOLTAGE_LOW'], 'timeouts under a low bus voltage are not reported as device or network faults');
  sys.setVolts(3.3);
  for (const d of sim.devices.values()) d.setFaults({ silence: null });
  await waitFor(() => has('recovery', 'RS485_VOLTAGE_LOW', 'physical'), 20_000, 'voltage recovery');
  await waitFor(() => sys.led() === '0', 5_000, 'LED off again');
  t.pass('voltage back: fault cleared, LED off');

  // Field faults are events in the store and never touch the uplink breaker.
  t.ok(count(a, `SELECT count(*) FROM recovery_events WHERE code = 'RS485_VOLTAGE_LOW' AND ended_at IS NOT NULL`) >= 1, 'recorded as a closed recovery event');
  t.equal(count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'breaker'`), 0, 'no uplink breaker transition');
  t.equal(withDb(a, (db) => db.prepare(`SELECT breaker FROM link_state WHERE uplink = 'broker'`).pluck().get()), 'closed', 'uplink breaker closed');
  t.equal(sim.rtu!.stats.requests > 0, true, 'the simulator served the agent');
  await agent.stop();
});
