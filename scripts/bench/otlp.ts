/**
 * OTLP drain benchmark: readings/s a real Lane + OTLP driver drains from a real store to a local
 * gRPC collector, beside a raw OTLPMetricExporter.export() loop sending the same content in the
 * same run. runOtlpBench() returns rows for scripts/bench/bench.ts's summary (BENCH_ONLY=otlp runs it
 * alone there) and prints its round-by-round lines through `say`; run alone it prints both:
 *
 *   node --expose-gc dist/scripts/bench/otlp.js
 *
 * Holdfast: BENCH_OTLP_READINGS readings (50 meters x 10-point polls, batches of 500) ingested
 *   through Ingest -> Outbox (AES-256-GCM, as the agent stores them), then drained by a Lane
 *   with the driver createDriver() makes for an otlp uplink (defaults: gzip, 4 exports in
 *   flight), read-ahead worker included, to the collector; timed from lane.start() (connect
 *   included) to every outcome flushed to the store.
 * Limit: OTLPMetricExporter (@opentelemetry/exporter-metrics-otlp-grpc, OpenTelemetry's own
 *   exporter) export()ing the ResourceMetrics of the same batches, built beforehand by the
 *   driver's own batchToResourceMetrics (so the same bytes go out), same compression, the same
 *   window of exports in flight (kept by the loop); timed from the first
 *   export (connect included) to the last callback. The exporter serialises inside export(),
 *   so both sides pay the protobuf encoding; the limit skips the store, decryption, inflate,
 *   JSON parsing and building the ResourceMetrics, which the lane does for every batch.
 * The collector (scripts/bench/otlp-collector.ts) is a child process that acks without
 * decoding; it counts requests and bytes, and every round checks both sides sent all batches
 * and the same bytes. Rounds alternate raw and lane; the best of each and the medians are
 * printed. There is no target for this figure: it is printed as measured.
 *
 * Env: BENCH_OTLP_READINGS (default 500000), BENCH_OTLP_ROUNDS (3), BENCH_OTLP_WINDOW (the otlp
 * uplink's maxInflight default, 4), BENCH_OTLP_COMPRESSION (the default, gzip; or none).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { pino } from 'pino';
import { buildConfig } from '../../agent/config/load.js';
import type { Config } from '../../agent/config/types.js';
import { Ingest } from '../../agent/ingest.js';
import { Lane } from '../../agent/forward/lane.js';
import { createDriver, loadDrivers } from '../../agent/uplinks.js';
import { batchToResourceMetrics } from '../../drivers/otlp/model.js';
import { generateKey, loadKeyring, PayloadCodec } from '../../store/codec.js';
import { openDb } from '../../store/db.js';
import { Store } from '../../store/store.js';
import { makePoll, POINTS_PER_POLL, prng } from './rss.js';

/** A row of bench.ts's summary table (same shape). */
export interface OtlpRow {
  figure: string;
  holdfast: string;
  limit: string;
  ratio: string;
  target: string;
  verdict: string;
}

const envInt = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : def;
};
const DEVICES = 50;
const BATCH = 500;
const READINGS = Math.ceil(envInt('BENCH_OTLP_READINGS', 500_000) / (DEVICES * BATCH)) * DEVICES * BATCH;
const ROUNDS = envInt('BENCH_OTLP_ROUNDS', 3);
const UPLINK = 'bench-otlp';
const GATEWAY = 'bench-gw';
const here = path.dirname(fileURLToPath(import.meta.url));
const COLLECTOR = path.resolve(here, 'otlp-collector.js');

const silent = pino({ level: 'silent' });
const now = () => performance.now();
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const pct = (n: number) => `${Math.round(n * 100)}%`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Run { ms: number; cpuMs: number; batches: number; readings: number; perSec: number }
interface Stats { requests: number; empty: number; bytes: number }

/** The collector child: its port, and its counts on request. */
class Collector {
  private constructor(private readonly child: ChildProcess, private readonly lines: Interface, readonly url: string) {}

  static async start(): Promise<Collector> {
    const child = spawn(process.execPath, [COLLECTOR], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`collector exited (${code})`)));
    });
    return new Collector(child, lines, `http://127.0.0.1:${(JSON.parse(first) as { port: number }).port}`);
  }

  private ask<T>(cmd: string): Promise<T> {
    const p = new Promise<T>((resolve) => this.lines.once('line', (l) => resolve(JSON.parse(l) as T)));
    this.child.stdin!.write(`${cmd}\n`);
    return p;
  }

  stats(): Promise<Stats> {
    return this.ask<Stats>('stats');
  }

  async reset(): Promise<void> {
    await this.ask('reset');
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

/** The bench's config; window and compression left out take the otlp uplink's defaults. */
function config(dir: string, keyFile: string, url: string, window?: number, compression?: string): Config {
  return buildConfig({
    gatewayId: GATEWAY, dataDir: path.join(dir, 'data'), logFile: '-', spoolDir: path.join(dir, 'cache'),
    store: { encryption: 'aes-256-gcm', keyFile, keyId: 'k1' },
    batch: { maxReadings: BATCH, maxAgeMs: 1000 },
    uplinks: [{
      name: UPLINK, type: 'otlp', url, timeoutMs: 60000,
      ...(window === undefined ? {} : { maxInflight: window }), ...(compression === undefined ? {} : { compression }),
      drain: { startJitterMs: 0, readingsPerSec: 1_000_000_000, messagesPerSec: 1_000_000_000 },
    }],
  });
}

/** READINGS readings through the agent's write path into a fresh store. */
function fill(cfg: Config, codec: PayloadCodec): Store {
  const store = Store.on(openDb(cfg.dataDir, { create: true, synchronous: cfg.store.synchronous, busyTimeoutMs: cfg.store.busyTimeoutMs }));
  const ingest = new Ingest(store.outbox([UPLINK]), codec, cfg.batch, cfg.store, silent, () => {});
  const rand = prng(1);
  for (let n = 0; n < READINGS / DEVICES / POINTS_PER_POLL; n++) {
    for (let d = 0; d < DEVICES; d++) {
      const p = makePoll(d, n, rand);
      while (!ingest.offer(p.device, p.readings, p.cursor)) ingest.tick();
    }
    if ((n + 1) % (BATCH / POINTS_PER_POLL) === 0) ingest.tick();
  }
  ingest.tick(true);
  return store;
}

/** The ResourceMetrics the driver builds for every stored batch (the limit's input). */
function buildAll(store: Store, codec: PayloadCodec): ResourceMetrics[] {
  const q = store.tasks(UPLINK);
  const out: ResourceMetrics[] = [];
  for (let after = 0; ;) {
    const rows = q.fresh(after, Number.MAX_SAFE_INTEGER, 1000);
    if (rows.length === 0) return out;
    for (const t of rows) {
      const readings = JSON.parse(codec.decode(t.payload, t.key).toString('utf8')) as unknown;
      out.push(batchToResourceMetrics(readings, { gatewayId: GATEWAY, hardwareProfile: 'generic-linux' }).resourceMetrics);
    }
    after = rows[rows.length - 1].id;
  }
}

function resetTasks({ db }: Store): void {
  db.prepare(`UPDATE recovery_tasks SET status = 'pending', retry_count = 0, next_attempt_at = 0, request_timestamp = NULL,
    acknowledgment_timestamp = NULL, latency_ms = NULL, first_attempt_at = NULL WHERE uplink = ?`).run(UPLINK);
  db.pragma('wal_checkpoint(TRUNCATE)');
}

async function runLane(store: Store, cfg: Config, codec: PayloadCodec, batches: number): Promise<Run> {
  const u = cfg.uplinks[0];
  await loadDrivers(cfg);
  const lane = new Lane({ cfg: u, codec, events: store.events(), log: silent, tasks: store.tasks(UPLINK), driver: createDriver(cfg, u) });
  gc();
  const c0 = process.cpuUsage();
  const t0 = now();
  lane.start();
  try {
    await new Promise<void>((resolve, reject) => {
      const iv = setInterval(() => {
        const s = lane.snapshot();
        if (s.delivered >= batches) resolve();
        else if (s.failedAttempts > 0 || now() - t0 > 300_000) reject(new Error(`lane: ${s.failedAttempts} failed attempts, ${s.delivered}/${batches} delivered, breaker ${s.breaker}`));
        else return;
        clearInterval(iv);
      }, 2);
    });
    lane.flush();
    const ms = now() - t0;
    const cpu = process.cpuUsage(c0);
    return { ms, cpuMs: (cpu.user + cpu.system) / 1000, batches, readings: READINGS, perSec: (READINGS * 1000) / ms };
  } finally {
    await lane.stop();
  }
}

async function runRaw(url: string, rms: ResourceMetrics[], window: number, compression: string): Promise<Run> {
  // The loop below keeps `window` exports in flight. The exporter's own limit is one more: it
  // releases a slot only after the result callback returned, so a callback that starts the next
  // export would otherwise be refused ("Concurrent export limit reached").
  const exporter = new OTLPMetricExporter({
    url, credentials: credentials.createInsecure(), concurrencyLimit: window + 1, timeoutMillis: 60000,
    compression: compression as NonNullable<ConstructorParameters<typeof OTLPMetricExporter>[0]>['compression'],
  });
  gc();
  const c0 = process.cpuUsage();
  const t0 = now();
  let failed = '';
  await new Promise<void>((resolve) => {
    let next = 0;
    let inflight = 0;
    let done = 0;
    const pump = () => {
      while (inflight < window && next < rms.length) {
        inflight++;
        exporter.export(rms[next++], (r) => {
          inflight--;
          done++;
          if (r.code !== 0) failed ||= String(r.error?.message ?? r.error);
          if (done === rms.length) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const ms = now() - t0;
  const cpu = process.cpuUsage(c0);
  await exporter.shutdown();
  if (failed) throw new Error(`raw exporter: ${failed}`);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, batches: rms.length, readings: READINGS, perSec: (READINGS * 1000) / ms };
}

export async function runOtlpBench(say: (s: string) => void = (s) => process.stdout.write(`${s}\n`)): Promise<OtlpRow[]> {
  const dir = mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'holdfast-bench-otlp-'));
  const collector = await Collector.start();
  let store: Store | null = null;
  try {
    const keyFile = path.join(dir, 'keys', 'holdfast.key');
    generateKey(keyFile, 'k1');
    const codec = new PayloadCodec(loadKeyring(keyFile, 'k1'), 'k1');
    const probe = config(dir, keyFile, collector.url).uplinks[0];
    const window = envInt('BENCH_OTLP_WINDOW', probe.maxInflight);
    const compression = process.env.BENCH_OTLP_COMPRESSION ?? (probe.type === 'otlp' ? probe.compression : 'gzip');
    const cfg = config(dir, keyFile, collector.url, window, compression);
    store = fill(cfg, codec);
    const rms = buildAll(store, codec);
    say(`[otlp] drain: ${fmtInt(rms.length)} batches = ${fmtInt(READINGS)} readings (${BATCH} a batch, one gauge data point each), compression ${compression}, window ${window}, collector ${collector.url} (child process, acks without decoding)`);
    await runRaw(collector.url, rms.slice(0, Math.min(100, rms.length)), window, compression); // warm-up
    const raws: Run[] = [];
    const lanes: Run[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) resetTasks(store);
      await collector.reset();
      const a = await runRaw(collector.url, rms, window, compression);
      const sa = await collector.stats();
      await collector.reset();
      const b = await runLane(store, cfg, codec, rms.length);
      const sb = await collector.stats();
      if (sa.requests !== rms.length || sb.requests !== rms.length) throw new Error(`collector saw ${sa.requests} raw and ${sb.requests} lane exports, expected ${rms.length} each`);
      if (sa.bytes !== sb.bytes) say(`    note: raw sent ${fmtInt(sa.bytes)} B, lane ${fmtInt(sb.bytes)} B`);
      raws.push(a);
      lanes.push(b);
      const us = (r: Run) => fmtInt((r.cpuMs * 1000) / r.batches);
      say(`    round ${round + 1}: raw exporter ${fmtInt(a.perSec)} readings/s (${fmtInt(a.ms)} ms, ${us(a)} us CPU/batch)   holdfast lane ${fmtInt(b.perSec)} readings/s (${fmtInt(b.ms)} ms, ${us(b)} us CPU/batch); ${fmtInt(sb.bytes / rms.length)} B a request`);
    }
    const best = (xs: Run[]) => xs.reduce((x, y) => (y.perSec > x.perSec ? y : x));
    const raw = best(raws);
    const lane = best(lanes);
    const medRaw = median(raws.map((x) => x.perSec));
    const medLane = median(lanes.map((x) => x.perSec));
    say(`    best of ${ROUNDS}: lane/raw ${pct(lane.perSec / raw.perSec)}; medians: lane ${fmtInt(medLane)} / raw ${fmtInt(medRaw)} = ${pct(medLane / medRaw)}; CPU = this process only (the collector is another)`);
    return [{ figure: 'OTLP drain readings/s', holdfast: fmtInt(lane.perSec), limit: `raw exporter ${fmtInt(raw.perSec)}`, ratio: pct(lane.perSec / raw.perSec), target: 'none set', verdict: 'INFO' }];
  } catch (e) {
    say(`    ERROR: ${(e as Error)?.stack ?? String(e)}`);
    return [{ figure: 'OTLP drain readings/s', holdfast: 'error', limit: '-', ratio: '-', target: 'none set', verdict: 'ERROR' }];
  } finally {
    store?.close();
    collector.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('bench/otlp.js')) {
  void runOtlpBench().then((rows) => {
    for (const r of rows) process.stdout.write(`${r.figure}: holdfast ${r.holdfast}, limit ${r.limit}, ratio ${r.ratio} (${r.verdict})\n`);
    process.exit(0);
  });
}
