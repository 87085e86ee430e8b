/**
 * The per-uplink circuit breaker against a real broker that refuses (stopped: ECONNREFUSED)
 * and then accepts: closed -> open, a manual reset from the CLI on the live agent, open again,
 * half-open probes that fail while the broker is down, and half-open -> closed once it is up.
 */
import t from 'tap';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { cli, count, log, makeAgentDir, startAgent, withDb } from './helpers/agent.js';

function transitions(a: Parameters<typeof withDb>[0]): string[] {
  if (count(a, `SELECT count(*) FROM sqlite_master WHERE name = 'recovery_events'`) === 0) return [];
  return withDb(a, (db) =>
    (db.prepare(`SELECT detail FROM recovery_events WHERE kind = 'breaker' AND subject = 'broker' ORDER BY id`).pluck().all() as string[])
      .map((d) => JSON.parse(d) as { transition?: string; why?: string; reset?: string })
      .map((d) => d.transition ?? `reset:${d.reset}`),
  );
}

t.test('breaker: closed -> open -> (manual reset) -> open -> half_open -> closed', async (t) => {
  const broker = await startBroker();
  await broker.stop();
  const a = makeAgentDir(
    broker.url,
    { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 50, points: 3 }] },
    { retry: { baseMs: 50, maxMs: 200 }, breaker: { windowMs: 60000, minCalls: 3, failureRate: 0.5, openMs: 1500, halfOpenProbes: 2 } },
  );
  const agent = startAgent(a);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await broker.stop();
  });

  await waitFor(() => transitions(a).includes('closed->open'), 30_000, 'breaker open');
  const st = JSON.parse(cli(['status', '--config', a.configFile, '--json']).stdout) as { uplinks: { breaker: string; lastError: { code: string } }[] };
  t.equal(st.uplinks[0].breaker, 'open', 'status shows the breaker open');
  t.equal(st.uplinks[0].lastError.code, 'ECONNREFUSED', 'status shows the last error code');

  const r = cli(['breaker', 'reset', 'broker', '--config', a.configFile]);
  t.equal(r.code, 0, `breaker reset exits 0 (${r.stderr})`);
  await waitFor(() => transitions(a).includes('reset:manual'), 10_000, 'the live agent applied the reset');
  const afterReset = transitions(a);
  t.ok(afterReset.slice(afterReset.indexOf('closed->open')).some((x) => x.endsWith('->closed')), 'manual reset closed the breaker');

  await waitFor(() => transitions(a).filter((x) => x === 'closed->open').length >= 2, 30_000, 'breaker open again (broker still down)');
  await waitFor(() => transitions(a).includes('half_open->open'), 30_000, 'a failed half-open probe reopens it');
  const pendingBefore = count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`);
  t.ok(pendingBefore > 0, 'data waits while the breaker is open');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`), 0, 'nothing dead-lettered by a link outage');

  await broker.start();
  await waitFor(() => transitions(a).includes('half_open->closed'), 30_000, 'breaker closed after successful probes');
  const seq = transitions(a);
  const iOpen = seq.indexOf('closed->open');
  const iHalf = seq.lastIndexOf('open->half_open');
  const iClosed = seq.lastIndexOf('half_open->closed');
  t.ok(iOpen >= 0 && iOpen < iHalf && iHalf < iClosed, `closed->open ... open->half_open -> half_open->closed in order: ${seq.join(', ')}`);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) >= pendingBefore, 30_000, 'backlog delivered');
  const outages = withDb(a, (db) => db.prepare(`SELECT code, duration_ms AS d FROM recovery_events WHERE kind = 'outage' AND subject = 'broker'`).all()) as { code: string; d: number | null }[];
  t.ok(outages.length >= 1 && outages.every((o) => o.d !== null && o.d > 0), 'the outage is recorded with its duration');
  t.equal(outages[0].code, 'ECONNREFUSED', 'with its error code');
  await agent.stop();
});

t.test('RETRY_STRATEGY=ADAPTIVE: reconnects chosen from the outage history, then recovers', async (t) => {
  const broker = await startBroker();
  await broker.stop();
  const a = makeAgentDir(broker.url, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 50, points: 3 }] }, { retry: { baseMs: 100, maxMs: 2000 } });
  // First run: three short outages of about 1 s go into the history.
  let agent = startAgent(a, { RETRY_STRATEGY: 'ADAPTIVE' });
  t.teardown(() => {
    if (!t.passing()) console.error(log(a).split('\n').slice(-15).join('\n'));
  });
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await broker.stop();
  });
  const openOutage = () => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'outage' AND ended_at IS NULL`) > 0;
  for (let i = 0; i < 3; i++) {
    await waitFor(openOutage, 30_000, `outage ${i + 1} seen by the agent`);
    await new Promise((r) => setTimeout(r, 1000));
    await broker.start();
    await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'outage' AND ended_at IS NOT NULL`) > i, 30_000, `outage ${i + 1} closed`);
    await broker.stop();
  }
  await agent.stop();
  agent = startAgent(a, { RETRY_STRATEGY: 'ADAPTIVE' });
  await waitFor(openOutage, 30_000, 'outage 4 seen by the agent');
  await new Promise((r) => setTimeout(r, 1500));
  await broker.start();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'outage' AND ended_at IS NOT NULL`) >= 4, 30_000, 'recovered under ADAPTIVE');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) === 0, 30_000, 'backlog delivered');
  t.pass('ADAPTIVE reconnected and delivered the backlog');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`), 0, 'nothing dead-lettered');
  await agent.stop();
});
