/**
 * kill -9 is a test input. The agent is killed at random instants during ingest (broker down)
 * and during drain (broker up); after every kill the committed batches are read from the
 * database as it stands, and at the end every one of them must have reached the broker, the
 * counter must be contiguous across all restarts, and `PRAGMA integrity_check` must say ok.
 * Default: 3 kills in each phase; HOLDFAST_LONG=1: 50 in all.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { checkCounters, count, log, makeAgentDir, startAgent, telemetry, withDb } from './helpers/agent.js';
import { mulberry32 } from './helpers/rand.js';

const LONG = process.env.HOLDFAST_LONG === '1';
const KILLS_PER_PHASE = LONG ? 25 : 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test(`kill -9 during ingest and during drain loses no committed batch (${KILLS_PER_PHASE * 2} kills)`, async (t) => {
  const rand = mulberry32(Number(process.env.HOLDFAST_SEED ?? Date.now() % 100000));
  const broker = await startBroker({ persistence: true });
  const rec = await subscribe(broker.url, 'holdfast/gw-test/telemetry', { persistent: true, clientId: 'rec-crash' });
  await broker.stop();
  const a = makeAgentDir(broker.url, {
    sources: [
      { type: 'simulated', device: 'sim-1', intervalMs: 2, points: 5 },
      { type: 'simulated', device: 'sim-2', intervalMs: 3, points: 3 },
    ],
    batch: { maxReadings: 50, maxAgeMs: 100 },
    store: { commitIntervalMs: 20 },
  });
  t.teardown(async () => {
    await rec.close();
    await broker.stop();
  });

  const committed = new Set<string>();
  const snapshot = () => withDb(a, (db) => (db.prepare('SELECT batch_key FROM payloads').pluck().all() as string[]).forEach((k) => committed.add(k)));

  for (let round = 0; round < KILLS_PER_PHASE * 2; round++) {
    const draining = round >= KILLS_PER_PHASE;
    if (draining && !broker.running) await broker.start();
    const agent = startAgent(a);
    const before = count(a, 'SELECT count(*) FROM payloads');
    await waitFor(() => count(a, 'SELECT count(*) FROM payloads') > before, 60_000, `round ${round}: a new commit`);
    if (draining) await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 0, 60_000, 'drain under way');
    await sleep(50 + Math.floor(rand() * 700));
    await agent.kill9();
    snapshot();
    const ok = withDb(a, (db) => db.pragma('integrity_check', { simple: true }));
    t.equal(ok, 'ok', `round ${round} (${draining ? 'drain' : 'ingest'}): integrity_check ok after kill -9`);
  }

  // Final run: no more readings (each source stops where the store left it), everything
  // committed must be delivered.
  const cursors = withDb(a, (db) => db.prepare('SELECT device, cursor FROM source_state').all() as { device: string; cursor: number }[]);
  const cfg = JSON.parse(readFileSync(a.configFile, 'utf8')) as { sources: { device: string; stopAfter?: number }[] };
  for (const src of cfg.sources) src.stopAfter = Math.max(1, cursors.find((c) => c.device === src.device)?.cursor ?? 1);
  writeFileSync(a.configFile, JSON.stringify(cfg, null, 2));
  const connectedBefore = log(a).split('\n').filter((l) => l.includes('"uplink connected"')).length;
  const final = startAgent(a);
  t.teardown(async () => {
    if (final.proc.exitCode === null) await final.kill9();
  });
  // Up (its signal handlers in place) before anything is judged or stopped.
  await waitFor(() => log(a).split('\n').filter((l) => l.includes('"uplink connected"')).length > connectedBefore, 60_000, 'the final run connected');
  const waitFrom = Date.now();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`) === 0 && count(a, 'SELECT count(*) FROM payloads') > 0, 120_000, 'buffer empty').catch((e: Error) => {
    const left = withDb(a, (db) => db.prepare(
      `SELECT status, next_attempt_at > 0 AS waiting, retry_count AS retries, last_error_code AS code, count(*) AS tasks, min(id) AS fromId, max(id) AS toId FROM recovery_tasks WHERE status != 'delivered' GROUP BY 1, 2, 3, 4`,
    ).all());
    const maxId = count(a, 'SELECT max(id) FROM recovery_tasks');
    throw new Error(`${e.message}; left: ${JSON.stringify(left)}; max task id ${maxId}; log tail: ${log(a).split('\n').slice(-12).join('\n')}`);
  });
  t.comment(`buffer empty ${Date.now() - waitFrom} ms after the final start`);
  const finalCode = await final.stop();
  t.equal(finalCode, 0, 'graceful stop');
  // Readings committed by the graceful stop itself stay pending for the next start: never lost.
  t.equal(count(a, `SELECT count(*) FROM payloads p WHERE NOT EXISTS (SELECT 1 FROM recovery_tasks t WHERE t.payload_id = p.id AND t.status IN ('pending', 'delivered'))`), 0, 'every stored batch is delivered or pending');
  await waitFor(() => {
    const got = new Set(telemetry(rec.messages).map((m) => m.key));
    return [...committed].every((k) => got.has(k));
  }, 60_000, 'every committed batch at the subscriber');
  const got = new Set(telemetry(rec.messages).map((m) => m.key));
  t.equal([...committed].filter((k) => !got.has(k)).length, 0, `all ${committed.size} committed batches reached the broker`);
  const check = checkCounters(telemetry(rec.messages));
  t.same(check.problems, [], 'counters contiguous across every restart, no reading in two batches');
  t.ok((check.counters.get('sim-1')?.length ?? 0) > 0 && (check.counters.get('sim-2')?.length ?? 0) > 0, 'both devices delivered');
  t.equal(withDb(a, (db) => db.pragma('integrity_check', { simple: true })), 'ok', 'integrity_check ok at the end');
});
