/**
 * The fleet recovery benchmark (issue 17): N simulated gateways, each the agent's real Engine with
 * its own store, client id and MQTT connection, against one local Mosquitto behind a counting
 * proxy; the broker stopped for T seconds, then restored; one phase per strategy, in turn.
 *
 *   npm run bench:fleet -- --gateways 500 --outage-s 60
 *
 * Options: --gateways N (500) --outage-s T (60) --workers W (ceil(N / 250)) --messages-per-sec r
 * (per-gateway drain rate of the limited rows: 2) --batch-ms (a gateway's live rate: one batch per
 * 1000 ms) --strategies a,b (all) --start-jitter-ms / --reconnect-max-ms / --open-ms (a default under test,
 * applied to the limited rows) --max-drain-s (300) --out DIR (dist/fleet-results).
 * Prints the table; writes results.json, fleet.svg and fleet.png to --out. Always exits 0 unless
 * it cannot run at all. docs/fleet.md explains every figure.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKey } from '../../../store/codec.js';
import { fleetBroker } from './broker.js';
import { CountingProxy } from './proxy.js';
import { Subscriber } from './subscriber.js';
import { STRATEGY_NAMES, strategy, type StrategyName } from './strategies.js';
import { runPhase } from './phase.js';
import { summarize, tableText, type PhaseInput } from './stats.js';
import { writeChart } from './chart.js';
import { fakeSysfs } from './gateway.js';

function args(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--')) m.set(argv[i].slice(2), argv[i + 1] ?? '');
  return m;
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const num = (k: string, d: number) => (a.has(k) && Number.isFinite(Number(a.get(k))) ? Number(a.get(k)) : d);
  const gateways = num('gateways', 500);
  const outageS = num('outage-s', 60);
  const workers = num('workers', Math.max(1, Math.ceil(gateways / 250)));
  const messagesPerSec = num('messages-per-sec', 2);
  const batchMs = num('batch-ms', 1000);
  const out = path.resolve(a.get('out') ?? 'dist/fleet-results');
  const names = (a.get('strategies')?.split(',') ?? [...STRATEGY_NAMES]) as StrategyName[];
  for (const n of names) if (!STRATEGY_NAMES.includes(n)) throw new Error(`unknown strategy ${n}: one of ${STRATEGY_NAMES.join(', ')}`);
  const overrides: Record<string, Record<string, unknown>> = {};
  if (a.has('start-jitter-ms')) overrides.drain = { startJitterMs: num('start-jitter-ms', 1000) };
  if (a.has('reconnect-max-ms')) overrides.retry = { reconnectMaxMs: num('reconnect-max-ms', 3000) };
  if (a.has('open-ms')) overrides.breaker = { openMs: num('open-ms', 3000) };

  const dir = mkdtempSync(path.join(os.tmpdir(), 'holdfast-fleet-'));
  const keyFile = path.join(dir, 'key');
  generateKey(keyFile, 'k1');
  const sysfsRoot = fakeSysfs(path.join(dir, 'sysfs'));
  mkdirSync(out, { recursive: true });
  const broker = await fleetBroker();
  const proxy = new CountingProxy(broker.port);
  const proxyPort = await proxy.listen();
  const sub = new Subscriber(broker.url);
  await sub.connect();
  const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const budget = gateways * (messagesPerSec + 1000 / batchMs);
  log(`fleet: ${gateways} gateways in ${workers} worker processes, outage ${outageS} s, live 1 batch / ${batchMs} ms a gateway, drain.messagesPerSec ${messagesPerSec} (fleet budget ${budget} msg/s)${Object.keys(overrides).length ? `, under test: ${JSON.stringify(overrides)}` : ''}`);
  const phases: PhaseInput[] = [];
  const started = Date.now();
  try {
    for (const n of names) {
      let p: PhaseInput;
      try {
        p = await runPhase(strategy(n, messagesPerSec, overrides), {
          gateways, workers, outageS, batchMs, messagesPerSec, dir, keyFile, sysfsRoot, proxyUrl: `mqtt://127.0.0.1:${proxyPort}`,
          maxDrainS: num('max-drain-s', 300), log,
        }, broker, proxy, sub);
      } catch (e) {
        log(`  ${n}: FAILED: ${String(e)}`);
        if (!broker.running) await broker.start();
        continue;
      }
      phases.push(p);
      rmSync(path.join(dir, n), { recursive: true, force: true });
      const r = summarize(p);
      log(`  ${n}: peak ${r.peakPublish} publishes/s (${r.peakXBudget.toFixed(2)} x budget), peak ${r.peakConnect} CONNECTs/s after the restore, ${r.outageConnectPerS.toFixed(1)}/s during the outage, drain ${r.drainS === null ? 'not finished' : `${r.drainS.toFixed(1)} s (${r.drainXIdeal?.toFixed(2)} x ideal ${p.idealS.toFixed(1)} s)`}`);
      writeFileSync(path.join(out, 'results.json'), JSON.stringify({ partial: true, phases }, null, 1));
      log(`  ${n}: lost ${p.lost}, duplicates ${p.duplicates}, dead-lettered ${p.failed}, still pending ${p.leftPending}, loop lag p99 ${p.lagP99Ms.toFixed(0)} ms (max ${p.lagMaxMs.toFixed(0)})`);
    }
  } finally {
    sub.close();
    await proxy.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = phases.map(summarize);
  const ideal = phases.find((p) => p.strategy === 'holdfast')?.idealS ?? phases[0]?.idealS ?? 0;
  const text = tableText(rows, budget, ideal);
  console.log(`\n${text}\n\nwall time ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const params = { gateways, outageS, workers, messagesPerSec, batchMs, overrides, budget, node: process.version, cpus: os.cpus().length };
  writeFileSync(path.join(out, 'results.json'), JSON.stringify({ params, rows, phases }, null, 1));
  writeFileSync(path.join(out, 'table.md'), text + '\n');
  try {
    await writeChart(phases, budget, `${gateways} gateways, ${outageS} s outage`, path.join(out, 'fleet.svg'), path.join(out, 'fleet.png'));
    console.log(`chart: ${path.join(out, 'fleet.svg')} and fleet.png; data: results.json`);
  } catch (e) {
    console.log(`chart not drawn: ${String(e)}`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
