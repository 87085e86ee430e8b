/**
 * The technician console end to end, typed at 9600 baud over a socat pty pair into a real agent:
 * an RTU bus on a second pty pair with the simulator, a fake sysfs tree (bus ADC, CPU thermal
 * zone) and a real Mosquitto. Login with the factory password forces a change; `status` says OK,
 * then HOT, DEVICE, UPLINK and WIRING FAULT as each is caused, worst first; `breaker reset`;
 * `log tail 200` arrives complete; fuzzed input is refused with reasons and the agent still
 * answers; `holdfast console` over the Unix socket; lockout after wrong passwords, persisted.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { ptyPair } from './helpers/socat.js';
import { CLI, launchAgent, log, makeAgentDir } from './helpers/agent.js';
import { openTerminal } from './helpers/terminal.js';
import { mulberry32 } from './helpers/rand.js';
import { simulate } from '../agent/cli/simulate.js';
import { shortLog } from '../agent/console/tails.js';

const PW = 'tech-secret-1';

function fakeSysfs(root: string) {
  const iio = join(root, 'sys/bus/iio/devices/iio:device0');
  const zone = join(root, 'sys/class/thermal/thermal_zone0');
  mkdirSync(iio, { recursive: true });
  mkdirSync(zone, { recursive: true });
  writeFileSync(join(iio, 'in_voltage0_scale'), '1.0\n');
  const setVolts = (v: number) => writeFileSync(join(iio, 'in_voltage0_raw'), `${Math.round(v * 1000)}\n`);
  const setTemp = (c: number) => writeFileSync(join(zone, 'temp'), `${c * 1000}\n`);
  setVolts(3.3);
  setTemp(40);
  return { setVolts, setTemp };
}

t.test('console over a 9600 baud serial line and the Unix socket', async (t) => {
  const line = await ptyPair();
  const bus = await ptyPair();
  let sim = await simulate({ mode: 'modbus-rtu', serial: bus.a, baud: 9600, parity: 'none', units: '1:meter,2:counter', print: () => {} });
  const broker = await startBroker();
  const a = makeAgentDir(broker.url, { sources: [] }, { retry: { baseMs: 100, maxMs: 500 } });
  const root = join(a.dir, 'root');
  const sys = fakeSysfs(root);
  const profile = join(a.dir, 'board.json');
  writeFileSync(profile, JSON.stringify({
    name: 'test-board', description: 'fake sysfs board for tests',
    serialPorts: { line: { device: '/dev/ttyUSB9', rs485: false } },
    buses: { rs485a: { port: 'line', voltage: { type: 'iio', device: 'iio:device0', channel: 'in_voltage0', scale: 1 } } },
    thermalZones: ['thermal_zone0'], temperatureFallback: 'none', leds: {},
    verified: { onRealHardware: false, verified: [], notVerified: ['a test fixture'], assumptions: [], sources: [] },
  }));
  const counterMap = join(a.dir, 'counter.json');
  writeFileSync(counterMap, JSON.stringify({ name: 'counter', points: [{ name: 'counter', kind: 'holding', address: 0, type: 'uint32' }] }));
  Object.assign(a.config, {
    hardware: { profile, sysfsRoot: root, throttle: { aboveC: 75, belowC: 70, minDwellMs: 0, sampleMs: 1000 } },
    console: { serialPort: line.b, baudRate: 9600, socket: join(a.dir, 'console.sock') },
    buses: [{
      name: 'rs485a', type: 'rtu', port: bus.b, baudRate: 9600, parity: 'none', timeoutMs: 150,
      voltage: { min: 2.5, max: 5, pollMs: 100 }, retry: { baseMs: 50, maxMs: 200 },
      devices: [
        { name: 'meter-1', unitId: 1, map: join(process.cwd(), 'config/devices/generic-energy-meter.json'), pollMs: 200 },
        { name: 'counter-2', unitId: 2, map: counterMap, pollMs: 200 },
      ],
    }],
  });
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await term.close();
    await sim.close();
    await line.close();
    await bus.close();
    await broker.stop();
  });
  await waitFor(() => /console on the serial port/.test(log(a)), 30_000, 'console on the serial line');
  const term = await openTerminal(line.a, 9600);
  const mark = () => term.text().length;
  /** Types `status` until a verdict block matches (a fault takes a poll or two to be seen). */
  const statusUntil = async (re: RegExp, what: string): Promise<string> => {
    let got = '';
    await waitFor(async () => {
      const m = mark();
      await term.line('status');
      got = await term.expect(/gw-test> $/, m);
      return re.test(got);
    }, 60_000, `${what}; last status:\n${got}`, 500);
    return got;
  };

  // Login: the factory password forces a change before anything else.
  let m = mark();
  await term.raw('\r');
  await term.expect(/Password: $/, m);
  await term.line('holdfast');
  await term.expect(/factory password[^]*New password: $/, m);
  await term.line('short');
  await term.expect(/refused: at least 8 characters[^]*New password: $/, m);
  await term.line(PW);
  await term.expect(/Again: $/, m);
  await term.line(PW);
  const login = await term.expect(/logged in[^]*gw-test> $/, m);
  t.notMatch(login, PW, 'the password is never echoed');
  t.equal(statSync(join(a.dataDir, 'console-auth.json')).mode & 0o777, 0o600, 'password file 0600');
  t.notMatch(readFileSync(join(a.dataDir, 'console-auth.json'), 'utf8'), PW, 'stored hashed');

  const ok = await statusUntil(/\r\nOK\r\n/, 'all OK');
  t.match(ok, /^status\r\nOK\r\n/, 'all OK: the first line of status is OK');

  sys.setTemp(81);
  const hot = await statusUntil(/HOT 81 C, drain throttled/, 'HOT');
  t.match(hot, /status\r\nHOT 81 C, drain throttled\r\n/, 'hot CPU: the verdict with its temperature');

  await sim.close();
  sim = await simulate({ mode: 'modbus-rtu', serial: bus.a, baud: 9600, parity: 'none', units: '1:meter', print: () => {} });
  await statusUntil(/DEVICE counter-2 not answering \(MODBUS_TIMEOUT x\d+\)/, 'dead device');
  t.pass('dead device: DEVICE counter-2 not answering (MODBUS_TIMEOUT xN)');

  await broker.stop();
  const down = await statusUntil(/UPLINK broker DOWN since \d\d:\d\d \([A-Z_0-9x]+\), [\d,]+ readings buffered/, 'broker down');
  t.ok(down.indexOf('DEVICE counter-2') < down.indexOf('UPLINK broker') && down.indexOf('UPLINK broker') < down.indexOf('HOT 81'), 'worst first: device, uplink, hot');

  m = mark();
  await term.line('breaker reset broker');
  t.match(await term.expect(/breaker of broker reset: now closed/, m), /breaker of broker reset/, 'breaker reset');

  sys.setVolts(1.9);
  const wiring = await statusUntil(/WIRING FAULT bus rs485a: 1\.9 V \(window 2\.5-5\.0 V\)/, 'wiring fault');
  t.ok(wiring.indexOf('WIRING FAULT') < wiring.indexOf('UPLINK broker'), 'the wiring fault comes before the uplink');

  // Nothing lost when the output is long: 200 log lines at 9600 baud, all of them, in order. The
  // agent logs little while all is well: 250 numbered lines are appended (O_APPEND, like pino).
  const filler = Array.from({ length: 250 }, (_, i) => JSON.stringify({ level: 30, time: new Date().toISOString(), msg: `filler line ${i + 1} of 250, long enough to show that the width of a line is kept` }));
  appendFileSync(a.logFile, `${filler.join('\n')}\n`);
  m = mark();
  await term.line('log tail 200');
  const tail = await term.expect(/log tail 200\r\n[^]*gw-test> $/, m, 120_000);
  const body = tail.slice(tail.indexOf('\r\n') + 2, tail.lastIndexOf('\r\n'));
  const entries: string[] = [];
  for (const l of body.split('\r\n')) {
    if (l.startsWith('  ') && entries.length > 0) entries[entries.length - 1] += ` ${l.trim()}`;
    else entries.push(l);
  }
  if (entries.length !== 200) writeFileSync('/tmp/console-tail.txt', tail);
  t.equal(entries.length, 200, '200 log lines arrived');
  t.ok(body.split('\r\n').every((l) => l.length <= 72), 'no line wider than 72 columns');
  const norm = (s: string) => s.replace(/\s+/g, ' ').trim();
  const all = log(a).split('\n').filter((l) => l !== '').map((l) => norm(shortLog(l)));
  const k = all.indexOf(norm(entries[0]));
  t.ok(k >= 0 && entries.every((e, i) => norm(e) === all[k + i]), 'the same lines as the log file, in order, none cut');

  // Fuzz: random bytes, an overlong line, control characters: each refused, the agent unharmed.
  const rand = mulberry32(20240516);
  m = mark();
  for (let i = 0; i < 20; i++) await term.raw(Buffer.from(Array.from({ length: 50 }, () => Math.floor(rand() * 256))));
  await term.raw('\x03');
  // The echo of 1000 bytes takes a while at 960 bytes/s: wait until the line is quiet.
  let last = -1;
  await waitFor(() => {
    const quiet = term.text().length === last;
    last = term.text().length;
    return quiet && /gw-test> $/.test(term.text());
  }, 60_000, 'the end of the fuzz echo', 1500);
  const fuzz = term.text().slice(m);
  t.match(fuzz, /unknown command|line refused|line too long/, 'random bytes refused with a reason');
  m = mark();
  await term.line('x'.repeat(100));
  t.match(await term.expect(/line too long[^]*gw-test> $/, m), /more than 72 characters/, 'overlong line refused');
  m = mark();
  await term.line('sta\x01tus');
  t.match(await term.expect(/line refused[^]*gw-test> $/, m), /1 control or non-ASCII byte/, 'control characters refused');
  await statusUntil(/WIRING FAULT/, 'status after the fuzz');
  t.equal(agent.proc.exitCode, null, 'the agent still runs');

  // `holdfast console` over the Unix socket, against the running agent.
  t.equal(statSync(join(a.dir, 'console.sock')).mode & 0o777, 0o600, 'console socket 0600');
  const cli = spawn(process.execPath, [CLI, 'console', '--config', a.configFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  let cout = '';
  cli.stdout.on('data', (d) => (cout += d));
  await waitFor(() => /Password: $/.test(cout), 20_000, 'socket login prompt');
  cli.stdin.write(`${PW}\r`);
  await waitFor(() => /gw-test> $/.test(cout), 20_000, 'socket prompt');
  cli.stdin.write('status\r');
  await waitFor(() => /WIRING FAULT bus rs485a/.test(cout), 20_000, 'status over the socket');
  cli.stdin.write('exit\r');
  const code = await new Promise<number | null>((r) => cli.on('exit', r));
  t.equal(code, 0, 'holdfast console ends after exit');

  // Lockout: three wrong passwords, then even the right one is not checked; persisted.
  m = mark();
  await term.line('exit');
  await term.expect(/logged out[^]*Password: $/, m);
  for (const pw of ['bad-1', 'bad-2', 'bad-3']) {
    m = mark();
    await term.line(pw);
    await term.expect(/wrong password[^]*Password: $/, m);
  }
  t.match(term.text().slice(m), /login locked for 30 s/, 'locked after 3 failures');
  m = mark();
  await term.line(PW);
  t.match(await term.expect(/login locked for \d+ s more[^]*Password: $/, m), /password not checked/, 'the right password is refused while locked');
  const auth = JSON.parse(readFileSync(join(a.dataDir, 'console-auth.json'), 'utf8')) as { lockout: { failures: number; lockedUntil: number } };
  t.equal(auth.lockout.failures, 3, 'the failures are persisted (a reconnect does not reset them)');

  // Audit: who, what; never the password.
  const text = log(a);
  t.match(text, /"audit":"console","user":"technician","channel":"serial:[^"]+","what":"breaker reset"/, 'commands are audit lines');
  t.match(text, /"channel":"socket","what":"status"/, 'socket commands too');
  t.notMatch(text, PW, 'the password never reaches the log');
  t.notMatch(text, /bad-[123]/, 'nor the wrong ones');
  await agent.stop();
});

t.test('idle logout over the Unix socket, and a lockout that survives an agent restart', async (t) => {
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [] });
  Object.assign(a.config, { console: { socket: join(a.dir, 'console.sock'), idleLogoutS: 10 } });
  writeFileSync(a.configFile, JSON.stringify(a.config));
  let agent = launchAgent(t, a);
  const attach = () => {
    const cli = spawn(process.execPath, [CLI, 'console', '--config', a.configFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    const o = { text: '', cli };
    cli.stdout.on('data', (d) => (o.text += d));
    cli.stderr.on('data', (d) => (o.text += d));
    return o;
  };
  await waitFor(() => /console listening on its Unix socket/.test(log(a)), 30_000, 'console socket up');
  const s = attach();
  await waitFor(() => /Password: $/.test(s.text), 20_000, 'login prompt');
  s.cli.stdin.write('holdfast\r');
  await waitFor(() => /New password: $/.test(s.text), 20_000, 'forced change');
  s.cli.stdin.write(`${PW}\r`);
  await waitFor(() => /Again: $/.test(s.text), 20_000, 'again');
  s.cli.stdin.write(`${PW}\r`);
  await waitFor(() => /gw-test> $/.test(s.text), 20_000, 'logged in');
  const loggedInAt = Date.now();
  await waitFor(() => /logged out: idle for 10 s/.test(s.text), 30_000, 'idle logout');
  t.ok(Date.now() - loggedInAt >= 9_000, `logged out after ${Date.now() - loggedInAt} ms without input`);
  t.match(log(a), /"what":"idle logout"/, 'an audit line');
  s.cli.kill();

  // Three wrong passwords lock the login; a restarted agent still refuses to check the right one.
  const w = attach();
  await waitFor(() => /Password: $/.test(w.text), 20_000, 'login prompt');
  for (let i = 1; i <= 3; i++) {
    const before = w.text.length;
    w.cli.stdin.write(`bad-${i}\r`);
    await waitFor(() => /Password: $/.test(w.text.slice(before)), 20_000, `refusal ${i}`);
  }
  t.match(w.text, /login locked for 30 s/, 'locked after three failures');
  w.cli.kill();
  t.equal(await agent.stop(), 0);
  agent = launchAgent(t, a);
  await waitFor(() => log(a).split('console listening on its Unix socket').length === 3, 30_000, 'console socket up again');
  const r = attach();
  await waitFor(() => /Password: $/.test(r.text), 20_000, 'login prompt after the restart').catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(r.text)}`);
  });
  r.cli.stdin.write(`${PW}\r`);
  await waitFor(() => /password not checked/.test(r.text), 20_000, 'still locked');
  t.pass('the lockout survives the restart: the right password is not even checked');
  r.cli.kill();
  t.equal(await agent.stop(), 0);
});
