/**
 * The store fails under a running agent, against a real Mosquitto and real filesystems:
 *
 *   - ext4 (a loop-mounted image, errors=remount-ro) hits an error and goes read-only mid-run,
 *     then is repaired (fsck) and mounted again while the agent runs;
 *   - the data directory is removed mid-run;
 *   - another program fills the disk (a 8 MiB tmpfs): ENOSPC; the agent is restarted on the full
 *     disk; the disk is freed.
 *
 * Each time: STORE_UNAVAILABLE (log, /readyz 503), new batches go to the spool and live data
 * still reaches the broker, and when the store works again the spool is imported: every counter
 * value from 1 to the last arrives, none under two different keys, and every batch the store had
 * committed before the failure is delivered. No crash, no restart loop.
 *
 * The ext4 and tmpfs tests are skipped, with the reason, only where mounting is impossible.
 */
import t from 'tap';
import { closeSync, existsSync, openSync, readdirSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor, type Broker } from './helpers/mosquitto.js';
import { subscribe, type Recorder } from './helpers/mqtt-sub.js';
import { checkCounters, count, launchAgent, log, makeAgentDir, telemetry, withDb, type AgentDir, type RunningAgent } from './helpers/agent.js';
import { mountExt4, mountSkip, mountTmpfs } from './helpers/mount.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
const POLLS = 4000;
const skip = mountSkip();
if (skip) t.comment(`mount tests skipped: ${skip}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(t: TapTest, dataDir: string | null, name: string): Promise<{ broker: Broker; rec: Recorder; a: AgentDir }> {
  const broker = await startBroker({ persistence: true });
  const rec = await subscribe(broker.url, 'holdfast/gw-test/#', { persistent: true, clientId: `rec-${name}` });
  t.teardown(async () => {
    await rec.close();
    await broker.stop();
  });
  const a = makeAgentDir(broker.url, {
    ...(dataDir ? { dataDir } : {}),
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 5, points: 5, stopAfter: POLLS }],
    batch: { maxReadings: 100, maxAgeMs: 100 },
  });
  return { broker, rec, a };
}

const keys = (a: AgentDir): string[] => withDb(a, (db) => db.prepare('SELECT batch_key FROM payloads').pluck().all() as string[]);
const lines = (a: AgentDir, msg: string) => log(a).split('\n').filter((l) => l.includes(msg));

async function readyz(a: AgentDir): Promise<number> {
  const m = [...log(a).matchAll(/"port":(\d+)/g)].pop();
  if (!m) return 0;
  return (await fetch(`http://127.0.0.1:${m[1]}/readyz`)).status;
}

const droppedReadings = (a: AgentDir) => count(a, `SELECT coalesce(sum(value), 0) FROM counters WHERE name LIKE 'dropped_readings:%'`);

/**
 * Waits for the source to finish and the store to deliver everything, then checks every reading
 * arrived once; with `drops`, a reading that did not arrive must have been counted as dropped.
 */
async function verifyAll(t: TapTest, a: AgentDir, rec: Recorder, committed: ReadonlySet<string>, agent: RunningAgent, drops = false): Promise<void> {
  await waitFor(() => count(a, `SELECT coalesce(max(cursor), 0) FROM source_state WHERE device = 'sim-1'`) >= POLLS, 240_000, 'the source done', 500);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`) === 0, 240_000, 'everything delivered', 500);
  await waitFor(() => (checkCounters(telemetry(rec.messages)).counters.get('sim-1')?.length ?? 0) * 5 + droppedReadings(a) >= POLLS * 5, 120_000, 'every counter at the subscriber or counted as dropped', 500);
  t.equal(agent.proc.exitCode, null, 'the agent kept running');
  t.equal(await agent.stop(), 0, 'graceful stop');
  const check = checkCounters(telemetry(rec.messages));
  t.notMatch(agent.output(), /uncaught|Error:/i, 'nothing uncaught on stderr');
  const dropped = droppedReadings(a);
  if (!drops) {
    t.same(check.problems, [], 'counter contiguous from 1, no reading under two different keys');
    t.equal(check.counters.get('sim-1')?.length, POLLS, `all ${POLLS} counter values arrived`);
    const got = new Set(telemetry(rec.messages).map((m) => m.key));
    t.same([...committed].filter((k) => !got.has(k)), [], `all ${committed.size} batches committed before the failure reached the broker`);
    t.equal(dropped, 0, 'nothing dropped');
    return;
  }
  t.same(check.problems.filter((p) => !/counter gap/.test(p)), [], 'no reading under two different keys');
  const have = check.counters.get('sim-1')?.length ?? 0;
  t.equal((POLLS - have) * 5, dropped, `every counter value arrived (${have}) or its readings were counted as dropped (${dropped})`);
}

t.test('ext4 goes read-only mid-run (errors=remount-ro): spool, live data still sent, import after the repair', { skip: skip ?? false }, async (t) => {
  const fs = mountExt4(t, 16);
  const { rec, a } = await setup(t, join(fs.dir, 'data'), 'ext4');
  const agent = launchAgent(t, a);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 20, 60_000, 'live delivery', 250);
  await sleep(1000);
  fs.triggerError();
  await waitFor(() => lines(a, 'store unavailable').length > 0, 30_000, 'STORE_UNAVAILABLE logged', 100);
  const committed = new Set(keys(a)); // everything the store committed before the failure, as the page cache shows it
  t.match(lines(a, 'store unavailable')[0], /"code":"STORE_UNAVAILABLE","kind":"(readonly|io)"/, 'classified as a read-only or I/O failure');
  t.equal(await readyz(a), 503, '/readyz says not ready');
  const before = telemetry(rec.messages).length;
  await waitFor(() => telemetry(rec.messages).length > before + 10, 30_000, 'live data still reaching the broker (from the spool)', 250);
  t.ok(readdirSync(String(a.config.spoolDir)).some((f) => f.endsWith('.hfs')), 'batches in the spool');

  // Unmounted for a while: the folder under the mount point is another filesystem, where the
  // store must not start afresh (its spool would be imported there, then hidden by the mount).
  await fs.repair(6000);
  await waitFor(() => lines(a, 'store available again').length > 0, 120_000, 'the store back', 250);
  t.ok(lines(a, 'store still unavailable').some((l) => l.includes('on another filesystem')), 'while unmounted: not started afresh on the folder under the mount point');
  t.equal(await readyz(a), 200, '/readyz ready again');
  t.equal(count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'unavailable' AND code = 'STORE_UNAVAILABLE' AND ended_at IS NOT NULL`), 1, 'the outage recorded with its end');
  await verifyAll(t, a, rec, committed, agent);
  t.equal(lines(a, 'store available again').length, 1, 'one recovery, on the repaired disk');
  t.same(readdirSync(String(a.config.spoolDir)).filter((f) => f.endsWith('.hfs')), [], 'the spool is empty: imported');
});

t.test('the data directory is removed mid-run: noticed by inode, pending batches rescued, spooled, re-created and imported', async (t) => {
  const { broker, rec, a } = await setup(t, null, 'rmdir');
  const agent = launchAgent(t, a);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 20, 60_000, 'live delivery', 250);
  // A backlog at the moment of removal: only the files the agent holds open still have it.
  await broker.stop();
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) > 10, 60_000, 'a backlog', 250);
  const committed = new Set(keys(a));
  rmSync(a.dataDir, { recursive: true, force: true });
  await waitFor(() => lines(a, 'store unavailable').length > 0, 30_000, 'STORE_UNAVAILABLE logged', 50);
  t.match(lines(a, 'store unavailable')[0], /"kind":"vanished"/, 'classified as vanished');
  await waitFor(() => lines(a, 'store available again').length > 0, 60_000, 'the store re-created', 250);
  t.ok(existsSync(join(a.dataDir, 'holdfast.db')), 'a new database in a new data directory');
  const rescued = /"rescued":(\d+)/.exec(lines(a, 'rescued')[0] ?? '');
  t.ok(Number(rescued?.[1]) > 10, `the backlog rescued from the files held open (${rescued?.[1]} batches)`);
  await broker.start();
  await verifyAll(t, a, rec, committed, agent);
});

/** Fills the filesystem of `dir` with a file until ENOSPC; returns the file. */
function fill(dir: string): string {
  const f = join(dir, 'filler');
  const fd = openSync(f, 'w');
  const buf = Buffer.alloc(64 * 1024, 7);
  try {
    for (;;) writeSync(fd, buf);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    for (let n = 4096; n > 0; n >>= 1) {
      try {
        for (;;) writeSync(fd, buf, 0, n);
      } catch {
        // smaller pieces until not even one fits
      }
    }
  } finally {
    closeSync(fd);
  }
  return f;
}

t.test('another program fills the disk: ENOSPC, spool, a restart on the full disk stays up, import once the disk has room', { skip: skip ?? false }, async (t) => {
  const mnt = mountTmpfs(t, 8 * 1024 * 1024);
  const { rec, a } = await setup(t, join(mnt, 'data'), 'enospc');
  let agent = launchAgent(t, a);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 20, 60_000, 'live delivery', 250);
  const committed = new Set(keys(a));
  const filler = fill(mnt);
  await waitFor(() => lines(a, 'store unavailable').length > 0, 60_000, 'STORE_UNAVAILABLE logged', 100);
  t.match(lines(a, 'store unavailable')[0], /"kind":"full"/, 'classified as a full disk');
  for (const k of keys(a)) committed.add(k);
  const before = telemetry(rec.messages).length;
  await waitFor(() => telemetry(rec.messages).length > before + 10, 30_000, 'live data still reaching the broker', 250);

  // The restart loop of old: the agent stopped and started again on the full disk.
  t.equal(await agent.stop(), 0, 'graceful stop on a full disk');
  agent = launchAgent(t, a);
  await sleep(3000);
  t.equal(agent.proc.exitCode, null, 'the agent starts on a full disk and stays up');
  const mid = telemetry(rec.messages).length;
  await waitFor(() => telemetry(rec.messages).length > mid + 10, 30_000, 'and forwards live data', 250);
  t.equal(await readyz(a), 503, '/readyz 503 while the disk is full');

  const back = lines(a, 'store available again').length;
  unlinkSync(filler);
  await waitFor(() => lines(a, 'store available again').length > back, 120_000, 'the store back once the disk has room', 250);
  // A disk shared with another program counts as full too: drop-oldest may have dropped pending batches, each counted.
  await verifyAll(t, a, rec, committed, agent, true);
  t.equal(lines(a, 'holdfast starting').length, 2, 'started twice, by the test: no restart loop');
});
