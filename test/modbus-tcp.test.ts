/**
 * The Modbus TCP path against real servers on loopback: our simulator (SunSpec discovery,
 * exception codes and how the fault policy classes them, a device that disconnects and comes
 * back) and a server from another project (Debian's pymodbus) that the driver must read right.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { TcpClient } from '../drivers/modbus/tcp-client.js';
import { DevicePoller, type PollOutcome } from '../agent/acquisition/poller.js';
import { initialFaultState, observe, type FaultState, type Verdict } from '../agent/policy/faults.js';
import { decodePoint } from '../drivers/modbus/decode.js';
import { simulate } from '../agent/cli/simulate.js';
import type { Reading } from '../agent/reading.js';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { ROOT } from './helpers/agent.js';

const log = pino({ level: 'silent' });
const retry = { strategy: 'EXPONENTIAL_BACKOFF' as const, baseMs: 50, maxMs: 200, jitter: 0.2 };

function client(port: number) {
  return new TcpClient({ host: '127.0.0.1', port, connectTimeoutMs: 1000, maxQueue: 16 });
}

t.test('SunSpec discovery on the simulator maps models 1, 103 and 701 without a register map', async (t) => {
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '3:sunspec-inverter', print: () => {} });
  const c = client(sim.port!);
  t.teardown(async () => {
    await c.close();
    await sim.close();
  });
  const got: Reading[] = [];
  const p = new DevicePoller(
    { bus: 'plant', device: 'inv', unitId: 3, pollMs: 1000, timeoutMs: 500, points: 'sunspec', gap: 0, retry, soonerFactor: 0.25 },
    c, (_d, r) => (got.push(...r), true), () => {}, log,
  );
  const o = await p.poll();
  t.ok(o.ok, 'first poll discovers and reads');
  const names = new Set(got.map((r) => r.point));
  for (const n of ['m1.Mn', 'm1.SN', 'm103.W', 'm103.Hz', 'm103.PhVphA', 'm701.W', 'm701.Hz']) t.ok(names.has(n), `point ${n}`);
  const mn = got.find((r) => r.point === 'm1.Mn')!;
  t.equal(mn.value, 'Holdfast', 'model 1 manufacturer string');
  const w = got.find((r) => r.point === 'm103.W')!;
  t.equal(w.quality, 'good', 'AC power is a number');
  t.type(w.value, 'number');
  const ni = got.filter((r) => r.quality === 'not_implemented');
  t.ok(ni.length > 0, `SunSpec "not implemented" values become quality not_implemented (${ni.length} points)`);
  t.ok(ni.every((r) => r.value === null), 'never numbers');
});

t.test('exception codes: 02 stops the point and is a config fault; 04 device soft; 06 retried sooner', async (t) => {
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:meter', print: () => {} });
  const c = client(sim.port!);
  t.teardown(async () => {
    await c.close();
    await sim.close();
  });
  const points = [
    { name: 'ct_ratio', kind: 'holding' as const, address: 1, type: 'uint16' as const },
    { name: 'voltage_l1', kind: 'input' as const, address: 0, type: 'float32' as const, unit: 'V' },
    { name: 'nonexistent', kind: 'input' as const, address: 500, type: 'uint16' as const },
  ];
  const outcomes: PollOutcome[] = [];
  const got: Reading[] = [];
  const p = new DevicePoller(
    { bus: 'plant', device: 'meter', unitId: 1, pollMs: 1000, timeoutMs: 500, points, gap: 0, retry, soonerFactor: 0.25 },
    c, (_d, r) => (got.push(...r), true), (o) => outcomes.push(o), log,
  );
  await p.poll();
  const f = outcomes[0];
  t.ok(!f.ok && f.failure.kind === 'exception' && f.failure.exception === 2 && f.address === 500, 'unmapped register -> exception 02 at its address');
  t.ok(got.some((r) => r.point === 'voltage_l1'), 'the other points are still read in that poll');
  t.equal(p.activePoints, 2, 'the refused point is no longer polled');
  got.length = 0;
  outcomes.length = 0;
  await p.poll();
  t.same(outcomes, [{ ok: true }], 'next poll clean');
  t.notOk(got.some((r) => r.point === 'nonexistent'), 'and without it');

  // The fault policy: how each exception is classed.
  let state: FaultState = initialFaultState();
  const verdict = (exception: number): Verdict | undefined => {
    const r = observe(state, { now: Date.now(), bus: 'plant', device: 'meter', transport: 'tcp', address: 0, outcome: { ok: false, failure: { kind: 'exception', exception, message: '' } } });
    state = r.state;
    return r.verdicts.find((v) => v.type === 'fault');
  };
  t.match(verdict(2), { code: 'MODBUS_EXCEPTION_02', faultClass: 'config', retry: 'hard' });
  t.match(verdict(4), { code: 'MODBUS_EXCEPTION_04', faultClass: 'device', retry: 'soft' });
  const busy = verdict(6);
  t.match(busy, { code: 'MODBUS_EXCEPTION_06', faultClass: 'device', retry: 'soft' });
  t.ok((busy?.detail as { retrySoonerFactor?: number } | undefined)?.retrySoonerFactor ?? (busy as unknown as { retrySoonerFactor?: number }).retrySoonerFactor, 'busy answers are retried sooner');
  t.match(verdict(0x0b), { code: 'MODBUS_EXCEPTION_0B', faultClass: 'network' });

  // Exception 04 from the simulator for every read.
  sim.devices.get(1)!.setFaults({ exception: { code: 4 } });
  outcomes.length = 0;
  await p.poll();
  t.ok(!outcomes[0].ok && (outcomes[0] as { failure: { exception?: number } }).failure.exception === 4, 'device failure 04 reported');
  t.equal(p.activePoints, 2, '04 does not stop points (soft)');
});

t.test('a device that disconnects and comes back', async (t) => {
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:counter', print: () => {} });
  const c = client(sim.port!);
  t.teardown(async () => {
    await c.close();
    await sim.close();
  });
  const read = () => c.read({ unit: 1, fn: 3, address: 0, count: 2 }, 500);
  const first = await read();
  t.ok(first.ok, 'connected and read');
  sim.tcp!.disconnect(1500);
  // A request already on its way when the server drops the socket times out; the next one
  // finds the port closed.
  let down = await read();
  if (!down.ok && down.failure.kind === 'timeout') down = await read();
  t.ok(!down.ok && down.failure.kind === 'transport', `while it is gone: transport failure (${!down.ok ? down.failure.errno : ''})`);
  let state: FaultState = initialFaultState();
  if (!down.ok) {
    const r = observe(state, { now: Date.now(), bus: 'plant', device: 'counter', transport: 'tcp', outcome: down });
    state = r.state;
    t.match(r.verdicts[0], { type: 'fault', faultClass: 'network' }, 'classed network, never physical');
  }
  let back: Awaited<ReturnType<typeof read>> | undefined;
  await waitFor(async () => (back = await read()).ok, 10_000, 'device back');
  t.ok(back?.ok, 'reads again after it came back');
  const r = observe(state, { now: Date.now(), bus: 'plant', device: 'counter', transport: 'tcp', outcome: { ok: true } });
  t.match(r.verdicts[0], { type: 'recovery', faultClass: 'network' }, 'and the fault recovers');
  t.ok(c.stats.connects >= 2, 'the client reconnected');
});

t.test('interoperability: the driver reads a Modbus server from another project (pymodbus)', async (t) => {
  const port = await freePort();
  const py = spawn('/usr/bin/python3', [join(ROOT, 'test/fixtures/pymodbus_server.py'), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  py.stderr.on('data', (d) => (out += d));
  const c = client(port);
  t.teardown(async () => {
    await c.close();
    py.kill('SIGKILL');
  });
  await waitFor(() => out.includes('READY'), 20_000, `pymodbus server (${out})`);
  let r: Awaited<ReturnType<TcpClient['read']>> | undefined;
  await waitFor(async () => (r = await c.read({ unit: 1, fn: 3, address: 0, count: 12 }, 1000)).ok, 10_000, 'holding registers from pymodbus');
  t.same(r!.ok && r!.registers, [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 1, 4464], 'holding registers 0..11');
  t.equal(decodePoint({ name: 'x', kind: 'holding', address: 10, type: 'uint32' }, (r as { registers: number[] }).registers.slice(10)).value, 70000, 'uint32 across two registers');
  const ir = await c.read({ unit: 1, fn: 4, address: 0, count: 3 }, 1000);
  t.ok(ir.ok, 'input registers');
  const regs = (ir as { registers: number[] }).registers;
  t.equal(decodePoint({ name: 'v', kind: 'input', address: 0, type: 'float32' }, regs.slice(0, 2)).value, 230.5, 'float32 230.5');
  t.equal(decodePoint({ name: 'i', kind: 'input', address: 2, type: 'int16' }, regs.slice(2)).value, -5, 'int16 -5');
});

t.test('buses run in parallel: a slow device stalls only its own bus', async (t) => {
  const slow = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:counter', print: () => {} });
  const fast = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:counter', print: () => {} });
  const a = client(slow.port!);
  const b = client(fast.port!);
  t.teardown(async () => {
    await a.close();
    await b.close();
    await slow.close();
    await fast.close();
  });
  slow.devices.get(1)!.setFaults({ slowMs: 1500 });
  let slowDone = false;
  const pending = a.read({ unit: 1, fn: 3, address: 0, count: 2 }, 3000).then((r) => {
    slowDone = true;
    return r;
  });
  let fastReads = 0;
  while (!slowDone && fastReads < 20) {
    const r = await b.read({ unit: 1, fn: 3, address: 0, count: 2 }, 1000);
    if (r.ok) fastReads++;
  }
  t.ok(fastReads >= 3, `the other bus answered ${fastReads} reads while the slow one was busy`);
  t.ok((await pending).ok, 'the slow device answers in the end');
});
