/**
 * Never delete what cannot be accounted for, end to end: the agent stopped with a backlog (the
 * broker down), its database emptied (`: > holdfast.db`), given a garbage header, or truncated,
 * then started again with the broker up. The database goes to quarantine (kept, not deleted),
 * no segment file is deleted, the salvage is reported (log, event, holdfast status), every
 * pending batch is delivered, and the source resumes after the last stored reading: the counter
 * arrives contiguous from 1, none under two different keys.
 */
import t from 'tap';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { checkCounters, cli, count, launchAgent, log, makeAgentDir, telemetry, withDb } from './helpers/agent.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const DAMAGE: Record<string, (file: string) => void> = {
  'emptied (: > holdfast.db)': (f) => truncateSync(f, 0),
  'with a garbage header': (f) => {
    const fd = openSync(f, 'r+');
    writeSync(fd, Buffer.alloc(100, 0x47), 0, 100, 0);
    closeSync(fd);
  },
  truncated: (f) => truncateSync(f, Math.floor(statSync(f).size / 4096 / 2) * 4096),
};

function segmentsOf(dataDir: string): Map<string, number> {
  const dir = join(dataDir, 'segments');
  return new Map(readdirSync(dir).filter((n) => n.endsWith('.seg')).map((n) => [n, statSync(join(dir, n)).size]));
}

async function run(t: TapTest, damage: string): Promise<void> {
  const broker = await startBroker({ persistence: true });
  const rec = await subscribe(broker.url, 'holdfast/gw-test/telemetry', { persistent: true, clientId: `rec-salvage-${damage.length}` });
  await broker.stop();
  const a = makeAgentDir(broker.url, {
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 5, points: 5 }],
    batch: { maxReadings: 100, maxAgeMs: 100 },
  });
  t.teardown(async () => {
    await rec.close();
    await broker.stop();
  });
  const first = launchAgent(t, a);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) >= 30, 60_000, 'a backlog of 30 batches', 250);
  t.equal(await first.stop(), 0, 'stopped with the backlog pending');
  const pending = withDb(a, (db) => db.prepare(`SELECT batch_key FROM payloads`).pluck().all() as string[]);
  const cursor = count(a, `SELECT cursor FROM source_state WHERE device = 'sim-1'`);
  const segs = segmentsOf(a.dataDir);
  t.ok(segs.size > 0 && cursor > 0, `${pending.length} batches in ${segs.size} segment file(s), cursor ${cursor}`);

  DAMAGE[damage](join(a.dataDir, 'holdfast.db'));
  const stopAt = cursor + 300;
  writeFileSync(a.configFile, JSON.stringify({ ...a.config, sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 5, points: 5, stopAfter: stopAt }] }));
  await broker.start();
  const second = launchAgent(t, a);
  await waitFor(() => log(a).includes('"code":"STORE_SALVAGED"'), 60_000, 'the salvage logged', 100);
  for (const [name, size] of segs) t.ok((segmentsOf(a.dataDir).get(name) ?? -1) >= size, `segment ${name} kept`);
  const q = join(a.dataDir, 'quarantine');
  const [dir] = readdirSync(q);
  t.ok(existsSync(join(q, dir, 'holdfast.db')), `the database kept in quarantine/${dir}`);
  const report = JSON.parse(readFileSync(join(q, dir, 'salvage.json'), 'utf8')) as { batches: { total: number }; lost: { bodiesMissing: number } };
  t.ok(report.batches.total >= pending.length, `the report counts ${report.batches.total} batches recovered (${pending.length} were stored)`);
  t.equal(report.lost.bodiesMissing, 0, 'and none lost');
  const status = cli(['status', '--config', a.configFile]);
  t.match(status.stdout, /last salvage .*"batches"/, 'holdfast status shows the salvage');

  await waitFor(() => count(a, `SELECT coalesce(max(cursor), 0) FROM source_state WHERE device = 'sim-1'`) >= stopAt, 120_000, 'the source done', 250);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`) === 0, 120_000, 'everything delivered', 250);
  await waitFor(() => (checkCounters(telemetry(rec.messages)).counters.get('sim-1')?.length ?? 0) >= stopAt, 60_000, 'every counter at the subscriber', 250);
  t.equal(await second.stop(), 0, 'graceful stop');
  const got = new Set(telemetry(rec.messages).map((m) => m.key));
  t.same(pending.filter((k) => !got.has(k)), [], `all ${pending.length} batches pending before the damage delivered`);
  const check = checkCounters(telemetry(rec.messages));
  t.same(check.problems, [], 'the counter contiguous from 1: the source resumed after the salvaged cursor, no reading under two keys');
  t.equal(check.counters.get('sim-1')?.length, stopAt);
  t.equal(count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'salvage' AND code = 'STORE_SALVAGED'`), 1, 'the salvage is an event');
}

for (const damage of Object.keys(DAMAGE)) t.test(`a database ${damage} at start: quarantined, salvaged, nothing deleted`, async (t) => run(t, damage));
