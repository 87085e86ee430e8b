/**
 * Bounded shutdown against upstreams that never acknowledge: SIGTERM makes the real agent exit 0
 * before pm2's kill_timeout (ecosystem.config.js) would SIGKILL it, with the store closed, the
 * batches in flight still pending (sent again later, not lost) and the offline status sent.
 *   - a real Mosquitto stopped with SIGSTOP once the connection is up: it holds the connection
 *     and answers nothing;
 *   - a TCP server that answers CONNECT with CONNACK and then never sends a PUBACK.
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { startSilentBroker } from './helpers/silent-broker.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { count, launchAgent, log, makeAgentDir, ROOT, withDb, type AgentDir, type RunningAgent } from './helpers/agent.js';

const require = createRequire(import.meta.url);
const ecosystem = require(join(ROOT, 'ecosystem.config.js')) as { apps: { kill_timeout: number }[] };
const KILL_TIMEOUT_MS = ecosystem.apps[0].kill_timeout;
const SHUTDOWN_MS = 4000;
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** SIGTERM; resolves with the exit code, or 'killed' if the agent was still running at kill_timeout (then SIGKILLed, as pm2 would). */
async function sigterm(agent: RunningAgent): Promise<number | null | 'killed'> {
  agent.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'killed'>((res) => (timer = setTimeout(() => res('killed'), KILL_TIMEOUT_MS)));
  const r = await Promise.race([agent.exited, late]);
  clearTimeout(timer);
  if (r === 'killed') await agent.kill9();
  return r;
}

/** What the log says about the stop, and the store after it. */
function afterStop(t: TapTest, a: AgentDir): void {
  const text = log(a);
  t.match(text, /holdfast stopped: store closed/, 'the store was closed (logged after closeStore)');
  t.notMatch(text, /"code":"SHUTDOWN_TIMEOUT"/, 'no step needed the backstop or overran its share');
  t.equal(withDb(a, (db) => db.pragma('integrity_check', { simple: true })), 'ok', 'integrity_check ok');
  const wal = join(a.dataDir, 'holdfast.db-wal');
  t.ok(!existsSync(wal) || statSync(wal).size === 0, 'no WAL left behind: the last connection closed and checkpointed');
  t.equal(count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'failed'"), 0, 'nothing dead-lettered by the stop');
}

t.test('Mosquitto hung with SIGSTOP after the connection is up: SIGTERM -> exit 0 before kill_timeout, store closed', async (t) => {
  t.ok(SHUTDOWN_MS < KILL_TIMEOUT_MS, `shutdownTimeoutMs ${SHUTDOWN_MS} < kill_timeout ${KILL_TIMEOUT_MS}`);
  const broker = await startBroker();
  const a = makeAgentDir(broker.url, { shutdownTimeoutMs: SHUTDOWN_MS }, { ackTimeoutMs: 60_000 });
  const agent = launchAgent(t, a, async () => {
    broker.resume();
    await broker.kill();
  });
  await waitFor(() => count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'") > 0, 30_000, 'first deliveries');
  broker.pause();
  const before = count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'pending'");
  await waitFor(() => count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'pending'") >= before + 5, 30_000, 'batches waiting for a PUBACK');

  const code = await sigterm(agent);
  t.equal(code, 0, 'exit 0 before kill_timeout');
  t.match(log(a), /"code":"SHUTDOWN_ACK_TIMEOUT"/, 'the unacknowledged messages are reported');
  t.ok(count(a, "SELECT count(*) FROM recovery_events WHERE kind = 'shutdown' AND code = 'SHUTDOWN_ACK_TIMEOUT'") >= 1, 'and recorded as an event');
  afterStop(t, a);
  const pending = count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'pending'");
  t.ok(pending > 0, `${pending} batch(es) stay pending, to be sent after the restart`);

  // The broker wakes: the retained status says offline (our status message or our will).
  broker.resume();
  const rec = await subscribe(broker.url, 'holdfast/gw-test/status');
  t.teardown(() => rec.close());
  await waitFor(() => rec.messages.some((m) => m.retain), 20_000, 'the retained status');
  const last = rec.messages.filter((m) => m.retain).at(-1)!;
  t.match(JSON.parse(last.payload.toString()), { state: 'offline', gatewayId: 'gw-test' }, 'retained status: offline');
});

t.test('a server that sends CONNACK and never a PUBACK: SIGTERM -> exit 0, offline status on the wire, store closed', async (t) => {
  const silent = await startSilentBroker();
  const a = makeAgentDir(silent.url, { shutdownTimeoutMs: SHUTDOWN_MS }, { ackTimeoutMs: 60_000 });
  const agent = launchAgent(t, a, () => silent.close());
  await waitFor(() => silent.published.filter((p) => p.topic.endsWith('/telemetry')).length >= 3, 30_000, 'telemetry published, never acknowledged');
  t.equal(count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'"), 0, 'nothing counts as delivered without a PUBACK');

  const code = await sigterm(agent);
  t.equal(code, 0, 'exit 0 before kill_timeout');
  const status = silent.published.filter((p) => p.topic === 'holdfast/gw-test/status').map((p) => JSON.parse(p.payload.toString()) as { state: string });
  t.same(status.map((s) => s.state), ['online', 'offline'], 'the online status at connect, the offline status at the stop');
  t.match(log(a), /"code":"SHUTDOWN_ACK_TIMEOUT"/, 'the unacknowledged messages are reported');
  afterStop(t, a);
  t.ok(count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'pending'") >= 3, 'the unacknowledged batches stay pending');
});
