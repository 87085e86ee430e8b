/**
 * A device that answers exception 02 for a few seconds (a boot, a firmware update) does not
 * lose its points until the agent restarts: the real agent polls the Modbus TCP simulator, a
 * fault script makes the counter's registers answer 02, the point is disabled (config fault
 * MODBUS_EXCEPTION_02, point scope), re-probed on its slow jittered schedule while the fault
 * lasts (refused again), and once the device answers it is polled again by itself: the fault
 * event closes and readings resume, in the same agent process. The device's other point, which
 * the exception does not cover, is polled throughout.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { launchAgent, log, makeAgentDir, telemetry, withDb } from './helpers/agent.js';
import { simulate } from '../agent/cli/simulate.js';
import { runFaultScript } from '../drivers/modbus/simulator/faults.js';

t.test('exception 02 for a few seconds: the point is disabled, re-probed, and back by itself', async (t) => {
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:counter', print: () => {} });
  const broker = await startBroker();
  const tele = await subscribe(broker.url, 'holdfast/gw-test/telemetry');
  const a = makeAgentDir(broker.url, { sources: [] });
  const map = join(a.dir, 'counter.json');
  writeFileSync(map, JSON.stringify({
    name: 'counter',
    points: [
      { name: 'counter', kind: 'holding', address: 0, type: 'uint32' },
      { name: 'flag', kind: 'discrete', address: 5, type: 'bool' },
    ],
  }));
  a.config.buses = [{
    name: 'plant', type: 'tcp', host: '127.0.0.1', tcpPort: sim.port, timeoutMs: 1000, retry: { baseMs: 50, maxMs: 200 },
    reprobe: { baseMs: 1000, maxMs: 2000, jitter: 0.2 },
    devices: [{ name: 'counter-1', unitId: 1, map, pollMs: 100 }],
  }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await tele.close();
    await sim.close();
    await broker.stop();
  });
  const pid = agent.proc.pid;
  const readings = (point: string) => telemetry(tele.messages).flatMap((m) => m.readings).filter((r) => r.device === 'counter-1' && r.point === point);
  await waitFor(() => readings('counter').length >= 5 && readings('flag').length >= 5, 30_000, 'readings of both points');

  // The fault script: from now on, every read covering holding 0 is answered with exception 02.
  const script = runFaultScript([{ atMs: 0, unit: 1, set: { exception: { code: 2, address: 0 } } }], sim.devices);
  t.teardown(() => script.stop());
  const faultStarted = Date.now();
  const openFault = () => withDb(a, (db) => db.prepare(
    "SELECT started_at AS startedAt, ended_at AS endedAt, fault_class AS faultClass, subject FROM recovery_events WHERE kind = 'fault:MODBUS_EXCEPTION_02' ORDER BY id DESC LIMIT 1",
  ).get() as { startedAt: number; endedAt: number | null; faultClass: string; subject: string } | undefined);
  await waitFor(() => openFault() !== undefined, 30_000, 'the MODBUS_EXCEPTION_02 fault recorded');
  t.match(openFault(), { faultClass: 'config', subject: 'plant/counter-1@0', endedAt: null }, 'a config fault on the point at address 0, open');
  t.match(log(a), /"code":"MODBUS_EXCEPTION_02".*"points":\["counter"\].*points no longer polled, re-probed/, 'logged with the points disabled');

  // It lasts a few seconds, and at least one re-probe is refused meanwhile.
  const reprobesRefused = () => (log(a).match(/refused registers still refused/g) ?? []).length;
  await waitFor(() => reprobesRefused() >= 1 && Date.now() - faultStarted >= 3000, 30_000, 'a re-probe refused while the fault lasts');
  sim.devices.get(1)!.setFaults({ exception: null });

  await waitFor(() => openFault()?.endedAt != null, 30_000, 'the fault cleared by a re-probe');
  const f = openFault()!;
  t.ok(reprobesRefused() >= 1, `refused ${reprobesRefused()} re-probe(s) before the one answered`);
  t.match(log(a), /refused registers answer again: points polled again/, 'the return is logged');
  const after = (point: string) => readings(point).filter((r) => r.ts >= f.endedAt!);
  await waitFor(() => after('counter').length >= 3, 30_000, 'the counter polled again');
  t.equal(agent.proc.pid, pid, 'the same process');
  t.equal(agent.proc.exitCode, null, 'no restart');

  const during = (point: string) => readings(point).filter((r) => r.ts > f.startedAt && r.ts < f.endedAt!);
  t.same(during('counter'), [], 'no counter reading while the point was disabled');
  t.ok(during('flag').length > 0, `the device's other point was polled throughout (${during('flag').length} readings)`);
  const values = readings('counter').map((r) => r.value as number);
  t.ok(values.every((v, i) => i === 0 || v > values[i - 1]), 'the counter rises across the gap');
});
