/**
 * A broker that rejects the agent's credentials is a hard link failure: the data is held, an
 * alarm is raised, and the agent does not hammer the broker (a handful of CONNECTs per minute
 * at most). When the operator fixes the password and resets the breaker, delivery resumes.
 */
import t from 'tap';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { cli, count, makeAgentDir, startAgent, withDb } from './helpers/agent.js';

t.test('bad credentials: data held, alarm raised, no CONNECT storm; fixed credentials resume delivery', async (t) => {
  const broker = await startBroker({ users: { holdfast: 'right-password' } });
  const a = makeAgentDir(broker.url, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3 }] }, {
    username: 'holdfast',
    passwordFile: 'mqtt.pass',
    retry: { baseMs: 100, maxMs: 1000 },
  });
  const passFile = join(a.dir, 'mqtt.pass');
  writeFileSync(passFile, 'wrong-password\n');
  chmodSync(passFile, 0o600);
  const agent = startAgent(a);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await broker.stop();
  });

  await waitFor(() => broker.connectCount() >= 1, 20_000, 'first CONNECT');
  const firstAt = Date.now();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'alarm'`) > 0, 20_000, 'alarm raised');
  // Watch for 20 s: with soft-failure backoff (100 ms..1 s) this would be 20+ CONNECTs.
  await new Promise((r) => setTimeout(r, 20_000));
  const connects = broker.connectCount();
  const minutes = (Date.now() - firstAt) / 60_000;
  t.ok(connects <= 3, `no CONNECT storm: ${connects} CONNECT(s) in ${(minutes * 60).toFixed(0)} s`);
  const alarm = withDb(a, (db) => db.prepare(`SELECT code, fault_class AS fc FROM recovery_events WHERE kind = 'alarm' LIMIT 1`).get()) as { code: string; fc: string };
  t.match(alarm.code, /^MQTT_0x8[67]$/, `alarm carries the reason code (${alarm.code})`);
  t.equal(alarm.fc, 'upstream', 'class upstream');
  t.ok(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) > 0, 'data held as pending');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`), 0, 'nothing dead-lettered');
  const st = JSON.parse(cli(['status', '--config', a.configFile, '--json']).stdout) as { uplinks: { lastError: { code: string } }[] };
  t.match(st.uplinks[0].lastError.code, /^MQTT_0x8[67]$/, 'status shows why');

  writeFileSync(passFile, 'right-password\n');
  t.equal(cli(['breaker', 'reset', 'broker', '--config', a.configFile]).code, 0, 'operator resets the breaker');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 0, 30_000, 'delivery resumed');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending' AND created_at < ?`, firstAt + 20_000) === 0, 30_000, 'held data delivered');
  t.pass('held data delivered after the fix');
  await agent.stop();
});
