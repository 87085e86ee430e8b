/**
 * No uncaught error anywhere in the agent (agent/guard.ts): the real agent runs with
 * HOLDFAST_INJECT_THROW=* so that the first run of every owned timer and callback throws, and
 * each owner must turn it into a code, a log line, an event and a metric with the agent alive.
 * Every site is made to run: a simulated source and an RTU bus over a socat pty pair with a fake
 * sysfs bus-voltage ADC (field), a real Mosquitto restarted (lane.down), a disabled OTLP uplink
 * carrying the self-metrics (metrics.export), a purge cron line every second (store.purge), the
 * data directory removed mid-run (store.probe, store.relay), HTTP requests (api.request) and a
 * message on the remote configuration topic (remote.message).
 * Then every counter value must still reach the broker, and SIGTERM must stop it with exit 0.
 */
import t from 'tap';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { ptyPair } from './helpers/socat.js';
import { checkCounters, count, diagnoseOnFailure, log, makeAgentDir, ROOT, startAgent, telemetry, type AgentDir } from './helpers/agent.js';
import { simulate } from '../agent/cli/simulate.js';
import { operatorKey } from './helpers/remote.js';

/** Every site the agent's guard owns; each must be seen failing once and recovering. */
const SITES = [
  'source.simulated', 'ingest.commit', 'lane.pump', 'lane.connect', 'lane.outcome', 'lane.outcomes', 'lane.down',
  'store.verify', 'store.space', 'store.probe', 'store.relay', 'store.purge', 'engine.sweep', 'clock.watch',
  'thermal.tick', 'field.reopen', 'field.poll', 'field.voltage', 'metrics.export', 'api.request', 'remote.message',
];
const POLLS = 3000;

function board(a: AgentDir): { profile: string; root: string } {
  const root = join(a.dir, 'root');
  const iio = join(root, 'sys/bus/iio/devices/iio:device0');
  mkdirSync(iio, { recursive: true });
  writeFileSync(join(iio, 'in_voltage0_scale'), '1.0\n');
  writeFileSync(join(iio, 'in_voltage0_raw'), '3300\n');
  const profile = join(a.dir, 'board.json');
  writeFileSync(profile, JSON.stringify({
    name: 'test-board', description: 'fake sysfs board for tests',
    serialPorts: { line: { device: '/dev/ttyUSB9', rs485: false } },
    buses: { rs485a: { port: 'line', voltage: { type: 'iio', device: 'iio:device0', channel: 'in_voltage0', scale: 1 } } },
    thermalZones: [], temperatureFallback: 'none', leds: {},
    verified: { onRealHardware: false, verified: [], notVerified: ['a test fixture'], assumptions: [], sources: [] },
  }));
  return { profile, root };
}

async function metricsText(a: AgentDir): Promise<string> {
  const m = [...log(a).matchAll(/"port":(\d+)/g)].pop();
  if (!m) return '';
  // The first request is itself an injected failure (api.request): a 500, then the next one answers.
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`http://127.0.0.1:${m[1]}/metrics`);
    if (r.ok) return r.text();
  }
  return '';
}

const simulated = (msgs: Parameters<typeof telemetry>[0]) => telemetry(msgs).filter((m) => m.device === 'sim-1');

const sitesIn = (text: string): Set<string> =>
  new Set([...text.matchAll(/^holdfast_internal_errors_total\{site="([^"]+)",code="INTERNAL_ERROR"\} [1-9]/gm)].map((m) => m[1]));

t.test('the list above is every site the agent code owns', async (t) => {
  const owned = new Set<string>();
  for (const f of readdirSync(join(ROOT, 'agent'), { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ts')) continue;
    for (const m of readFileSync(join(ROOT, 'agent', f), 'utf8').matchAll(/guard\.(?:run|runAsync|wrap|timeout|interval|immediate|settle)\('([a-z]+\.[a-z]+)'/g)) owned.add(m[1]);
  }
  t.same([...owned].sort(), [...SITES].sort());
});

t.test('a throw injected at every owned site: reported by site, the agent alive, every reading delivered', async (t) => {
  const pty = await ptyPair();
  const sim = await simulate({ mode: 'modbus-rtu', serial: pty.a, baud: 19200, parity: 'none', units: '2:counter', print: () => {} });
  const broker = await startBroker({ persistence: true });
  const rec = await subscribe(broker.url, 'holdfast/gw-test/#', { persistent: true, clientId: 'rec-guard' });
  const a = makeAgentDir(broker.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 5, points: 5, stopAfter: POLLS }],
    batch: { maxReadings: 100, maxAgeMs: 100 },
  });
  const counterMap = join(a.dir, 'counter.json');
  writeFileSync(counterMap, JSON.stringify({ name: 'counter', points: [{ name: 'counter', kind: 'holding', address: 0, type: 'uint32' }] }));
  const { profile, root } = board(a);
  const cfg = a.config;
  cfg.hardware = { profile, sysfsRoot: root, throttle: { sampleMs: 1000 } };
  cfg.buses = [{
    name: 'rs485a', type: 'rtu', port: pty.b, baudRate: 19200, parity: 'none', timeoutMs: 200,
    voltage: { min: 2.5, max: 5, pollMs: 200 }, retry: { baseMs: 50, maxMs: 200 },
    devices: [{ name: 'counter-2', unitId: 2, map: counterMap, pollMs: 200 }],
  }];
  // Disabled: it carries only the agent's own metrics, to a port nobody listens on (a failed export is a result).
  (cfg.uplinks as unknown[]).push({ name: 'otel', type: 'otlp', url: `http://127.0.0.1:${await freePort()}`, enabled: false });
  cfg.selfMetrics = { uplink: 'otel', intervalMs: 1000, timeoutMs: 500 };
  cfg.store = { ...(cfg.store as object), purgeCron: '* * * * * *' };
  cfg.remote = { trustedKeys: { ops: operatorKey().publicB64 } };
  writeFileSync(a.configFile, JSON.stringify(cfg));

  const agent = startAgent(a, { HOLDFAST_INJECT_THROW: '*' });
  diagnoseOnFailure(t, a, agent);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await rec.close();
    await broker.stop();
    await sim.close();
    await pty.close();
  });

  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 20, 60_000, 'live delivery', 250);
  await waitFor(() => count(a, `SELECT count(*) FROM payloads WHERE device = 'counter-2'`) > 2, 60_000, 'field readings committed', 250);
  // remote.message: whatever arrives on config/set runs in a guarded callback (the first one throws).
  for (let i = 0; i < 2; i++) await rec.client.publishAsync('holdfast/gw-test/config/set', '{"version": 1}', { qos: 1 });
  // lane.down: the broker goes away under a connected lane, then comes back.
  await broker.stop();
  await waitFor(() => /uplink down|connection lost|lane\.down/.test(log(a)), 30_000, 'the link seen down', 100);
  await broker.start();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) < 5, 60_000, 'the backlog drained', 250);
  // store.probe and store.relay: the data directory goes away; live data is relayed from the spool.
  rmSync(a.dataDir, { recursive: true, force: true });
  await waitFor(() => log(a).includes('store available again'), 60_000, 'the store re-created', 250);

  let seen = new Set<string>();
  await waitFor(async () => (seen = sitesIn(await metricsText(a))).size >= SITES.length, 60_000, 'every site reported', 500).catch(() => undefined);
  t.same(SITES.filter((s) => !seen.has(s)), [], 'every owned site failed once and was counted in holdfast_internal_errors_total');
  const text = log(a);
  for (const s of SITES) t.match(text, new RegExp(`"site":"${s.replace('.', '\\.')}".*injected failure at ${s.replace('.', '\\.')}`), `${s}: an error line with its site`);
  t.ok(count(a, `SELECT count(*) FROM recovery_events WHERE scope = 'gateway' AND kind = 'internal_error'`) > 0, 'recorded as events');

  await waitFor(() => count(a, `SELECT coalesce(max(cursor), 0) FROM source_state WHERE device = 'sim-1'`) >= POLLS, 120_000, 'the source done', 500);
  await waitFor(() => (checkCounters(simulated(rec.messages)).counters.get('sim-1')?.length ?? 0) >= POLLS, 120_000, 'every counter at the subscriber', 500);
  t.equal(agent.proc.exitCode, null, 'the agent is alive');
  const check = checkCounters(simulated(rec.messages));
  t.same(check.problems, [], 'counter contiguous from 1, no reading under two keys');
  t.ok(telemetry(rec.messages).some((m) => m.device === 'counter-2'), 'field readings delivered');
  t.equal(await agent.stop(), 0, 'SIGTERM: exit 0');
  t.notMatch(agent.output(), /Uncaught|UnhandledPromiseRejection|TimeoutOverflowWarning/, 'nothing uncaught on stderr');
});
