/**
 * The guided demo, `bash scripts/demo.sh tour`: about two minutes that tell the product's story
 * with the agent's own `holdfast status`, and end with a verdict counted from the store and from
 * a subscriber on the broker. Exits 1 if a committed reading is missing or one was duplicated.
 *
 *   node dist/scripts/tour.js [--dir DIR] [--live-s 15] [--outage-s 40] [--kill-after-s 8] [--rate 2]
 *
 * The drain rate is set low (drain.messagesPerSec = 2, production's default is 50) so that a
 * 40-second outage leaves a backlog that takes long enough to drain to be watched, and killed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { runIfMain } from './run-main.js';
import { Broker, freePort, Proc, Recorder, sleep, waitUntil } from './tour-rig.js';
import { drainRate, longestLiveGap, verdict, type StoredBatch } from './tour-verdict.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/agent/cli/main.js');
const MARK = '.holdfast-tour';
const GATEWAY = 'tour-gw';
const UPLINK = 'broker';

interface Status {
  uplinks: { uplink: string; connected: boolean; breaker: string; pending: { tasks: number; readings: number }; delivered: { tasks: number } }[];
}

export async function tour(argv: string[], say: (s: string) => void = console.log): Promise<boolean> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', default: join(ROOT, 'var/tour') },
      'live-s': { type: 'string', default: '15' },
      'outage-s': { type: 'string', default: '40' },
      'kill-after-s': { type: 'string', default: '8' },
      rate: { type: 'string', default: '2' },
    },
  });
  const dir = resolve(o.dir);
  const [liveS, outageS, killAfterS, rate] = [o['live-s'], o['outage-s'], o['kill-after-s'], o.rate].map(Number);
  if (![liveS, outageS, killAfterS, rate].every((n) => Number.isFinite(n) && n > 0)) throw new Error('tour: durations and --rate must be positive numbers');
  // Only ever wipe a folder that a tour made.
  if (existsSync(dir) && !existsSync(join(dir, MARK))) throw new Error(`tour: ${dir} exists and is not a tour folder; pass --dir`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'broker'), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, MARK), '');

  const t0 = Date.now();
  const clock = () => `${String(Math.round((Date.now() - t0) / 1000)).padStart(3)}s`;
  const [brokerPort, simPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const cfgFile = writeConfig(dir, brokerPort, simPort, apiPort, rate);
  const cli = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const status = () => JSON.parse(cli('status', '--config', cfgFile, '--json')) as Status;
  const link = () => status().uplinks.find((u) => u.uplink === UPLINK)!;
  const show = () => say(`    holdfast status at ${clock().trim()}:\n` + cli('status', '--config', cfgFile).trimEnd().split('\n').map((l) => `    | ${l}`).join('\n'));
  const step = (n: number, title: string, text: string) => say(`\n[${clock()}] ${n}/6 ${title}\n${text}`);

  cli('keygen', '--out', join(dir, 'keys/holdfast.key'));
  const broker = new Broker(join(dir, 'broker'), brokerPort);
  const sim = new Proc('simulator', process.execPath, [CLI, 'simulate', 'modbus-tcp', '--port', String(simPort), '--units', '1:meter,2:sunspec-inverter'], join(dir, 'simulator.out'));
  // The memory settings production uses (docs/operations.md).
  const agentEnv = { ...process.env, MALLOC_ARENA_MAX: '1', NODE_OPTIONS: '--max-semi-space-size=2' };
  const newAgent = () => new Proc('agent', process.execPath, [CLI, 'run', '--config', cfgFile], join(dir, 'agent.out'), agentEnv);
  const recorder = new Recorder(broker.url, `holdfast/${GATEWAY}`, t0);

  step(1, 'live', `A Modbus TCP simulator (a meter and a SunSpec inverter) on port ${simPort}, a private Mosquitto on ${brokerPort},\n` +
    `a subscriber that records what the broker hands out, and the agent (data in ${dir}).\nReadings are delivered as they are polled, for ${liveS} s:`);
  await broker.start();
  await recorder.start();
  sim.start();
  let agent = newAgent();
  agent.start();
  await waitUntil(() => existsSync(join(dir, 'data/holdfast.db')) && link()?.connected === true, 30_000, 'the agent to connect');
  await sleep(liveS * 1000);
  show();

  step(2, 'outage', `The broker is stopped for ${outageS} s. Readings pile up in the store as pending; the breaker opens\n` +
    'once breaker.minCalls connection attempts in its window have failed, and reconnects back off with jitter.');
  await broker.stop();
  const outageFrom = Date.now() - t0;
  await sleep(outageS * 1000);
  const out = link();
  show();

  step(3, 'recovery', `The broker is back. After a random delay (drain.startJitterMs) the backlog drains at\n` +
    `drain.messagesPerSec = ${rate}, oldest first, marked historical; live readings go first, never rate-limited.`);
  await broker.start();
  const recoveredAt = Date.now() - t0;
  await waitUntil(() => recorder.messages.some((m) => m.historical && m.at > recoveredAt), 60_000, 'the drain to start');
  await sleep(killAfterS * 1000);
  show();
  for (const b of breakerEvents(join(dir, 'data/holdfast.db'))) say(`    breaker ${b.transition} at ${Math.round((b.at - t0) / 1000)}s`);

  const atKill = link().pending.tasks;
  step(4, 'kill -9', `The agent is killed mid-drain (SIGKILL: no shutdown code runs), with ${atKill} batches still pending,\nand started again.`);
  await agent.stop('SIGKILL');
  const killedAt = Date.now() - t0;
  agent = newAgent();
  agent.start();
  await waitUntil(() => link()?.connected === true, 30_000, 'the restarted agent to connect');

  step(5, 'drain', 'The restarted agent picks up where the store says it was. The field is switched off once the\nbacklog is gone, so that the count can close (hence the field faults below).');
  const drainTimeout = 60_000 + (out.pending.tasks / rate) * 2000;
  await waitUntil(() => link().pending.tasks === 0, drainTimeout, 'the backlog to drain');
  const drainedAt = Date.now() - t0;
  await sim.stop();
  // Let the last polled readings be committed and delivered, then hold the store still.
  await sleep(3000);
  await waitUntil(() => link().pending.tasks === 0, 30_000, 'the last live batches');
  show();
  const stored = storedBatches(join(dir, 'data/holdfast.db'));
  await waitUntil(() => stored.filter((b) => b.status === 'delivered').every((b) => recorder.messages.some((m) => m.key === b.key)), 10_000, 'the recorder to catch up').catch(() => {});
  await agent.stop('SIGTERM');
  await recorder.close();
  await broker.stop();

  const v = verdict(stored, recorder.messages);
  const r1 = drainRate(recorder.messages, recoveredAt, killedAt, rate);
  const r2 = drainRate(recorder.messages, killedAt, drainedAt, rate);
  const firstHistorical = recorder.messages.find((m) => m.historical && m.at > recoveredAt)?.at ?? recoveredAt;
  const gap = longestLiveGap(recorder.messages, firstHistorical, killedAt);
  const fmtRate = (r: ReturnType<typeof drainRate>) => (r ? `${r.messages} historical messages, paced at ${r.perSec.toFixed(2)}/s after the first bucketful` : 'too few to time');
  step(6, 'verdict', [
    `  outage                 ${((recoveredAt - outageFrom) / 1000).toFixed(0)} s, backlog at its peak ${out.pending.tasks} batches`,
    `  drain before the kill  ${fmtRate(r1)} (configured ${rate}/s)`,
    `  drain after restart    ${fmtRate(r2)} (configured ${rate}/s)`,
    `  live during the drain  the longest gap between two live messages while the backlog drained: ${gap === null ? '-' : `${(gap / 1000).toFixed(1)} s`}`,
    `  produced (committed)   ${v.committedReadings} readings in ${v.committedBatches} batches`,
    `  delivered (store)      ${v.deliveredReadings} readings; pending ${v.pendingReadings}, dead-lettered ${v.failedReadings}`,
    `  received (subscriber)  ${v.receivedReadings} readings in ${v.receivedBatches} batches (${v.historicalMessages} historical, ${v.liveMessages} live)`,
    `  re-sent (same key)     ${v.resentMessages} (QoS 1 is at-least-once; a consumer drops them by key)`,
    `  duplicates             ${v.duplicateReadings}`,
    `  missing                ${v.missingReadings} readings in ${v.missingBatches} batches${v.unknownBatches ? `; ${v.unknownBatches} unknown keys received` : ''}`,
    '',
    v.ok ? `VERDICT: OK: every committed reading reached the broker, none twice (${clock().trim()})` : 'VERDICT: FAIL: see above',
    'Readings polled but not yet committed when the agent was killed (at most batch.maxAgeMs + store.commitIntervalMs)',
    `are not in either count: nothing had acknowledged them. Logs and data: ${dir}`,
  ].join('\n'));
  return v.ok;
}

function writeConfig(dir: string, brokerPort: number, simPort: number, apiPort: number, rate: number): string {
  const demo = JSON.parse(readFileSync(join(ROOT, 'config/demo.json'), 'utf8'));
  const cfg = {
    ...demo,
    gatewayId: GATEWAY,
    dataDir: join(dir, 'data'),
    logFile: join(dir, 'log/engine.log'),
    spoolDir: join(dir, 'cache'),
    store: { ...demo.store, keyFile: join(dir, 'keys/holdfast.key') },
    uplinks: demo.uplinks.map((u: { drain?: object }) => ({ ...u, name: UPLINK, url: `mqtt://127.0.0.1:${brokerPort}`, drain: { ...u.drain, messagesPerSec: rate } })),
    buses: demo.buses.map((b: { devices: { map: string }[] }) => ({
      ...b,
      tcpPort: simPort,
      devices: b.devices.map((d) => ({ ...d, map: d.map === 'sunspec' ? d.map : join(ROOT, 'config', d.map) })),
    })),
    api: { ...demo.api, port: apiPort },
  };
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

function query<T>(dbFile: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

const storedBatches = (dbFile: string) => query<StoredBatch>(dbFile, `SELECT p.batch_key AS key, p.device, p.reading_count AS readings, t.status
  FROM payloads p JOIN recovery_tasks t ON t.payload_id = p.id WHERE t.uplink = ?`, UPLINK);

/** The breaker's transitions as the agent recorded them (recovery_events). */
function breakerEvents(dbFile: string): { at: number; transition: string }[] {
  const rows = query<{ at: number; detail: string | null }>(dbFile, `SELECT started_at AS at, detail FROM recovery_events
    WHERE scope = 'uplink' AND subject = ? AND kind = 'breaker' ORDER BY id`, UPLINK);
  return rows.map((r) => ({ at: r.at, transition: String((JSON.parse(r.detail ?? '{}') as { transition?: string }).transition ?? 'reset') }));
}

runIfMain(import.meta.url, async () => {
  if (!(await tour(process.argv.slice(2)))) process.exit(1);
});
