/**
 * Two device entries on one Modbus unit, as integrators list them: the vendor's registers from a
 * device map, and SunSpec discovery of the same unit id. The config accepts them (device names
 * must still be unique). The real agent then polls both against Debian's pymodbus server, over
 * TCP (one connection carries both entries' reads) and over RTU through a socat pty pair (one
 * master on the port, transactions serialised): each entry's readings arrive under its own name,
 * with its own points and the unit's values, and a refused register of the vendor map is a fault
 * of the vendor entry only.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig, ConfigError } from '../agent/config/load.js';
import { CLEAN_ENV, tempDir, validRaw, writeJson } from './helpers/config-fixtures.js';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { ptyPair } from './helpers/socat.js';
import { pymodbusUnit, type PymodbusRequest, type PymodbusUnit } from './helpers/pymodbus.js';
import { launchAgent, log, makeAgentDir, telemetry, withDb } from './helpers/agent.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** The vendor map of test/helpers/pymodbus_unit.py's unit; holding 100 is not there (exception 02). */
const VENDOR_MAP = {
  name: 'vendor',
  points: [
    { name: 'setpoint', kind: 'holding', address: 0, type: 'uint16' },
    { name: 'energy', kind: 'holding', address: 1, type: 'uint32', unit: 'Wh' },
    { name: 'voltage', kind: 'input', address: 0, type: 'float32', unit: 'V' },
    { name: 'absent', kind: 'holding', address: 100, type: 'uint16' },
  ],
};
const VENDOR_POINTS = ['energy', 'setpoint', 'voltage'];

const sharedDevices = (map: string, unitId = 1) => [
  { name: 'meter-vendor', unitId, map, pollMs: 200 },
  { name: 'meter-sunspec', unitId, map: 'sunspec', pollMs: 200 },
];

t.test('config: two device entries with one unit id on a bus are accepted, over TCP and RTU', async (t) => {
  const dir = tempDir(t);
  const map = writeJson(join(dir, 'vendor.json'), VENDOR_MAP);
  const cfg = buildConfig(validRaw(dir, {
    buses: [
      { name: 'plant', type: 'tcp', host: '127.0.0.1', devices: sharedDevices(map) },
      { name: 'line', type: 'rtu', port: join(dir, 'ttyUSB0'), devices: sharedDevices(map, 7).map((d) => ({ ...d, name: `${d.name}-7` })) },
    ],
  }), { env: CLEAN_ENV });
  t.same(cfg.buses.map((b) => b.devices.map((d) => `${d.name}@${d.unitId}`)), [
    ['meter-vendor@1', 'meter-sunspec@1'],
    ['meter-vendor-7@7', 'meter-sunspec-7@7'],
  ], 'both entries of each unit kept');
});

t.test('config: device names stay unique, on one bus and across buses', async (t) => {
  const dir = tempDir(t);
  const map = writeJson(join(dir, 'vendor.json'), VENDOR_MAP);
  const cases = [
    { name: 'same name, same unit, one bus', buses: [{ name: 'plant', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'inv', unitId: 1, map }, { name: 'inv', unitId: 1, map: 'sunspec' }] }], path: '/buses/0/devices/1/name' },
    {
      name: 'same name on two buses',
      buses: [
        { name: 'a', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'inv', unitId: 1, map }] },
        { name: 'b', type: 'tcp', host: '127.0.0.2', devices: [{ name: 'inv', unitId: 2, map: 'sunspec' }] },
      ],
      path: '/buses/1/devices/0/name',
    },
  ];
  for (const c of cases) {
    let err: unknown;
    try {
      buildConfig(validRaw(dir, { buses: c.buses }), { env: CLEAN_ENV });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ConfigError, `${c.name}: refused`);
    const problems = (err as ConfigError).problems;
    t.same(problems.map((p) => [p.path, p.message]), [[c.path, 'duplicate device "inv"']], `${c.name}: the one problem is the name`);
  }
});

interface Run {
  /** The bus without its devices. */
  bus: Record<string, unknown>;
  unit: PymodbusUnit;
  close(): Promise<void>;
}

/**
 * Runs the agent with the two entries on `run.bus` until both have been polled several times,
 * checks their readings, the server's log and the fault events, and returns the requests served.
 */
async function pollShared(t: TapTest, run: Run): Promise<PymodbusRequest[]> {
  const broker = await startBroker();
  const tele = await subscribe(broker.url, 'holdfast/gw-test/telemetry');
  const a = makeAgentDir(broker.url, { sources: [] });
  const map = writeJson(join(a.dir, 'vendor.json'), VENDOR_MAP);
  a.config.buses = [{ ...run.bus, timeoutMs: 1000, retry: { baseMs: 50, maxMs: 200 }, devices: sharedDevices(map) }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await tele.close();
    await run.close();
    await broker.stop();
  });
  t.teardown(() => {
    if (!t.passing()) console.error(`--- pymodbus ---\n${run.unit.output().slice(-3000)}`);
  });
  const readings = (device: string) => telemetry(tele.messages).flatMap((m) => m.readings).filter((r) => r.device === device);
  const polled = (device: string, point: string) => readings(device).filter((r) => r.point === point).length;
  await waitFor(() => polled('meter-vendor', 'setpoint') >= 5 && polled('meter-sunspec', 'm103.W') >= 5, 60_000, 'five polls of each entry');

  const vendor = readings('meter-vendor');
  t.same([...new Set(vendor.map((r) => r.point))].sort(), VENDOR_POINTS, 'the vendor entry carries its map\'s points (the refused one aside), no SunSpec point');
  const value = (rs: typeof vendor, point: string) => [...new Set(rs.filter((r) => r.point === point).map((r) => r.value))];
  t.same(value(vendor, 'setpoint'), [4321], 'vendor setpoint (holding 0)');
  t.same(value(vendor, 'energy'), [70000], 'vendor energy (holding 1-2, uint32)');
  t.same(value(vendor, 'voltage'), [230.5], 'vendor voltage (input 0-1, float32)');

  const sunspec = readings('meter-sunspec');
  t.ok(sunspec.every((r) => /^m(1|103)\./.test(r.point)), 'the SunSpec entry carries only the discovered models\' points');
  t.same(value(sunspec, 'm1.Mn'), ['Holdfast'], 'model 1 manufacturer');
  t.same(value(sunspec, 'm103.W'), [1234], 'model 103 W');
  t.same(value(sunspec, 'm103.PhVphA'), [230.5], 'model 103 PhVphA with V_SF -1');
  t.same(value(sunspec, 'm103.Hz'), [50], 'model 103 Hz with Hz_SF -2');

  const requests = run.unit.requests();
  t.ok(requests.length > 0 && requests.every((r) => r.unit === 1), `every request is for unit 1 (${requests.length})`);
  t.ok(requests.some((r) => r.address < 40000) && requests.some((r) => r.address >= 40000), 'the unit served both entries\' reads');
  // pymodbus logs every exception it answers: the refused register's are expected, nothing else.
  const unexpected = run.unit.output().split('\n').filter((l) => l !== '' && !/^(READY|REQ |CONN )/.test(l) && !/Exception Response\(131, 3, IllegalAddress\)$/.test(l));
  t.same(unexpected, [], 'the server logged no error (no garbled or interleaved frame)');

  // Fault state is the entry's, not the unit's: the refused register faults the vendor entry alone.
  const faults = withDb(a, (db) => db.prepare("SELECT kind, subject FROM recovery_events WHERE kind LIKE 'fault:%' ORDER BY id").all());
  t.same(faults, [{ kind: 'fault:MODBUS_EXCEPTION_02', subject: `${run.bus.name}/meter-vendor@100` }], 'one field fault: the vendor entry\'s refused register; none on the SunSpec entry, no timeout, CRC or port fault');
  t.notMatch(log(a), /Cannot lock port/, 'the serial port was opened once');
  t.equal(await agent.stop(), 0, 'the agent stops cleanly');
  return requests;
}

t.test('TCP: both entries on one unit of a pymodbus server, over one connection', async (t) => {
  const unit = await pymodbusUnit({ tcp: true });
  const requests = await pollShared(t, { bus: { name: 'plant', type: 'tcp', host: '127.0.0.1', tcpPort: unit.port }, unit, close: () => unit.close() });
  const byConnection = new Map<string, PymodbusRequest[]>();
  for (const r of requests) byConnection.set(r.peer, [...(byConnection.get(r.peer) ?? []), r]);
  t.ok(
    [...byConnection.values()].some((rs) => rs.some((r) => r.address < 40000) && rs.some((r) => r.address >= 40000)),
    `one connection carried both entries' reads (connections: ${unit.connections().length})`,
  );
});

t.test('RTU: both entries on one unit of a pymodbus server, through a socat pty pair', async (t) => {
  const pty = await ptyPair();
  const unit = await pymodbusUnit({ serial: pty.a });
  const close = async () => {
    await unit.close();
    await pty.close();
  };
  const requests = await pollShared(t, { bus: { name: 'line', type: 'rtu', port: pty.b, baudRate: 9600, parity: 'none' }, unit, close });
  t.ok(requests.every((r) => r.peer === 'serial'), 'every request came over the serial line');
});
