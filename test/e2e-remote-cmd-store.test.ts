/**
 * The remote commands that change the store, over a real Mosquitto against the real agent:
 * `cmd/retry-reset` gives the dead letters of one uplink a fresh start (re-admitted at once, then
 * delivered; without it they stay dead), and `cmd/purge` deletes the delivered tasks and their
 * payloads older than its `olderThan`, keeping what is newer and everything pending; each answers
 * on `cmd/<name>/result` with what it did.
 */
import t from 'tap';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { count, withDb } from './helpers/agent.js';
import { operatorKey, remoteAgentDir, remoteBroker, send, startRemoteAgent } from './helpers/remote.js';
import { signCommand } from '../agent/remote/signing.js';
import { writeFileSync } from 'node:fs';

interface Row { id: number; status: string; created_at: number }

t.test('cmd/retry-reset re-admits the dead letters of one uplink; cmd/purge deletes the old delivered data only', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  // A second uplink on a broker whose Maximum Packet Size no batch fits: every batch sent to it
  // is dead-lettered (a hard payload failure, MQTT_0x95) after one attempt.
  const tiny = await startBroker({ maxPacketSize: 250 });
  t.teardown(() => tiny.stop());
  const op = operatorKey();
  const a = remoteAgentDir(broker.url, op.publicB64, {}, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3 }] });
  const main = (a.config.uplinks as Record<string, unknown>[])[0];
  a.config.uplinks = [main, { ...main, name: 'tiny', url: tiny.url, topicPrefix: 'holdfast/gw-test/tiny' }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = await startRemoteAgent(t, a, rec);
  const tasks = (where: string): Row[] => withDb(a, (db) => db.prepare(`SELECT id, status, created_at FROM recovery_tasks WHERE ${where} ORDER BY id`).all() as Row[]);
  const cmd = (name: string, seq: number, args: object) => send(rec, `cmd/${name}`, signCommand(op.key, 'ops', 'gw-test', name, seq, args), `cmd/${name}/result`);

  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'tiny' AND status = 'failed'`) >= 5, 30_000, "batches dead-lettered on 'tiny'");
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'tiny' AND status = 'failed' AND last_error_code != 'MQTT_0x95'`), 0, 'as MQTT_0x95');

  // The broker comes back without the limit: new batches go through, the dead letters stay dead.
  await tiny.stop();
  const good = await startBroker({ port: tiny.port });
  t.teardown(() => good.stop());
  const since = count(a, 'SELECT max(id) FROM recovery_tasks');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'tiny' AND status = 'delivered' AND id > ?`, since) >= 3, 30_000, "'tiny' delivers again");
  const dead = tasks(`uplink = 'tiny' AND status = 'failed'`).map((r) => r.id);
  t.ok(dead.length >= 5, `${dead.length} dead letters on 'tiny'`);
  await new Promise((r) => setTimeout(r, 1500)); // three sweeps
  t.same(tasks(`uplink = 'tiny' AND status = 'failed'`).map((r) => r.id), dead, 'not retried on their own');

  const reset = await cmd('retry-reset', 1, { uplink: 'tiny' });
  t.equal(reset.status, 'ok', `retry-reset: ${reset.reason ?? ''}`);
  t.same(reset.result, { reset: dead.length }, 'the result counts the tasks reset');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered' AND id IN (${dead.join(',')})`) === dead.length, 30_000, 'every reset dead letter delivered');
  t.pass('every reset dead letter delivered');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks WHERE uplink = 'tiny' AND status = 'failed'`), 0, "no dead letter left on 'tiny'");
  const readmits = withDb(a, (db) => db.prepare(`SELECT detail FROM recovery_events WHERE kind = 'readmit' AND subject = 'tiny'`).pluck().all() as string[]);
  t.same(readmits.map((d) => JSON.parse(d) as unknown), [{ tasks: dead.length }], 'one re-admission of them all, recorded');

  // purge: a bad argument is refused; then the delivered data older than 5 s goes, and only that.
  const bad = await cmd('purge', 2, {});
  t.same([bad.status, bad.code], ['failed', 'REMOTE_COMMAND_FAILED'], `purge without olderThan: ${bad.reason}`);
  const AGE = 5000;
  const oldest = count(a, 'SELECT min(created_at) FROM recovery_tasks');
  await waitFor(() => Date.now() - oldest > AGE + 2000, 10_000, 'data older than 5 s');
  // Everything but the last 2 s delivered: what is still pending at the purge is newer than its cut.
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered' AND created_at < ?`, Date.now() - 2000) === 0, 30_000, 'everything older than 2 s delivered');
  const payloads = () => withDb(a, (db) => db.prepare('SELECT id, created_at FROM payloads ORDER BY id').all() as { id: number; created_at: number }[]);
  const beforeTasks = tasks('1');
  const beforePayloads = payloads();
  t.equal(beforeTasks.length, count(a, 'SELECT count(*) FROM recovery_tasks'), 'the snapshot');
  const from = Date.now();
  const purge = await cmd('purge', 3, { olderThan: '5s' });
  const to = Date.now();
  t.equal(purge.status, 'ok', `purge: ${purge.reason ?? ''}`);
  const r = purge.result as { tasks: number; payloads: number; events: number; segmentsDeleted: number; segmentBytesFreed: number };
  const afterTasks = new Set(tasks('1').map((x) => x.id));
  const afterPayloads = new Set(payloads().map((x) => x.id));
  const goneTasks = beforeTasks.filter((x) => !afterTasks.has(x.id));
  const gonePayloads = beforePayloads.filter((x) => !afterPayloads.has(x.id));
  t.ok(r.tasks > 0 && r.payloads > 0, `purged ${r.tasks} task(s), ${r.payloads} payload(s)`);
  t.equal(goneTasks.length, r.tasks, 'the result counts the tasks deleted');
  t.equal(gonePayloads.length, r.payloads, 'and the payloads');
  const old = (x: Row) => x.created_at < from - AGE;
  t.same(goneTasks.filter(old).map((x) => x.id), beforeTasks.filter((x) => old(x) && x.status === 'delivered').map((x) => x.id), 'every delivered task older than 5 s deleted');
  t.same(goneTasks.filter((x) => x.created_at >= to - AGE || x.status !== 'delivered'), [], 'none newer, none that was not delivered');
  t.same(gonePayloads.filter((x) => x.created_at >= to - AGE), [], 'no newer payload deleted');
  t.equal(count(a, `SELECT count(*) FROM recovery_tasks t LEFT JOIN payloads p ON p.id = t.payload_id WHERE p.id IS NULL`), 0, 'every task left still has its payload');
  t.ok(Number.isInteger(r.events) && Number.isInteger(r.segmentsDeleted) && Number.isInteger(r.segmentBytesFreed), 'events and segment files counted too');
  t.equal(await agent.stop(), 0);
});
