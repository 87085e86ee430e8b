/**
 * SunSpec to IEEE 2030.5, end to end, nothing left out silently: the real agent discovers the
 * SunSpec inverter simulator (models 1, 103, 701) over Modbus TCP and forwards to the real
 * mutual-TLS 2030.5 test server. The points 2030.5 can express arrive under their UomType (PF in
 * percent as cos theta, the state enum as not-applicable, W as W); the rest (model 1's strings,
 * the points the device does not implement) is counted by device, point and reason: in
 * holdfast_sep2_skipped_readings_total, in `skipped` events, in `holdfast status`. And after a
 * stop, every reading of every delivered batch is either at the server or in those events.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { makePki, startSep2Server } from './helpers/sep2-server.js';
import { CLI, count, launchAgent, makeAgentDir, withDb } from './helpers/agent.js';
import { simulate } from '../agent/cli/simulate.js';

/** `holdfast status`, without blocking this process: the 2030.5 server the agent posts to runs in it. */
async function status(configFile: string, ...args: string[]): Promise<string> {
  return (await promisify(execFile)(process.execPath, [CLI, 'status', '--config', configFile, ...args], { encoding: 'utf8', timeout: 60_000 })).stdout;
}

t.test('SunSpec readings: posted under their 2030.5 unit, or counted by point and reason', async (t) => {
  const pki = makePki();
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '3:sunspec-inverter', print: () => {} });
  const srv = await startSep2Server({ pki, pen: 0 });
  const api = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [], api: { port: api }, batch: { maxReadings: 500, maxAgeMs: 300 } });
  a.config.buses = [{ name: 'plant', type: 'tcp', host: '127.0.0.1', tcpPort: sim.port, timeoutMs: 1000, retry: { baseMs: 50, maxMs: 200 },
    devices: [{ name: 'inv', unitId: 3, map: 'sunspec', pollMs: 200 }] }];
  a.config.uplinks = [{ name: 'utility', type: 'sep2', url: srv.url, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, timeoutMs: 20_000,
    retry: { baseMs: 100, maxMs: 500 }, drain: { startJitterMs: 50, readingsPerSec: 1000000, messagesPerSec: 100000 } }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  let simOpen = true;
  const agent = launchAgent(t, a, async () => {
    if (simOpen) await sim.close();
    await srv.close();
  });
  const skippedEvents = () => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'skipped'`);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) >= 5 && skippedEvents() >= 1, 60_000, 'batches delivered, skips recorded');

  const mmr = (point: string) => [...srv.mups.values()].flatMap((m) => [...m.mmrs.values()]).find((m) => m.description === point);
  const rt = (point: string) => { const m = mmr(point); return m && [m.readingType.uom, m.readingType.powerOfTenMultiplier]; };
  t.same(rt('m103.PF'), ['65', '-3'], 'model 103 PF (percent): cos theta at 0.001');
  t.ok(mmr('m103.PF')!.readings.every((r) => Math.abs(r.value) <= 1000), 'a power factor, not a percentage');
  t.same(rt('m103.St'), ['0', '0'], 'the state enum: not applicable');
  t.equal(mmr('m103.St')!.readings[0].value, 4, 'MPPT');
  t.same(rt('m103.W'), ['38', '0']);
  t.equal(mmr('m1.Mn'), undefined, 'a string is not posted');
  t.same(srv.problems, [], 'every body in order and within its schema types');

  const metrics = await (await fetch(`http://127.0.0.1:${api}/metrics`)).text();
  t.match(metrics, /holdfast_sep2_skipped_readings_total\{uplink="utility",device="inv",point="m1\.Mn",reason="not_numeric"\} [1-9]/, 'the string counted in the metric');
  t.match(metrics, /holdfast_sep2_skipped_readings_total\{uplink="utility",device="inv",point="m103\.VAr",reason="not_implemented"\} [1-9]/, 'a point the device does not implement');

  const text = await status(a.configFile);
  t.match(text, /skipped\s+\d+ readings not posted/, 'holdfast status says readings were skipped');
  t.match(text, /\d+ inv m1\.Mn: not_numeric/, 'by device, point and reason');
  const json = JSON.parse(await status(a.configFile, '--json')) as { uplinks: { uplink: string; skipped: { device: string; point: string; reason: string; unit: string; readings: number }[] }[] };
  const rows = json.uplinks.find((u) => u.uplink === 'utility')?.skipped ?? [];
  t.match(rows.find((r) => r.point === 'm103.VAr'), { device: 'inv', reason: 'not_implemented', unit: 'var' }, 'every row in --json');

  // Exactness: no more readings (the device goes away), every batch delivered, the agent stopped
  // (its last summary written): each reading of the delivered batches is at the server or in an event.
  await sim.close();
  simOpen = false;
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind LIKE 'fault:%'`) >= 1, 30_000, 'the device gone (a field fault)');
  let batches = -1;
  await waitFor(() => {
    const n = count(a, 'SELECT count(*) FROM payloads');
    const settled = n === batches && count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) === 0;
    batches = n;
    return settled;
  }, 30_000, 'no new batch, everything delivered', 1000);
  t.equal(await agent.stop(), 0, 'clean stop');
  const delivered = count(a, `SELECT sum(reading_count) FROM recovery_tasks WHERE status = 'delivered'`);
  const posted = [...srv.mups.values()].flatMap((m) => [...m.mmrs.values()]).reduce((n, m) => n + m.readings.length, 0);
  const skipped = withDb(a, (db) => db.prepare(`SELECT coalesce(sum(json_extract(j.value, '$.readings')), 0) FROM recovery_events e, json_each(e.detail, '$.skipped') j WHERE e.kind = 'skipped'`).pluck().get() as number);
  t.ok(skipped > 0 && posted > 0, `${posted} posted, ${skipped} skipped`);
  t.equal(posted + skipped, delivered, `every one of the ${delivered} readings delivered is posted or counted`);
});
