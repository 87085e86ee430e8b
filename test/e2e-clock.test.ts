/**
 * Wall-clock steps through the whole agent, under libfaketime (test/helpers/faketime.ts): the
 * real agent process, a real Mosquitto, a Modbus TCP simulator, and a wall clock that NTP would
 * step while the agent runs. The monotonic clock is not faked.
 *
 *   - a clock a year ahead stepped back to now: the lane reconnects within its normal backoff,
 *     retries that were scheduled a year ahead come due, polling keeps its configured rate, no
 *     setTimeout overflow, nothing dead-lettered or lost;
 *   - a clock in 1970 stepped to now: tasks first tried in 1970 are not dead-lettered, no reading
 *     stamped 1970 is sent without the flag, the stored ones are re-based, the outage keeps its
 *     real length.
 */
import t from 'tap';
import { join } from 'node:path';
import { startBroker, waitFor, type Broker } from './helpers/mosquitto.js';
import { subscribe, type Recorder } from './helpers/mqtt-sub.js';
import { checkCounters, cli, count, diagnoseOnFailure, log, makeAgentDir, ROOT, startAgent, telemetry, withDb, type AgentDir } from './helpers/agent.js';
import { fakeTime, offsetTo } from './helpers/faketime.js';
import { simulate } from '../agent/cli/simulate.js';
import { CLOCK_FLOOR_MS } from '../agent/version.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const COUNTERS = 600;
const POLL_MS = 200;
const METER_POINTS = 16; // config/devices/generic-energy-meter.json
const YEAR_MS = 365 * 86_400_000;

interface Rig {
  a: AgentDir;
  broker: Broker;
  rec: Recorder;
  ft: ReturnType<typeof fakeTime>;
  agent: ReturnType<typeof startAgent>;
  startedAt: number;
}

async function rig(t: TapTest, initial: string, name: string): Promise<Rig> {
  const broker = await startBroker({ persistence: true });
  const sim = await simulate({ mode: 'modbus-tcp', port: 0, units: '1:meter', print: () => {} });
  const rec = await subscribe(broker.url, 'holdfast/#', { persistent: true, clientId: `rec-${name}` });
  const a = makeAgentDir(
    broker.url,
    {
      sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3, stopAfter: COUNTERS }],
      buses: [{
        name: 'plant', type: 'tcp', host: '127.0.0.1', tcpPort: sim.port, timeoutMs: 500,
        devices: [{ name: 'meter-1', unitId: 1, map: join(ROOT, 'config/devices/generic-energy-meter.json'), pollMs: POLL_MS }],
      }],
    },
    { ackTimeoutMs: 1000, retry: { baseMs: 100, maxMs: 1000, maxAgeMs: 120_000, maxAttempts: 1000 } },
  );
  const ft = fakeTime(a.dir, initial);
  const startedAt = Date.now();
  const agent = startAgent(a, ft.env);
  diagnoseOnFailure(t, a, agent);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await rec.close();
    await sim.close();
    broker.resume();
    await broker.stop();
  });
  return { a, broker, rec, ft, agent, startedAt };
}

/** The agent's HTTP port (it listens on port 0), from its log. */
const apiPort = (a: AgentDir) => Number(/"port":(\d+),"msg":"HTTP server/.exec(log(a))?.[1]);
const connected = (a: AgentDir) => count(a, `SELECT count(*) FROM link_state WHERE uplink = 'broker' AND connected = 1`) === 1;
const events = (a: AgentDir, kind: string) =>
  withDb(a, (db) => db.prepare(`SELECT started_at AS at, ended_at AS endedAt, duration_ms AS ms, detail FROM recovery_events WHERE kind = ? ORDER BY id`).all(kind)) as {
    at: number; endedAt: number | null; ms: number | null; detail: string | null;
  }[];

/**
 * Brings tasks into retry: the broker hangs (SIGSTOP) so that sends time out, then goes down
 * cleanly (its persistence keeps the recorder's session). Returns the latest stored retry time.
 */
async function failWhileConnected(r: Rig): Promise<number> {
  await waitFor(() => telemetry(r.rec.messages).length >= 3, 30_000, 'live telemetry');
  r.broker.pause();
  await waitFor(() => count(r.a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending' AND next_attempt_at > 0`) >= 3, 30_000, 'retries scheduled');
  const latest = count(r.a, `SELECT max(next_attempt_at) FROM recovery_tasks WHERE status = 'pending'`);
  r.broker.resume();
  await r.broker.stop();
  await waitFor(() => !connected(r.a), 30_000, 'the agent saw the link go down');
  return latest;
}

/** The simulated source's messages (its counter rises by one per poll; the meter's by one per read). */
const simulated = (rec: Recorder) => telemetry(rec.messages).filter((m) => m.device === 'sim-1');

/** Waits for every counter to be committed and every task delivered. */
async function drained(r: Rig): Promise<void> {
  await waitFor(
    () => count(r.a, `SELECT cursor FROM source_state WHERE device = 'sim-1'`) === COUNTERS &&
      count(r.a, `SELECT count(*) FROM recovery_tasks WHERE status <> 'delivered'`) === 0,
    120_000, 'every batch delivered',
  );
  await waitFor(() => (checkCounters(simulated(r.rec)).counters.get('sim-1')?.length ?? 0) === COUNTERS, 30_000, 'every counter at the subscriber');
}

t.test('a clock a year ahead, stepped back to now', async (t) => {
  const r = await rig(t, '+365d', 'ahead');
  const latest = await failWhileConnected(r);
  t.ok(latest > Date.now() + 300 * 86_400_000, `retries were stored a year ahead (${new Date(latest).toISOString()})`);

  r.ft.set('+0');
  const stepAt = Date.now();
  await waitFor(() => events(r.a, 'clock_step').length > 0, 30_000, 'the step recorded');
  const step = JSON.parse(events(r.a, 'clock_step')[0].detail!) as { stepMs: number };
  t.ok(Math.abs(step.stepMs + YEAR_MS) < 86_400_000, `clock_step event with its size (${step.stepMs} ms)`);
  const ahead = count(r.a, `SELECT max(next_attempt_at) FROM recovery_tasks WHERE status = 'pending'`);
  t.ok(ahead < Date.now() + 60_000, `stored retry times moved back with the clock (latest now ${ahead - Date.now()} ms ahead)`);

  await r.broker.start();
  const upFrom = performance.now();
  // The normal backoff here is at most retry.maxMs (1 s) or breaker.openMs (1 s, +-20 %); a year-long wait would never come.
  await waitFor(() => connected(r.a), 20_000, 'reconnected within the normal backoff');
  t.pass(`reconnected ${Math.round(performance.now() - upFrom)} ms after the broker came back`);
  await drained(r);

  t.equal(count(r.a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`), 0, 'nothing dead-lettered');
  const c = checkCounters(simulated(r.rec));
  t.same(c.problems, [], 'every counter once, in order, no gap');
  t.notMatch(r.agent.output(), /TimeoutOverflowWarning/, 'no setTimeout overflow');

  // Polling at its configured rate: never more polls than the grid has slots (the issue saw 750x).
  const elapsed = Date.now() - r.startedAt;
  const meter = count(r.a, `SELECT coalesce(sum(reading_count), 0) FROM payloads WHERE device = 'meter-1'`);
  const slots = elapsed / POLL_MS + 2;
  t.ok(meter <= METER_POINTS * slots, `meter readings ${meter} <= ${Math.round(METER_POINTS * slots)} (${POLL_MS} ms grid over ${elapsed} ms)`);
  const after = count(r.a, `SELECT coalesce(sum(reading_count), 0) FROM payloads WHERE device = 'meter-1' AND first_ts >= ?`, stepAt);
  t.ok(after > 0, `polling went on after the step (${after} readings stamped after it)`);
  t.ok(telemetry(r.rec.messages).every((m) => m.readings.every((x) => (x as { clock?: string }).clock === undefined)), 'a clock ahead is not below the floor: nothing flagged');
  await r.agent.stop();
});

t.test('a clock in 1970, stepped to now', async (t) => {
  const r = await rig(t, offsetTo(Date.UTC(1970, 0, 1, 1)), '1970');
  await failWhileConnected(r);
  const live = telemetry(r.rec.messages);
  t.ok(live.length > 0 && live.every((m) => m.readings.every((x) => x.ts < CLOCK_FLOOR_MS)), 'readings sent before the step are stamped 1970');
  t.ok(live.every((m) => m.readings.every((x) => (x as { clock?: string }).clock === 'unsynced' && typeof (x as { mono?: number }).mono === 'number')),
    'and every one of them carries clock=unsynced and its monotonic time');
  t.ok(count(r.a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending' AND first_attempt_at < ?`, CLOCK_FLOOR_MS) > 0, 'tasks were first tried in 1970');
  t.ok(count(r.a, `SELECT count(*) FROM clock_batches WHERE state = 'unsynced'`) > 0, 'the store flags batches holding unsynced readings');
  t.match(cli(['status', '--config', r.a.configFile]).stdout, /CLOCK NOT SYNCHRONISED \(CLOCK_UNSYNCED\)/, 'holdfast status says the clock is not synchronised');

  r.ft.set('+0');
  await waitFor(() => events(r.a, 'clock_step').length > 0, 30_000, 'the step recorded');
  const step = JSON.parse(events(r.a, 'clock_step')[0].detail!) as { stepMs: number };
  t.ok(step.stepMs > 50 * YEAR_MS, `clock_step event with its size (${Math.round(step.stepMs / YEAR_MS)} years)`);
  await waitFor(() => count(r.a, `SELECT count(*) FROM clock_batches WHERE state = 'unsynced'`) === 0, 30_000, 'stored unsynced batches re-based');
  t.ok(count(r.a, `SELECT count(*) FROM clock_batches WHERE state = 'rebased'`) > 0, 'batches never sent are rewritten with re-based times');
  t.ok(count(r.a, `SELECT count(*) FROM clock_batches WHERE state = 'kept'`) > 0, 'batches already tried are kept as sent (a re-send is the same bytes), flagged');
  t.equal(count(r.a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending' AND first_attempt_at < ?`, CLOCK_FLOOR_MS), 0, 'first attempts moved with the step');
  const st = JSON.parse(cli(['status', '--config', r.a.configFile, '--json']).stdout) as { clock: { unsyncedSince: number | null; lastStep: { stepMs: number }; batches: Record<string, unknown> } };
  t.ok(st.clock.unsyncedSince === null && st.clock.lastStep.stepMs > 50 * YEAR_MS && 'rebased' in st.clock.batches, 'holdfast status shows the step and the re-based readings');

  await r.broker.start();
  await waitFor(() => connected(r.a), 20_000, 'reconnected within the normal backoff');
  await drained(r);
  const now = Date.now();

  t.equal(count(r.a, `SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`), 0, 'no dead letter (no RETRY_LIMIT_EXCEEDED from a 56-year age)');
  const msgs = telemetry(r.rec.messages);
  const all = msgs.flatMap((m) => m.readings as { ts: number; clock?: string; point: string }[]);
  t.same(all.filter((x) => x.ts < CLOCK_FLOOR_MS && x.clock !== 'unsynced'), [], 'no reading stamped before the floor without the flag');
  const rebased = all.filter((x) => x.clock === 'rebased');
  t.ok(rebased.length > 0, `${rebased.length} readings arrived re-based`);
  t.same(rebased.filter((x) => x.ts < r.startedAt - 60_000 || x.ts > now + 60_000), [], 're-based times lie within the real run');
  t.same(checkCounters(simulated(r.rec)).problems, [], 'every counter once, in order, no gap');
  const outages = events(r.a, 'outage').filter((e) => e.endedAt !== null);
  t.ok(outages.length > 0 && outages.every((e) => e.ms !== null && e.ms >= 0 && e.ms < now - r.startedAt),
    `outages keep their real length (${outages.map((e) => e.ms).join(', ')} ms)`);
  const unsynced = events(r.a, 'unsynced');
  t.ok(unsynced.length === 1 && unsynced[0].ms !== null && unsynced[0].ms < now - r.startedAt, `the unsynchronised spell is one event of ${unsynced[0]?.ms} ms`);
  t.notMatch(r.agent.output(), /TimeoutOverflowWarning/, 'no setTimeout overflow');
  const metrics = await (await fetch(`http://127.0.0.1:${apiPort(r.a)}/metrics`)).text();
  t.match(metrics, /holdfast_clock_steps_total\{direction="forward"\} 1\n/, 'the step is counted');
  t.match(metrics, /holdfast_clock_synced 1\n/, 'the clock is synchronised now');
  t.match(metrics, /holdfast_unsynced_readings_total\{outcome="flagged"\} [1-9]/, 'flagged readings counted');
  t.match(metrics, /holdfast_unsynced_readings_total\{outcome="rebased_stored"\} [1-9]/, 're-based stored readings counted');
  await r.agent.stop();
});
