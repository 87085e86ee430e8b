/**
 * Disk full, on a real small filesystem: the data directory on a 4 MiB tmpfs the test mounts, a
 * real Mosquitto stopped for a long outage. For each `store.fullPolicy` (drop-oldest,
 * downsample, reject-new) the outage fills the disk; the agent raises STORAGE_FULL, applies the
 * policy and goes on polling (the source cursor keeps moving) in the one process it started as
 * (no restart loop); when the broker is back it forwards live data and drains the kept backlog.
 * At the end every reading produced is accounted for: delivered (a summary counting as one), or
 * counted as dropped by uplink and reason (holdfast status, /metrics, the faults topic), with
 * nothing delivered twice under different keys.
 *
 * Skipped, with the reason, only where mounting is impossible (not root).
 */
import t from 'tap';
import { startBroker, waitFor, type Broker } from './helpers/mosquitto.js';
import { subscribe, type Recorder } from './helpers/mqtt-sub.js';
import { checkCounters, cli, count, launchAgent, log, makeAgentDir, telemetry, withDb, type AgentDir } from './helpers/agent.js';
import { mountSkip, mountTmpfs } from './helpers/mount.js';

const POINTS = 50;
const POLLS = 30_000; // 1.5 million readings, several times what the disk holds
const FS_BYTES = 4 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = mountSkip();
if (skip) t.comment(`skipped: ${skip}`);

interface Summary {
  point: string;
  count?: number;
  min?: number;
  max?: number;
  value: number;
}

function counters(a: AgentDir): Record<string, number> {
  return withDb(a, (db) => Object.fromEntries((db.prepare('SELECT name, value FROM counters').all() as { name: string; value: number }[]).map((c) => [c.name, c.value])));
}

function dropped(c: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith('dropped_readings:')));
}

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

async function run(t: TapTest, policy: 'drop-oldest' | 'downsample' | 'reject-new'): Promise<void> {
  const mnt = mountTmpfs(t, FS_BYTES);
  const broker: Broker = await startBroker({ persistence: true });
  const rec: Recorder = await subscribe(broker.url, 'holdfast/gw-test/#', { persistent: true, clientId: `rec-full-${policy}` });
  const a = makeAgentDir(broker.url, {
    dataDir: `${mnt}/data`,
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 1, points: POINTS, stopAfter: POLLS }],
    batch: { maxReadings: 500, maxAgeMs: 200 },
    store: { fullPolicy: policy, downsampleMs: 1000 },
  });
  const agent = launchAgent(t, a, async () => {
    await rec.close();
    await broker.stop();
  });
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 0, 60_000, 'live delivery before the outage', 250);
  await broker.stop();
  const cursorAtOutage = count(a, `SELECT cursor FROM source_state WHERE device = 'sim-1'`);

  // The outage fills the disk; the policy applies, more than once.
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'storage_full'`) > 0, 120_000, 'STORAGE_FULL raised', 250);
  const cursorAtFull = count(a, `SELECT cursor FROM source_state WHERE device = 'sim-1'`);
  const reason = policy === 'drop-oldest' ? 'oldest' : policy === 'downsample' ? 'downsampled' : 'rejected';
  await waitFor(() => (counters(a)[`dropped_readings:broker:${reason}`] ?? 0) > 0, 120_000, `readings dropped (${reason})`, 250);
  await sleep(3000);
  t.ok(count(a, `SELECT cursor FROM source_state WHERE device = 'sim-1'`) > cursorAtFull, 'polling goes on while the store is full (the cursor moves)');
  t.equal(agent.proc.exitCode, null, 'the agent is still running: no crash, no restart loop');
  const st = JSON.parse(cli(['status', '--config', a.configFile, '--json']).stdout) as { storage: { full: boolean; usedBytes: number; budgetBytes: number } | null; counters: Record<string, number> };
  t.ok((st.counters[`dropped_readings:broker:${reason}`] ?? 0) > 0, `holdfast status shows the ${reason} drops`);
  t.ok(st.storage && st.storage.usedBytes > 0 && st.storage.budgetBytes > 0, 'and the space used against the budget');

  // The broker is back: live data flows again while the kept backlog drains.
  await broker.start();
  await waitFor(() => count(a, `SELECT cursor FROM source_state WHERE device = 'sim-1'`) >= POLLS, 300_000, 'the source is done', 500);
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status != 'delivered'`) === 0, 300_000, 'the kept backlog delivered', 500).catch((e: Error) => {
    const left = withDb(a, (db) => db.prepare(
      `SELECT status, last_error_code AS code, retry_count AS retries, count(*) AS tasks, min(next_attempt_at) AS due FROM recovery_tasks WHERE status != 'delivered' GROUP BY 1, 2, 3`,
    ).all());
    return apiStatus(a).then((st) => {
      throw new Error(`${e.message}; left: ${JSON.stringify(left)}; lanes: ${JSON.stringify(st?.lanes)}; log tail: ${log(a).split('\n').slice(-15).join('\n')}`);
    });
  });
  const keys = count(a, 'SELECT count(*) FROM payloads');
  await waitFor(() => telemetry(rec.messages).filter((m) => !m.historical).length > 0, 60_000, 'live (not historical) data after the outage', 250);
  const metrics = await fetchMetrics(a);
  t.equal(await agent.stop(), 0, 'graceful stop');
  t.equal(log(a).split('\n').filter((l) => l.includes('"holdfast starting"')).length, 1, 'one start in the log: never restarted');
  t.notMatch(agent.output(), /Error|uncaught/i, 'nothing on stderr');

  const c = counters(a);
  const drops = dropped(c);
  const msgs = telemetry(rec.messages);
  // Summaries (downsample) carry the counter point too, with a mean for value: checked on their own below.
  const isSummary = (r: unknown) => typeof (r as { count?: unknown }).count === 'number';
  const check = checkCounters(msgs.map((m) => ({ ...m, readings: m.readings.filter((r) => !isSummary(r)) })));
  t.same(check.problems.filter((p) => !/counter gap/.test(p)), [], 'no reading delivered twice under different keys');
  const seen = new Map<string, number>();
  for (const m of msgs) seen.set(`${m.key}#${m.part ?? 1}`, m.readings.length);
  const delivered = [...seen.values()].reduce((x, y) => x + y, 0);
  const droppedTotal = Object.values(drops).reduce((x, y) => x + y, 0);
  t.ok(droppedTotal > 0, `readings dropped: ${JSON.stringify(drops)}`);
  t.equal(delivered + droppedTotal, POLLS * POINTS, `every reading accounted for: ${delivered} delivered + ${droppedTotal} counted as dropped = ${POLLS * POINTS}`);
  t.ok(Object.keys(drops).every((k) => k.startsWith('dropped_readings:broker:')), 'counted by uplink');
  t.ok(keys > 0 && seen.size >= keys, 'every stored batch reached the subscriber');
  for (const [k, v] of Object.entries(drops)) {
    const [, uplink, why] = k.split(':');
    t.equal(metricValue(metrics, 'holdfast_dropped_readings_total', { uplink, reason: why }), v, `/metrics: ${k}`);
  }
  const faults = rec.messages.filter((m) => m.topic === 'holdfast/gw-test/faults').map((m) => JSON.parse(m.payload.toString()) as { type: string; code: string; reason?: string });
  t.ok(faults.some((f) => f.type === 'store' && f.code === 'STORAGE_FULL'), 'STORAGE_FULL on the faults topic');
  t.ok(faults.some((f) => f.type === 'drop' && f.reason === reason), 'and the drops');
  t.equal(count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'drop'`) > 0, true, 'drop events in recovery_events');

  // What each policy keeps: the newest data (drop-oldest, downsample) or the oldest (reject-new).
  const raw = (check.counters.get('sim-1') ?? []) as number[];
  const summaries = msgs.flatMap((m) => m.readings as unknown as Summary[]).filter((r) => r.point === 'counter' && isSummary(r));
  if (policy === 'downsample') {
    t.ok(summaries.length > 0, `${summaries.length} counter summaries delivered`);
    t.ok(summaries.every((s) => s.min! <= s.value && s.value <= s.max! && s.count! <= s.max! - s.min! + 1), 'each counter summary: min <= mean <= max, count within the range');
    const merged = summaries.reduce((n, s) => n + s.count!, 0);
    // Under downsample only files of summaries are dropped (as oldest): then the values they stood for are gone too.
    if ((drops['dropped_readings:broker:oldest'] ?? 0) === 0) t.equal(raw.length + merged, POLLS, `every counter value delivered (${raw.length}) or merged into a summary (${merged})`);
    else t.ok(raw.length + merged < POLLS, 'summaries dropped as oldest: their values are gone, counted as dropped readings');
  } else {
    t.equal(summaries.length, 0, 'no summaries');
    t.equal((POLLS - raw.length) * POINTS, drops[`dropped_readings:broker:${reason}`], 'the missing counter values are exactly the dropped readings');
    const have = new Set(raw);
    const missing = Array.from({ length: POLLS }, (_, i) => i + 1).filter((v) => !have.has(v));
    t.ok(have.has(POLLS), 'the last readings (after the outage) delivered');
    // drop-oldest takes the oldest stored data first: what was pending when the outage began.
    // reject-new keeps everything stored and refuses new batches once full: the disk filled first.
    if (policy === 'reject-new') t.ok(missing[0] > cursorAtOutage + 1000, `the stored backlog kept: the first refused counter (${missing[0]}) came long after the outage began (${cursorAtOutage})`);
    else t.ok(missing[0] <= cursorAtOutage + 1000, `the oldest pending data dropped first: the first missing counter (${missing[0]}) is where the outage began (${cursorAtOutage})`);
  }
}

async function apiStatus(a: AgentDir): Promise<{ lanes?: unknown } | null> {
  const m = /"port":(\d+)/.exec(log(a));
  return m ? ((await (await fetch(`http://127.0.0.1:${m[1]}/api/status`)).json()) as { lanes?: unknown }) : null;
}

async function fetchMetrics(a: AgentDir): Promise<string> {
  const m = /"port":(\d+)/.exec(log(a));
  if (!m) return '';
  const r = await fetch(`http://127.0.0.1:${m[1]}/metrics`);
  return r.text();
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

for (const policy of ['drop-oldest', 'downsample', 'reject-new'] as const) {
  t.test(`a long outage fills a 4 MiB tmpfs: ${policy}`, { skip: skip ?? false }, async (t) => run(t, policy));
}
