/**
 * Dead letters and the operator's repair on a live agent, with Debian's sqlite3 shell:
 *   UPDATE recovery_tasks SET retry_count = 0 WHERE status = 'failed'
 * A broker whose Maximum Packet Size is smaller than any single reading makes every batch a
 * hard payload failure (dead-lettered, MQTT_0x95); a broker with a small but workable limit
 * gets batches split into parts that each fit.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { checkCounters, count, makeAgentDir, startAgent, telemetry } from './helpers/agent.js';

t.test('the SQL repair on a live agent re-admits dead letters within one sweep', async (t) => {
  const tiny = await startBroker({ maxPacketSize: 250 });
  const a = makeAgentDir(tiny.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3, stopAfter: 100 }],
    sweepIntervalMs: 1000,
  });
  const agent = startAgent(a);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await tiny.stop();
  });
  await waitFor(() => count(a, 'SELECT count(*) FROM payloads') > 0 && count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'failed'`) === 0 && count(a, `SELECT max(cursor) FROM source_state`) >= 100, 60_000, 'every batch dead-lettered');
  const failed = count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`);
  t.ok(failed > 0, `${failed} batches dead-lettered`);
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed' AND (last_error_code != 'MQTT_0x95' OR fault_class != 'payload' OR retry_class != 'hard' OR retry_count < 1)`), 0, 'as hard payload failures MQTT_0x95 after one attempt');
  await tiny.stop();

  // The broker comes back without the limit; the dead letters stay dead until the repair.
  const good = await startBroker({ port: tiny.port });
  t.teardown(() => good.stop());
  const rec = await subscribe(good.url, 'holdfast/gw-test/telemetry');
  await new Promise((r) => setTimeout(r, 3000));
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`), failed, 'dead letters are not retried on their own');

  execFileSync('sqlite3', [join(a.dataDir, 'holdfast.db'), '.timeout 5000', `UPDATE recovery_tasks SET retry_count = 0 WHERE status = 'failed'`]);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) === failed, 30_000, 'every repaired task delivered');
  t.pass('every repaired task delivered');
  t.ok(count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'readmit'`) >= 1, 'the re-admission is recorded');
  await waitFor(() => new Set(telemetry(rec.messages).map((m) => m.key)).size === failed, 20_000, 'all at the subscriber');
  const check = checkCounters(telemetry(rec.messages));
  t.same(check.problems, [], 'counter contiguous');
  t.equal(check.counters.get('sim-1')?.length, 100, 'all 100 polls arrived');
  await rec.close();
  await agent.stop();
});

t.test('batches larger than the broker maximum packet size are split into parts that fit', async (t) => {
  const broker = await startBroker({ maxPacketSize: 1500 });
  const rec = await subscribe(broker.url, 'holdfast/gw-test/telemetry');
  const a = makeAgentDir(broker.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 5, points: 6, stopAfter: 200 }],
    batch: { maxReadings: 120, maxAgeMs: 300 },
  });
  const agent = startAgent(a);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await rec.close();
    await broker.stop();
  });
  await waitFor(() => count(a, `SELECT max(cursor) FROM source_state`) >= 200 && count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`) === 0, 60_000, 'all delivered');
  await waitFor(() => checkCounters(telemetry(rec.messages)).counters.get('sim-1')?.length === 200, 20_000, 'all at the subscriber');
  const msgs = telemetry(rec.messages);
  t.ok(msgs.some((m) => (m.parts ?? 1) > 1), 'some batches were split');
  t.ok(rec.messages.every((m) => m.payload.length <= 1500), 'every message fits the broker limit');
  t.same(checkCounters(msgs).problems, [], 'parts reassemble to a contiguous counter');
  const parts = msgs.filter((m) => m.parts);
  t.ok(parts.every((m) => m.part! >= 1 && m.part! <= m.parts!), 'parts are numbered 1..n');
  await agent.stop();
});
