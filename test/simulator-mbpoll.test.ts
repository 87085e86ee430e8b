/**
 * The simulators against a Modbus master we did not write: Debian's `mbpoll` (libmodbus), over
 * TCP and over RTU on a socat pty pair. If our framing, CRC, byte counts or exception PDUs were
 * wrong in the same way as frame.ts, the other tests could not see it; libmodbus would.
 * Also: the `simulate` command itself (options, the listening line, runs until SIGINT) and
 * fault scripts loaded from a file.
 *
 * mbpoll: -r is the 1-based reference (PDU address + 1), -t 4 holding, -t 3 input, ':hex' and
 * ':float' change the display, -B big-endian word order for 32-bit values, -1 one poll.
 * Values are printed as "[ref]: \tvalue". Without mbpoll (and no way to apt-get it) the
 * interop tests are skipped with a message; the CLI tests run anyway.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parsePdu, readPdu, registers, takeTcpFrames, tcpFrame } from '../drivers/modbus/frame.js';
import { simulate } from '../agent/cli/simulate.js';
import { createDevice, METER } from '../drivers/modbus/simulator/profiles.js';
import { RtuSimulator } from '../drivers/modbus/simulator/rtu.js';
import { TcpSimulator } from '../drivers/modbus/simulator/tcp.js';
import { waitFor } from './helpers/mosquitto.js';
import { ptyPair } from './helpers/socat.js';

// scripts/test.sh installs mbpoll (scripts/system-deps.sh); without it these tests fail, never skip.
const MBPOLL = ['/usr/bin/mbpoll', '/usr/local/bin/mbpoll'].find((p) => existsSync(p));
t.ok(MBPOLL, 'mbpoll is installed (bash scripts/system-deps.sh test installs it)');

/** Runs mbpoll; returns exit code, output and the values it printed, by reference. */
function mbpoll(args: string[]): Promise<{ code: number; out: string; values: Map<number, string> }> {
  return new Promise((resolve) => {
    execFile(MBPOLL!, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      const values = new Map<number, string>();
      for (const m of stdout.matchAll(/^\[(\d+)\]:\s+(\S+)/gm)) values.set(Number(m[1]), m[2]);
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr, values });
    });
  });
}
const list = (v: Map<number, string>) => [...v.values()];

/** Frozen clocks: what mbpoll prints must equal the registers exactly. */
function devices() {
  const counter = createDevice('counter', 1);
  counter.holding.set([0xbeef, 1234], 2);
  return new Map([
    [1, counter],
    [2, createDevice('meter', 2, { now: () => 0 })],
    [3, createDevice('sunspec-inverter', 3, { now: () => 0 })],
  ]);
}

t.test('mbpoll over Modbus TCP', async (t) => {
  const devs = devices();
  const sim = await TcpSimulator.start({ port: 0, devices: devs });
  t.teardown(() => sim.close());
  const base = ['-m', 'tcp', '-p', String(sim.port), '-1'];
  let r = await mbpoll([...base, '-a', '1', '-r', '1', '-c', '4', '-t', '4', '127.0.0.1']);
  t.equal(r.code, 0, r.out);
  t.same(list(r.values), ['0', '1', '48879', '1234'], 'holding 0-3: counter = 1, scratch registers');
  r = await mbpoll([...base, '-a', '1', '-r', '1', '-c', '4', '-t', '4:hex', '127.0.0.1']);
  t.same(list(r.values), ['0x0000', '0x0002', '0xBEEF', '0x04D2'], 'hex display; the counter counted the second poll');
  r = await mbpoll([...base, '-a', '2', '-r', '1', '-c', '6', '-t', '3:float', '-B', '127.0.0.1']);
  const meter = devs.get(2)!;
  const want = [0, 2, 4, 6, 8, 10].map((a) => Buffer.from([meter.input[a] >> 8, meter.input[a] & 255, meter.input[a + 1] >> 8, meter.input[a + 1] & 255]).readFloatBE());
  const got = list(r.values).map(Number);
  t.equal(got.length, 6, r.out);
  t.ok(got.every((g, i) => Math.abs(g - want[i]) <= Math.abs(want[i]) * 1e-5), `float32 voltages and currents ${got.join(' ')} = ${want.map((w) => w.toFixed(3)).join(' ')}`);
  r = await mbpoll([...base, '-a', '2', '-r', String(METER.ENERGY_WH + 1), '-c', '1', '-t', '3:int', '-B', '127.0.0.1']);
  t.same(list(r.values), [String(METER.ENERGY_START_WH)], 'uint32 energy, big-endian words');
  r = await mbpoll([...base, '-a', '3', '-r', '40001', '-c', '4', '-t', '4:hex', '127.0.0.1']);
  t.same(list(r.values), ['0x5375', '0x6E53', '0x0001', '0x0042'], "SunSpec: 'SunS', model 1, length 66");
  r = await mbpoll([...base, '-a', '1', '-r', '101', '-c', '1', '127.0.0.1']);
  t.not(r.code, 0);
  t.match(r.out, /Illegal data address/, 'exception 02 understood by libmodbus');
});

t.test('mbpoll over Modbus RTU on a socat pty pair', async (t) => {
  const pty = await ptyPair();
  const devs = devices();
  const sim = await RtuSimulator.open({ path: pty.a, baudRate: 9600, parity: 'none', devices: devs, emulateLineRate: true });
  t.teardown(async () => (await sim.close(), await pty.close()));
  const base = ['-m', 'rtu', '-b', '9600', '-P', 'none', '-1'];
  let r = await mbpoll([...base, '-a', '1', '-r', '1', '-c', '4', pty.b]);
  t.equal(r.code, 0, r.out);
  t.same(list(r.values), ['0', '1', '48879', '1234'], 'holding 0-3 over RTU (line rate emulated)');
  r = await mbpoll([...base, '-a', '3', '-r', '40071', '-c', '2', '-t', '4', pty.b]);
  t.same(list(r.values), ['103', '50'], 'SunSpec model 103, length 50');
  r = await mbpoll([...base, '-a', '2', '-r', '21', '-c', '1', '-t', '3:float', '-B', pty.b]);
  t.same(list(r.values), ['50'], 'meter frequency 50 Hz at t = 0');
  r = await mbpoll([...base, '-a', '9', '-r', '1', '-c', '1', '-o', '0.3', pty.b]);
  t.not(r.code, 0, 'unit 9 is not on the bus: no answer');
  t.equal(sim.stats.dropped.other_unit, 1);
  t.equal(sim.stats.dropped.crc, undefined, 'libmodbus CRCs all good');
  r = await mbpoll([...base, '-a', '1', '-r', '1', '-c', '2', pty.b]);
  t.same(list(r.values), ['0', '2'], 'in step after the timeout');
});

t.test('fault script from a file, and refusals', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-sim-'));
  const file = join(dir, 'faults.json');
  writeFileSync(file, JSON.stringify([{ atMs: 0, unit: 1, set: { silence: true } }, { atMs: 400, set: { silence: null, slowMs: 50 } }]));
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:counter', faults: file, print: () => {} });
  t.teardown(() => sim.close());
  await new Promise((r) => setTimeout(r, 50));
  t.ok(sim.devices.get(1)!.faults.silence, 'step at 0 ms applied');
  await waitFor(() => sim.devices.get(1)!.faults.slowMs === 50, 2000, 'step at 400 ms');
  t.notOk(sim.devices.get(1)!.faults.silence, 'silence switched off by null');
  writeFileSync(file, JSON.stringify([{ atMs: 0, set: { silense: true } }]));
  await t.rejects(simulate({ mode: 'modbus-tcp', port: 0, faults: file, print: () => {} }), { code: 'USAGE', message: /unknown fault "silense"/ });
  await t.rejects(simulate({ mode: 'modbus-tcp', port: 0, units: '1:toaster' }), { code: 'USAGE', message: /unknown profile/ });
  await t.rejects(simulate({ mode: 'modbus-rtu', units: '1:meter' }), { code: 'USAGE', message: /--serial/ });
});

t.test('the simulate command prints where it listens and runs until SIGINT', async (t) => {
  const cli = fileURLToPath(new URL('../agent/cli/simulate.js', import.meta.url));
  // What agent/cli/main.ts does with a command, done here with the simulate command alone.
  const driver = `import { parseArgs } from 'node:util';
    const { simulateCommand: c } = await import(${JSON.stringify(cli)});
    const p = parseArgs({ args: process.argv.slice(1), options: c.options, allowPositionals: true, strict: true });
    const code = await c.run(p.values, p.positionals);
    if (code !== -1) process.exitCode = code;`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', driver, 'modbus-tcp', '--port', '0', '--units', '1:meter'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => void child.kill('SIGKILL'));
  await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(out), 10_000, 'the listening line');
  t.match(out, /^modbus-tcp simulator listening on 127\.0\.0\.1:\d+ \(units 1:meter\)\n$/, 'one line');
  const port = Number(/:(\d+) /.exec(out)![1]);
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(tcpFrame(7, 1, readPdu({ fn: 4, address: METER.FREQUENCY, count: 2 }))));
    s.on('data', (d: Buffer) => {
      const f = takeTcpFrames(d).frames[0];
      if (!f) return;
      s.destroy();
      resolve(Buffer.from(f.pdu));
    });
    s.on('error', reject);
  });
  const p = parsePdu({ fn: 4, address: METER.FREQUENCY, count: 2 }, answer);
  t.ok(p.ok && Math.abs(Buffer.from(registers(p.data).flatMap((w) => [w >> 8, w & 255])).readFloatBE() - 50) < 0.1, 'serves the meter');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(child.exitCode, null, 'still running');
  child.kill('SIGINT');
  t.equal(await exited, 0, 'SIGINT: exit 0');
  t.match(out, /simulator stopped \(SIGINT\): \{"connections":1,"requests":1,"answered":1/, 'prints the counters');
});
