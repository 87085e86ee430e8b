/**
 * OTLP partial success, end to end: the real agent (child process) forwards to a real gRPC
 * collector (test/helpers/otlp-server.ts) that answers some batches with partial_success. Each
 * refusal becomes a recovery event (scope uplink, kind 'partial', detail {task, key, rejected,
 * message}) and is counted in holdfast_otlp_rejected_points_total; the batches count as
 * delivered (never re-sent); a warning (nothing rejected) is logged, not recorded. Also the
 * rate-limited logger that keeps those logs short.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { OtlpTestServer } from './helpers/otlp-server.js';
import { count, launchAgent, log, makeAgentDir, withDb } from './helpers/agent.js';
import { LogLimiter } from '../agent/log-limit.js';

t.test('partial successes are recorded as recovery events and counted; the batches stay delivered', async (t) => {
  const srv = await OtlpTestServer.start();
  // The first four batches: three refusals and one warning; the rest plain OK.
  srv.answer(
    { kind: 'partial', rejected: 2, message: '2 points older than the retention window' },
    { kind: 'partial', rejected: 5, message: 'unit "°C" not allowed' },
    { kind: 'partial', rejected: 0, message: 'attribute quality is deprecated' },
    { kind: 'partial', rejected: 1, message: 'duplicate series' },
  );
  const port = await freePort();
  const POLLS = 120;
  const a = makeAgentDir('mqtt://127.0.0.1:1', {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 10, points: 5, stopAfter: POLLS }],
    batch: { maxReadings: 50, maxAgeMs: 200 },
    api: { port },
  });
  a.config.uplinks = [{
    name: 'collector', type: 'otlp', url: srv.url, compression: 'none', timeoutMs: 2000,
    retry: { baseMs: 100, maxMs: 500 }, drain: { startJitterMs: 0, readingsPerSec: 1000000, messagesPerSec: 100000 },
  }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await srv.close();
  });

  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= POLLS, 30_000, 'the source finished');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) === 0 && count(a, 'SELECT count(*) FROM payloads') > 4, 30_000, 'everything delivered');
  const batches = count(a, 'SELECT count(*) FROM payloads');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`), batches, `all ${batches} batches delivered, partial ones included`);
  t.equal(srv.exports.length, batches, 'one export per batch: nothing re-sent after a partial success');

  // The batches the collector answered with a refusal, by their key (the idempotency-key metadata).
  const refused = srv.exports
    .filter((r) => r.answer.kind === 'partial' && r.answer.rejected > 0)
    .map((r) => ({ key: r.metadata['idempotency-key'], answer: r.answer as { rejected: number; message: string } }));
  t.equal(refused.length, 3, 'three refusals were answered');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'partial'`) >= 3, 10_000, 'partial events');
  const events = withDb(a, (db) => db.prepare(`SELECT scope, subject, kind, fault_class AS faultClass, detail FROM recovery_events WHERE kind = 'partial' ORDER BY id`).all()) as
    { scope: string; subject: string; kind: string; faultClass: string; detail: string }[];
  t.equal(events.length, 3, 'one event per refusal; the warning (0 rejected) is not an event');
  const byKey = new Map(events.map((e) => [(JSON.parse(e.detail) as { key: string }).key, e]));
  for (const r of refused) {
    const e = byKey.get(r.key);
    t.ok(e, `event for batch ${r.key}`);
    if (!e) continue;
    const d = JSON.parse(e.detail) as { task: number; key: string; rejected: number; message: string };
    t.same([e.scope, e.subject, e.kind, e.faultClass], ['uplink', 'collector', 'partial', 'payload']);
    t.same([d.rejected, d.message], [r.answer.rejected, r.answer.message], `${r.key}: rejected ${r.answer.rejected}, the collector's message`);
    t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE id = ? AND idempotency_key = ? AND status = 'delivered'`, d.task, d.key), 1, `${r.key}: detail.task is that batch's delivered task`);
  }

  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, /# TYPE holdfast_otlp_rejected_points_total counter/);
  t.match(metrics, /holdfast_otlp_rejected_points_total\{uplink="collector"\} 8\n/, 'rejected points counted: 2 + 5 + 1');
  const lines = log(a).split('\n').filter((l) => l.includes('"uplink":"collector"'));
  t.equal(lines.filter((l) => /collector refused \d+ data point/.test(l)).length, 1, 'refusals logged once (rate-limited), not once each');
  t.equal(lines.filter((l) => l.includes('accepted a batch with a warning: attribute quality is deprecated')).length, 1, 'the warning is logged');
  t.equal(await agent.stop(), 0, 'clean stop');
});

t.test('LogLimiter: first at once, then once per interval with the count left out', async (t) => {
  let now = 1000;
  const l = new LogLimiter(60_000, () => now, 2);
  t.same(l.take('a'), { log: true, suppressed: 0 }, 'first: logged');
  t.same(l.take('a'), { log: false, suppressed: 0 });
  t.same(l.take('a'), { log: false, suppressed: 0 });
  t.same(l.take('b'), { log: true, suppressed: 0 }, 'another key is independent');
  now += 60_000;
  t.same(l.take('a'), { log: true, suppressed: 2 }, 'after the interval: logged, with the two left out');
  t.same(l.take('a'), { log: false, suppressed: 0 });
  t.equal(l.clear('a'), 1, 'clear tells how many were left out since');
  t.same(l.take('a'), { log: true, suppressed: 0 }, 'a cleared key logs at once');
  t.same(l.take('c'), { log: true, suppressed: 0 });
  t.same(l.take('b'), { log: true, suppressed: 0 }, 'beyond maxKeys the oldest key is forgotten (bounded)');
});
