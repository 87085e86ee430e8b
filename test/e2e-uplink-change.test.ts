/**
 * Adding and removing an uplink in the config neither loses nor duplicates the tasks of the
 * others. A real agent runs with an MQTT broker and an OTLP collector that is down; it stops; the
 * config then drops the collector and adds another one; the agent runs on. The broker gets every
 * batch exactly once with a contiguous counter across the restart, the removed uplink keeps its
 * backlog untouched in the store (nothing lost, nothing sent), and the new uplink gets a task for
 * every batch committed after it was added, all delivered.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { freePort, startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { OtlpTestServer } from './helpers/otlp-server.js';
import { checkCounters, count, diagnoseOnFailure, makeAgentDir, startAgent, telemetry } from './helpers/agent.js';

const FIRST = 100;
const TOTAL = 200;

t.test('an uplink removed and another added across a restart: the others lose and duplicate nothing', async (t) => {
  const broker = await startBroker();
  const rec = await subscribe(broker.url, 'holdfast/gw-test/telemetry');
  const collector2 = await OtlpTestServer.start();
  const deadPort = await freePort();
  t.teardown(async () => {
    await rec.close();
    collector2.stop();
    await broker.stop();
  });
  const otlp = (name: string, url: string) => ({ name, type: 'otlp', url, compression: 'none', timeoutMs: 1000, retry: { baseMs: 100, maxMs: 500 } });
  const a = makeAgentDir(broker.url, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 10, points: 3, stopAfter: FIRST }], batch: { maxReadings: 15, maxAgeMs: 100 } });
  const mqttUplink = (a.config.uplinks as object[])[0];
  a.config.uplinks = [mqttUplink, otlp('collector', `http://127.0.0.1:${deadPort}`)];
  writeFileSync(a.configFile, JSON.stringify(a.config));

  const tasks = (u: string, status?: string) =>
    count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = ?${status ? ' AND status = ?' : ''}`, ...(status ? [u, status] : [u]));

  let agent = startAgent(a);
  diagnoseOnFailure(t, a, agent);
  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= FIRST, 30_000, 'first run: the source finished');
  await waitFor(() => tasks('broker', 'pending') === 0, 20_000, 'first run: broker caught up');
  t.equal(await agent.stop(), 0, 'stopped cleanly');
  const before = count(a, 'SELECT count(*) FROM payloads');
  t.equal(tasks('collector'), before, 'the collector (down) has a task per batch');
  t.equal(tasks('collector', 'pending'), before, 'all pending');

  // The collector goes, collector2 comes; the source carries on from its cursor.
  a.config.uplinks = [mqttUplink, otlp('collector2', collector2.url)];
  a.config.sources = [{ type: 'simulated', device: 'sim-1', intervalMs: 10, points: 3, stopAfter: TOTAL }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  agent = startAgent(a);
  diagnoseOnFailure(t, a, agent);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
  });
  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= TOTAL, 30_000, 'second run: the source finished');
  await waitFor(() => tasks('broker', 'pending') === 0 && tasks('collector2', 'pending') === 0, 30_000, 'second run: both caught up');
  const total = count(a, 'SELECT count(*) FROM payloads');
  t.ok(total > before, `${total - before} batches in the second run`);

  t.equal(tasks('broker'), total, 'broker: one task per batch, across both runs');
  t.equal(tasks('broker', 'delivered'), total, 'broker: all delivered');
  t.equal(tasks('collector'), before, 'removed uplink: its tasks kept, no new ones');
  t.equal(tasks('collector', 'pending'), before, 'removed uplink: nothing sent, nothing lost');
  t.equal(tasks('collector2'), total - before, 'added uplink: a task for every batch since it was added');
  t.equal(tasks('collector2', 'delivered'), total - before, 'added uplink: all delivered');
  t.equal(count(a, 'SELECT count(*) FROM (SELECT payload_id, uplink FROM recovery_tasks GROUP BY 1, 2 HAVING count(*) > 1)'), 0, 'never two tasks of one batch for one uplink');

  await waitFor(() => new Set(telemetry(rec.messages).map((m) => m.key)).size === total, 10_000, 'all at the broker');
  const c = checkCounters(telemetry(rec.messages));
  t.same(c.problems, [], 'the broker saw the counter contiguous across the restart');
  t.equal(c.counters.get('sim-1')?.length, TOTAL, `counter 1..${TOTAL}`);
  await agent.stop();
});
