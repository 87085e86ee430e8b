/**
 * Three uplinks at once, each its own lane: a healthy MQTT broker, an OTLP collector (a real
 * gRPC server) that flaps, and an IEEE 2030.5 server that is dead for the whole run. The healthy
 * one delivers everything as it comes, the flapping one catches up once it stays up, and the
 * dead one keeps its whole backlog, with every batch accounted for per uplink and none lost.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { startBroker, freePort, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { OtlpTestServer } from './helpers/otlp-server.js';
import { makePki } from './helpers/sep2-server.js';
import { checkCounters, count, launchAgent, log, makeAgentDir, telemetry } from './helpers/agent.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('healthy, flapping and dead uplinks do not hold each other back', async (t) => {
  const broker = await startBroker();
  const rec = await subscribe(broker.url, 'holdfast/gw-test/telemetry');
  const otlp = await OtlpTestServer.start();
  const pki = makePki();
  const deadPort = await freePort();
  const POLLS = 300;
  const policy = { retry: { baseMs: 100, maxMs: 500 }, breaker: { openMs: 500 }, drain: { startJitterMs: 100, readingsPerSec: 1000000, messagesPerSec: 100000 } };
  const a = makeAgentDir(broker.url, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 4, stopAfter: POLLS }], batch: { maxReadings: 40, maxAgeMs: 200 } });
  a.config.uplinks = [
    (a.config.uplinks as object[])[0],
    { name: 'collector', type: 'otlp', url: otlp.url, compression: 'none', timeoutMs: 2000, ...policy },
    { name: 'utility', type: 'sep2', url: `https://127.0.0.1:${deadPort}`, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, timeoutMs: 1000, ...policy },
  ];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await rec.close();
    otlp.stop();
    await broker.stop();
  });

  // Flap the collector while the source runs: down 1.5 s, up 1 s, a few times.
  const flapping = (async () => {
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      otlp.stop();
      await sleep(1500);
      await otlp.restart();
    }
  })();
  const pending = (u: string) => count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = ? AND status = 'pending'`, u);
  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= POLLS, 60_000, 'the source finished');
  const total = count(a, 'SELECT count(*) FROM payloads');
  // The healthy lane keeps up while the other two are down or flapping.
  await waitFor(() => pending('broker') === 0, 30_000, 'healthy uplink caught up');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'broker' AND status = 'delivered'`), total, `healthy uplink delivered all ${total} batches`);
  const lag = count(a, `SELECT max(acknowledgment_timestamp - created_at) FROM recovery_tasks WHERE uplink = 'broker'`);
  t.ok(lag < 10_000, `healthy uplink never waited for the others (worst commit-to-ack ${lag} ms)`);
  await flapping;
  await waitFor(() => pending('collector') === 0, 60_000, 'flapping uplink caught up');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'collector' AND status = 'delivered'`), total, 'flapping uplink delivered everything once it stayed up');
  t.ok(count(a, `SELECT count(*) FROM recovery_events WHERE subject = 'collector' AND kind = 'outage' AND ended_at IS NOT NULL`) >= 1, 'its outages are recorded');
  const points = new Set<string>();
  for (const r of otlp.exports) for (const rm of r.request.resource_metrics) for (const sm of (rm as unknown as { scope_metrics: { metrics: { gauge?: { data_points: { time_unix_nano: string; attributes: unknown[] }[] } }[] }[] }).scope_metrics) for (const m of sm.metrics) for (const p of m.gauge?.data_points ?? []) points.add(`${p.time_unix_nano}:${JSON.stringify(p.attributes)}`);
  t.equal(points.size, count(a, 'SELECT sum(reading_count) FROM payloads'), 'every reading reached the collector (distinct points)');
  t.equal(pending('utility'), total, 'the dead uplink keeps its whole backlog');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'utility' AND status = 'failed'`), 0, 'nothing of it dead-lettered');
  t.equal(count(a, 'SELECT count(*) FROM recovery_tasks'), total * 3, 'one task per batch per uplink, no more, no less');
  await waitFor(() => new Set(telemetry(rec.messages).map((m) => m.key)).size === total, 10_000, 'all at the broker');
  t.same(checkCounters(telemetry(rec.messages)).problems, [], 'the MQTT side saw a contiguous counter');
  // The metrics tell the same story (port 0: the agent logs the port it got).
  const port = Number(/"port":(\d+),"msg":"HTTP server/.exec(log(a))?.[1]);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, new RegExp(`holdfast_deliveries_total\\{uplink="broker"\\} ${total}\\b`), 'deliveries counted per uplink');
  t.match(metrics, /holdfast_delivery_latency_seconds_count\{uplink="collector"\} [1-9]/, 'latency observed');
  t.match(metrics, /holdfast_breaker_state\{uplink="utility",state="closed"\} 0/, 'the dead uplink\'s breaker is not closed');
  t.match(metrics, /holdfast_attempts_total\{uplink="broker",result="ok"\} [1-9]/, 'attempts counted by result');
  t.match(metrics, /holdfast_buffer_batches\{uplink="utility",status="pending"\} [1-9]/, 'its backlog is visible');
  await agent.stop();
});
