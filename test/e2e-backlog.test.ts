/**
 * The core promise, end to end against a real Mosquitto: 200,000 readings ingested while the
 * broker is down; broker started; every reading arrives (duplicates only as re-sends with the
 * same key), the counter is contiguous, and the buffer is empty at the end. Backfill is marked
 * historical; the drain respects its message rate.
 */
import t from 'tap';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { checkCounters, cli, count, makeAgentDir, startAgent, telemetry } from './helpers/agent.js';

t.test('200,000 readings buffered while the broker is down all arrive after it starts', async (t) => {
  const broker = await startBroker({ persistence: true });
  // The recorder's persistent session is made now, so messages published while it reconnects
  // after the restart are queued for it by the broker.
  const rec = await subscribe(broker.url, 'holdfast/gw-test/#', { persistent: true, clientId: 'rec-backlog' });
  await broker.stop();
  const POLLS = 10_000;
  const POINTS = 20;
  const a = makeAgentDir(broker.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 1, points: POINTS, stopAfter: POLLS }],
    batch: { maxReadings: 1000, maxAgeMs: 500 },
  });
  const agent = startAgent(a);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await rec.close();
    await broker.stop();
  });

  await waitFor(() => count(a, 'SELECT coalesce(sum(reading_count), 0) FROM payloads') >= POLLS * POINTS, 180_000, '200,000 readings committed');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`), 0, 'nothing delivered while the broker is down');
  const st = JSON.parse(cli(['status', '--config', a.configFile, '--json']).stdout) as { uplinks: { pending: { readings: number }; connected: boolean }[] };
  t.equal(st.uplinks[0].pending.readings, POLLS * POINTS, 'status --json shows the whole backlog pending');
  t.equal(st.uplinks[0].connected, false, 'status shows the uplink down');

  await broker.start();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`) === 0, 240_000, 'buffer empty');
  const want = count(a, 'SELECT count(*) FROM payloads');
  await waitFor(() => new Set(telemetry(rec.messages).map((m) => m.key)).size >= want, 60_000, 'every batch at the subscriber');

  const msgs = telemetry(rec.messages);
  const check = checkCounters(msgs);
  t.same(check.problems, [], 'no gaps, no reading in two batches, re-sends identical');
  const counters = check.counters.get('sim-1') ?? [];
  t.equal(counters.length, POLLS, 'every counter value arrived');
  t.equal(counters[counters.length - 1], POLLS, 'up to the last one');
  const readings = new Map<string, number>();
  for (const m of msgs) readings.set(`${m.key}#${m.part ?? 1}`, m.readings.length);
  t.equal([...readings.values()].reduce((x, y) => x + y, 0), POLLS * POINTS, 'exactly 200,000 distinct readings');
  t.ok(msgs.every((m) => m.historical === true), 'backfill is marked historical');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE acknowledgment_timestamp < request_timestamp OR latency_ms < 0`), 0, 'latency = ack - request, never negative');
  const status = rec.messages.filter((m) => m.topic.endsWith('/status'));
  t.ok(status.some((m) => JSON.parse(m.payload.toString()).state === 'online'), 'birth message on the retained status topic');
  t.equal(await agent.stop(), 0, 'graceful stop exits 0');
});

t.test('the drain after recovery keeps to its message rate and live data is not historical', async (t) => {
  const broker = await startBroker({ persistence: true });
  const rec = await subscribe(broker.url, 'holdfast/gw-test/telemetry', { persistent: true, clientId: 'rec-drain' });
  await broker.stop();
  const RATE = 10;
  const a = makeAgentDir(broker.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 2 }],
    batch: { maxReadings: 2, maxAgeMs: 1000 },
  }, { drain: { startJitterMs: 500, messagesPerSec: RATE, readingsPerSec: 1000000 } });
  const agent = startAgent(a);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await rec.close();
    await broker.stop();
  });
  await waitFor(() => count(a, 'SELECT count(*) FROM payloads') >= 100, 60_000, '100 batches buffered');
  await broker.start();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 0, 60_000, 'drain started');
  const t0 = count(a, `SELECT min(acknowledgment_timestamp) FROM recovery_tasks WHERE status = 'delivered'`);
  await new Promise((r) => setTimeout(r, 3000));
  // Upper bound only (a slow machine can only deliver fewer): rate x elapsed + one second of burst.
  const rows = count(a, `SELECT max(acknowledgment_timestamp) FROM recovery_tasks WHERE status = 'delivered'`);
  const historical = telemetry(rec.messages).filter((m) => m.historical).length;
  const elapsedS = (rows - t0) / 1000;
  t.ok(historical <= RATE * (elapsedS + 1) + RATE, `backlog drained at <= ${RATE}/s (${historical} in ${elapsedS.toFixed(1)} s)`);
  await waitFor(() => telemetry(rec.messages).some((m) => !m.historical), 30_000, 'a live batch');
  t.ok(telemetry(rec.messages).some((m) => !m.historical), 'live data flows while the backlog drains (not historical)');
  await agent.stop();
});
