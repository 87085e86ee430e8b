/**
 * The thermal governor end to end: a real agent on a board profile whose CPU thermal zone is a
 * file in a fake sysfs tree. Hot (85 C) from the start: the throttle factor is 0.25, a
 * THERMAL_THROTTLE event is open, and when the broker comes back the backlog drains at a quarter
 * of the configured message rate. Cooled to 60 C: full speed again, the event closed, everything
 * delivered.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { count, launchAgent, log, makeAgentDir } from './helpers/agent.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RATE = 40; // drain messages/s as configured

t.test('hot CPU: throttle factor, THERMAL_THROTTLE event, slower drain; cool: full speed', async (t) => {
  const broker = await startBroker();
  await broker.stop(); // down while the backlog piles up
  const a = makeAgentDir(broker.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 2, points: 5, stopAfter: 2000 }],
    batch: { maxReadings: 50, maxAgeMs: 200 },
  }, { drain: { startJitterMs: 0, messagesPerSec: RATE, readingsPerSec: 1_000_000 }, retry: { baseMs: 100, maxMs: 300 } });
  const sysfs = join(a.dir, 'sysfs');
  const zone = join(sysfs, 'sys/class/thermal/thermal_zone0');
  mkdirSync(zone, { recursive: true });
  const setTemp = (c: number) => writeFileSync(join(zone, 'temp'), `${c * 1000}\n`);
  setTemp(85);
  a.config.hardware = { profile: 'din-rail-gateway', sysfsRoot: sysfs, throttle: { aboveC: 75, belowC: 70, factor: 0.25, minDwellMs: 0, sampleMs: 1000 } };
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await broker.stop();
  });
  const metric = async (name: string) => {
    const port = Number(/"port":(\d+),"msg":"HTTP server/.exec(log(a))?.[1]);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  };
  const openThrottle = () => count(a, `SELECT count(*) FROM recovery_events WHERE scope = 'gateway' AND kind = 'throttle' AND code = 'THERMAL_THROTTLE' AND ended_at IS NULL`);

  await waitFor(() => /HTTP server/.test(log(a)) && openThrottle() === 1, 20_000, 'throttled');
  t.equal(await metric('holdfast_throttle_factor'), 0.25, 'factor 0.25 while hot');
  t.equal(await metric('holdfast_cpu_temperature_celsius'), 85, 'the fake zone\'s temperature');
  t.match(log(a), /THERMAL_THROTTLE/, 'logged with its code');

  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= 2000, 30_000, 'the source finished');
  await sleep(500);
  const total = count(a, 'SELECT count(*) FROM payloads');
  t.ok(total >= 190, `${total} batches buffered`);
  const delivered = () => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`);
  t.equal(delivered(), 0);

  await broker.start();
  await waitFor(() => delivered() > 0, 20_000, 'draining');
  const t0 = Date.now();
  const d0 = delivered();
  await sleep(3000);
  const secs = (Date.now() - t0) / 1000;
  const got = delivered() - d0;
  // At most one burst (RATE) plus a quarter of the rate over the window, and some slack for
  // outcomes written in groups; an unthrottled lane would send RATE per second.
  const bound = RATE + (RATE / 4) * secs + 10;
  t.ok(got > 0 && got <= bound, `throttled drain: ${got} batches in ${secs.toFixed(1)} s (bound ${bound.toFixed(0)}, unthrottled would be ~${Math.round(RATE * secs)})`);

  setTemp(60);
  await waitFor(() => openThrottle() === 0, 20_000, 'released');
  t.equal(await metric('holdfast_throttle_factor'), 1, 'full speed when cool');
  t.ok(count(a, `SELECT duration_ms FROM recovery_events WHERE kind = 'throttle'`) > 0, 'the event closed with its duration');
  await waitFor(() => delivered() === total, 60_000, 'everything delivered');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`), 0, 'nothing left behind');
  await agent.stop();
});
