/**
 * A 2030.5 server's Retry-After holds the WHOLE lane (agent/forward/order.ts, gate serverHoldUntil),
 * end to end and seen from the server: the real agent buffers a backlog while the server is
 * unreachable; the server comes up on that port (real HTTPS, mutual TLS) and answers the first
 * POST with 503 + Retry-After: 2. No request at all may reach it until the hold has passed (the
 * server's own clock: nothing in the 1.5 s after it answered the 503), and then every batch is
 * delivered exactly once: each counter value and each voltage reading arrives once.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { makePki, startSep2Server, type Sep2Server } from './helpers/sep2-server.js';
import { count, launchAgent, makeAgentDir } from './helpers/agent.js';

const POLLS = 20;
const RETRY_AFTER_S = 2;
/** What the server must see as quiet after its 503: less than the hold, for a shared slow machine. */
const QUIET_MS = 1500;

t.test('503 + Retry-After: no request reaches the server until the hold has passed, then every batch once', async (t) => {
  const pki = makePki();
  const port = await freePort();
  let srv: Sep2Server | null = null;
  const a = makeAgentDir('mqtt://127.0.0.1:1', {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 2, stopAfter: POLLS }],
    batch: { maxReadings: 2, maxAgeMs: 100 },
  });
  a.config.uplinks = [{
    name: 'utility', type: 'sep2', url: `https://127.0.0.1:${port}`, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, timeoutMs: 10_000,
    retry: { baseMs: 100, maxMs: 300 }, breaker: { openMs: 300 }, drain: { startJitterMs: 50, readingsPerSec: 1000000, messagesPerSec: 100000 },
  }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await srv?.close();
  });

  // The backlog: the source runs to its end while nothing listens on the uplink's port.
  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= POLLS, 30_000, 'the source finished');
  const batches = count(a, 'SELECT count(*) FROM payloads');
  t.ok(batches >= 5, `${batches} batches waiting`);
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`), 0, 'nothing delivered while the server is unreachable');

  srv = await startSep2Server({ pki, pen: 0, port });
  srv.script({ method: 'POST', status: 503, headers: { 'Retry-After': String(RETRY_AFTER_S) } });
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) === 0, 60_000, 'every batch delivered');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`), batches, `all ${batches} batches delivered`);

  // From the server's side: the time of every request it answered.
  const log = srv.log.map((l) => ({ ...l, what: `${l.method} ${l.path} ${l.status}` }));
  const refused = log.findIndex((l) => l.status === 503);
  t.ok(refused >= 0, 'the server answered a POST with 503');
  const hold = log[refused];
  const after = log.slice(refused + 1);
  t.ok(after.length > 0, `${after.length} requests after the 503`);
  const early = after.filter((l) => l.at - hold.at < QUIET_MS);
  t.same(early.map((l) => `${l.what} +${l.at - hold.at} ms`), [], `no request at all in the ${QUIET_MS} ms after the 503 (Retry-After: ${RETRY_AFTER_S})`);
  t.ok(after[0].at - hold.at >= QUIET_MS, `the first request after it came ${after[0].at - hold.at} ms later: ${after[0].what}`);
  t.same(log.slice(0, refused).filter((l) => l.method === 'POST'), [], 'the 503 answered the first POST');

  // Every batch exactly once: the counter (1 per poll) and voltage_l1 readings as the server holds them.
  const mups = [...srv.mups.values()];
  t.equal(mups.length, 1, 'one MirrorUsagePoint');
  const mmrs = [...mups[0].mmrs.values()];
  const byPoint = new Map(mmrs.map((m) => [m.description, m.readings]));
  t.same(byPoint.get('counter')?.map((r) => r.value).sort((x, y) => x - y), Array.from({ length: POLLS }, (_, i) => i + 1), 'counter values 1..POLLS, each once');
  t.equal(byPoint.get('voltage_l1')?.length, POLLS, 'one voltage reading per poll, none twice');
  t.same(srv.problems, [], 'every body well-formed and in schema order');
  await agent.stop();
});
