/**
 * The agent under a real pm2 (from npm, its own PM2_HOME) with the shipped ecosystem.config.js on
 * the demo config (config/demo.json, its paths and ports moved into a temp folder, the Modbus
 * simulator and a Mosquitto started here): online only once the agent said ready; `pm2 reload`
 * and `pm2 stop` stop it in order with nothing committed lost; a broken config is restarted with
 * a growing delay and never shown online; pm2's own log files are private.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { CLI, ROOT, telemetry, withDb, type AgentDir } from './helpers/agent.js';

const PM2 = join(ROOT, 'node_modules/.bin/pm2');
const home = mkdtempSync(join(tmpdir(), 'holdfast-pm2-'));
const logDir = join(home, 'log');
const env = { ...process.env, PM2_HOME: join(home, 'pm2'), HOLDFAST_LOG_DIR: logDir };

function pm2(...args: string[]): string {
  const r = spawnSync(PM2, args, { env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`pm2 ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface Proc { status: string; pid: number; restarts: number; exitCode?: number; delay?: number }
function describe(): Proc | null {
  const list = JSON.parse(pm2('jlist')) as { pid: number; pm2_env: { status: string; restart_time: number; exit_code?: number; prev_restart_delay?: number } }[];
  const p = list[0];
  return p ? { status: p.pm2_env.status, pid: p.pid, restarts: p.pm2_env.restart_time, exitCode: p.pm2_env.exit_code, delay: p.pm2_env.prev_restart_delay } : null;
}

const answers = (port: number) => new Promise<boolean>((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => (s.destroy(), resolve(true)));
  s.once('error', () => resolve(false));
});

t.teardown(() => {
  spawnSync(PM2, ['kill'], { env, timeout: 60_000 });
});

t.test('pm2 with ecosystem.config.js on the demo config', async (t) => {
  const broker = await startBroker();
  const [modbusPort, apiPort] = [await freePort(), await freePort()];
  const sim = spawn(process.execPath, [CLI, 'simulate', 'modbus-tcp', '--port', String(modbusPort), '--units', '1:meter,2:sunspec-inverter'], { stdio: 'ignore' });
  t.teardown(async () => {
    sim.kill();
    await broker.stop();
  });
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-pm2-agent-'));
  const demo = JSON.parse(readFileSync(join(ROOT, 'config/demo.json'), 'utf8')) as Record<string, any>;
  Object.assign(demo, { dataDir: join(dir, 'data'), logFile: join(dir, 'log/engine.log'), spoolDir: join(dir, 'cache'), api: { port: apiPort } });
  demo.store.keyFile = join(dir, 'keys/holdfast.key');
  demo.uplinks[0].url = broker.url;
  demo.uplinks[0].drain.startJitterMs = 200;
  demo.buses[0].tcpPort = modbusPort;
  demo.buses[0].devices[0].map = join(ROOT, 'config/devices/generic-energy-meter.json');
  const configFile = join(dir, 'holdfast.json');
  writeFileSync(configFile, JSON.stringify(demo));
  t.equal(spawnSync(process.execPath, [CLI, 'keygen', '--out', demo.store.keyFile]).status, 0, 'demo key');
  const a: AgentDir = { dir, dataDir: demo.dataDir, configFile, logFile: demo.logFile, config: demo };
  const rec = await subscribe(broker.url, 'holdfast/demo-gw-01/telemetry', { persistent: true, clientId: 'rec-pm2' });
  t.teardown(() => rec.close());

  pm2('ping'); // the daemon first: a jlist racing a start would spawn a second one
  // Online only after ready: whenever pm2 says online, the API (which listens before ready, and
  // then keeps listening) answers when asked right after.
  const started = spawn(PM2, ['start', join(ROOT, 'ecosystem.config.js')], { env: { ...env, HOLDFAST_CONFIG: configFile }, stdio: 'ignore' });
  const seen: { status: string; api: boolean }[] = [];
  await waitFor(async () => {
    const p = describe();
    const api = await answers(apiPort);
    if (p) seen.push({ status: p.status, api });
    return p?.status === 'online';
  }, 60_000, 'pm2 shows the agent online');
  await new Promise((r) => started.on('exit', r));
  t.ok(seen.filter((s) => s.status === 'online').every((s) => s.api), `online never before the agent listened (${seen.map((s) => `${s.status}/${s.api ? 'up' : 'down'}`).join(' ')})`);
  t.match(readFileSync(a.logFile, 'utf8'), /HTTP server/, 'the agent logged its start before pm2 counted it online');

  const delivered = () => withDb(a, (db) => db.prepare(`SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`).pluck().get() as number);
  await waitFor(() => delivered() >= 3, 60_000, 'deliveries from the simulated meter and inverter');
  const firstPid = describe()!.pid;
  pm2('reload', 'holdfast');
  await waitFor(() => describe()?.status === 'online' && describe()?.pid !== firstPid, 60_000, 'reloaded');
  await waitFor(() => delivered() >= 6, 60_000, 'deliveries after the reload');
  pm2('stop', 'holdfast');
  t.equal(describe()?.status, 'stopped');
  const log = readFileSync(a.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; signal?: string; code?: string });
  t.equal(log.filter((l) => l.msg === 'shutting down' && l.signal === 'SIGINT').length, 2, 'reload and stop: each an ordered stop on SIGINT');
  t.notOk(log.some((l) => l.code === 'SHUTDOWN_TIMEOUT'), 'each within its deadline');

  // Nothing committed lost: every stored batch is delivered (and was received) or still pending.
  const states = withDb(a, (db) => db.prepare(`SELECT idempotency_key AS key, status FROM recovery_tasks`).all()) as { key: string; status: string }[];
  const received = () => new Set(telemetry(rec.messages).map((m) => m.key));
  t.ok(states.every((s) => s.status === 'delivered' || s.status === 'pending'), 'every task delivered or pending');
  const acked = states.filter((s) => s.status === 'delivered');
  // The broker acknowledged them; its copies to the subscriber may still be on their way.
  await waitFor(() => acked.every((s) => received().has(s.key)), 30_000, 'every batch marked delivered at the subscriber');
  t.pass(`${acked.length} batches acknowledged before the stop, all received`);
  pm2('start', 'holdfast');
  await waitFor(() => states.every((s) => received().has(s.key)), 60_000, 'after a restart, every batch committed before the stop is delivered');
  pm2('delete', 'holdfast');

  const mode = (p: string) => statSync(p).mode & 0o777;
  t.equal(mode(join(logDir, 'pm2-out.log')), 0o640, "pm2's stdout file 0640");
  t.equal(mode(join(logDir, 'pm2-error.log')), 0o640, "pm2's stderr file 0640");
  t.equal(mode(logDir), 0o750, 'in a 0750 directory');
});

t.test('a broken config: pm2 restarts it with a growing delay and never shows it online', async (t) => {
  const broken = join(home, 'broken.json');
  writeFileSync(broken, '{"gatewayId": ');
  spawnSync(PM2, ['start', join(ROOT, 'ecosystem.config.js')], { env: { ...env, HOLDFAST_CONFIG: broken } });
  const seen: Proc[] = [];
  await waitFor(() => {
    const p = describe();
    if (p) seen.push(p);
    return (p?.restarts ?? 0) >= 4;
  }, 90_000, 'four restarts');
  t.notOk(seen.some((p) => p.status === 'online'), `never online (${[...new Set(seen.map((p) => p.status))].join(', ')})`);
  t.ok(seen.some((p) => p.exitCode === 78), 'exit status 78 (EX_CONFIG) seen by pm2');
  const delays = [...new Set(seen.map((p) => p.delay ?? 0))].filter((d) => d > 0);
  t.ok(delays.length >= 3 && delays.every((d, i) => i === 0 || d > delays[i - 1]), `the delay grows: ${delays.join(', ')} ms`);
  t.match(readFileSync(join(logDir, 'pm2-error.log'), 'utf8'), /CONFIG_PARSE/, 'the reason in pm2\'s error log');
  pm2('delete', 'holdfast');
});
