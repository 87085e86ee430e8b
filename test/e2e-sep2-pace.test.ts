/**
 * IEEE 2030.5 postRate, end to end: a real agent with two simulated devices producing a batch
 * every ~100 ms posts to a real HTTPS (mutual TLS) 2030.5 test server whose MirrorUsagePoints ask
 * for postRate = 1 s. The lane's pacer must post each device no more often than once a second,
 * merge the batches that waited into one MirrorReadingSet, and still deliver every reading once
 * at its original time. And with the server down while the devices run, the backlog that piles
 * up is drained at the same pace, merged, without a reading lost.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { makePki, startSep2Server, type Sep2Server } from './helpers/sep2-server.js';
import { count, launchAgent, makeAgentDir } from './helpers/agent.js';

const POST_RATE_S = 1;
const POLLS = 60;

/** Send times per MirrorUsagePoint: the POSTs of its voltage_l1 MirrorMeterReading (a send posts each point once). */
function postTimes(srv: Sep2Server): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const l of srv.log) {
    if (l.method !== 'POST' || !/^\/mup\/\d+$/.test(l.path) || l.status >= 300 || l.mmr !== 'voltage_l1') continue;
    out.set(l.path, [...(out.get(l.path) ?? []), l.at]);
  }
  return out;
}

const pki = makePki();

for (const phase of ['live', 'backlog'] as const) {
t.test(`postRate (${phase}): one merged post per device per postRate, every reading once`, async (t) => {
  // backlog: the server is down while the sources run, and comes up once they have finished.
  const port = await freePort();
  let srv = phase === 'live' ? await startSep2Server({ pki, pen: 0, postRate: POST_RATE_S, port }) : null;
  const policy = { retry: { baseMs: 100, maxMs: 500 }, breaker: { openMs: 500 }, drain: { startJitterMs: 100, readingsPerSec: 1000000, messagesPerSec: 100000 } };
  const a = makeAgentDir('mqtt://127.0.0.1:1', {
    sources: ['sim-1', 'sim-2'].map((device) => ({ type: 'simulated', device, intervalMs: 50, points: 2, stopAfter: POLLS })),
    batch: { maxReadings: 2, maxAgeMs: 100 },
  });
  a.config.uplinks = [{ name: 'utility', type: 'sep2', url: `https://127.0.0.1:${port}`, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, timeoutMs: 2000, ...policy }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await srv?.close();
  });
  const pending = () => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`);
  await waitFor(() => count(a, 'SELECT min(cursor) FROM source_state') >= POLLS && count(a, 'SELECT count(*) FROM source_state') === 2, 60_000, 'both sources finished');
  if (!srv) {
    t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`), 0, 'nothing delivered while the server is down');
    srv = await startSep2Server({ pki, pen: 0, postRate: POST_RATE_S, port });
  }
  await waitFor(() => pending() === 0, 30_000, 'everything delivered');
  const batches = count(a, 'SELECT count(*) FROM payloads');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`), batches, `all ${batches} batches delivered`);

  const times = postTimes(srv);
  t.equal(times.size, 2, 'one MirrorUsagePoint per device');
  let posts = 0;
  for (const [mup, at] of times) {
    posts += at.length;
    const gaps = at.slice(1).map((x, i) => x - at[i]);
    t.ok(gaps.every((g) => g >= POST_RATE_S * 1000), `${mup}: ${at.length} posts, never closer than postRate (smallest gap ${Math.min(...gaps)} ms)`);
  }
  t.ok(posts < batches / 2, `batches merged: ${posts} posts for ${batches} batches`);
  t.same(srv.problems, [], 'every post well-formed, in order, in the namespace');

  // Every reading arrived once, at its original time: voltage_l1 once per poll, and the unitless
  // counter (posted as not applicable) 1..POLLS.
  const first = count(a, `SELECT min(created_at) FROM payloads`);
  for (const m of srv.mups.values()) {
    const of = (point: string) => [...m.mmrs.values()].find((x) => x.description === point)?.readings ?? [];
    t.same(of('counter').map((r) => r.value).sort((x, y) => x - y), Array.from({ length: POLLS }, (_, i) => i + 1), `${m.description}: counter 1..${POLLS}, each once`);
    const rs = of('voltage_l1');
    t.equal(rs.length, POLLS, `${m.description}: ${POLLS} voltage readings, each once`);
    t.ok(rs.every((r) => r.start >= Math.floor(first / 1000) - 5 && r.start <= Math.ceil(Date.now() / 1000)), 'at their original times (seconds)');
    t.ok(rs.filter((r) => r.set !== undefined).length >= POLLS / 2, 'most in merged MirrorReadingSets');
  }
  await agent.stop();
});
}
