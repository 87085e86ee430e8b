/**
 * Benchmark helper, run in a fresh process by scripts/bench/bench.ts (figure 4): RSS of the real Engine
 * with 1,000,000 readings buffered in the store and no way out (the only uplink points at a
 * closed port). Prints one JSON line on stdout.
 *
 *   node --expose-gc dist/scripts/bench/rss.js [readings]
 *
 * Also exports the reading generator that scripts/bench/bench.ts uses, so both measure the same data.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildConfig } from '../../agent/config/load.js';
import { Engine } from '../../agent/engine.js';
import { loadDrivers } from '../../agent/uplinks.js';
import type { Quality, Reading } from '../../agent/reading.js';
import { generateKey } from '../../store/codec.js';
import { runIfMain } from '../run-main.js';
import { mulberry32 as prng } from '../../test/helpers/rand.js';

/** The points of one poll of a three-phase meter: name, unit, base value, swing, decimals. */
const POINTS: readonly { point: string; unit: string; base: number; swing: number; dp: number }[] = [
  { point: 'counter', unit: '', base: 0, swing: 0, dp: 0 },
  { point: 'voltage_l1', unit: 'V', base: 230, swing: 4, dp: 1 },
  { point: 'voltage_l2', unit: 'V', base: 231, swing: 4, dp: 1 },
  { point: 'voltage_l3', unit: 'V', base: 229, swing: 4, dp: 1 },
  { point: 'current_l1', unit: 'A', base: 12, swing: 3, dp: 3 },
  { point: 'current_l2', unit: 'A', base: 11, swing: 3, dp: 3 },
  { point: 'current_l3', unit: 'A', base: 13, swing: 3, dp: 3 },
  { point: 'active_power', unit: 'W', base: 2700, swing: 600, dp: 1 },
  { point: 'frequency', unit: 'Hz', base: 50, swing: 0.05, dp: 3 },
  { point: 'power_factor', unit: '', base: 0.95, swing: 0.03, dp: 3 },
];
export const POINTS_PER_POLL = POINTS.length;

export interface Poll {
  device: string;
  cursor: number;
  readings: Reading[];
}

/** A small deterministic PRNG (mulberry32), so every run measures the same bytes. */
export { prng };

export function deviceName(d: number): string {
  return `meter-${String(d + 1).padStart(3, '0')}`;
}

/**
 * Poll number `n` (0-based) of device `d`: POINTS_PER_POLL realistic readings taken at
 * t0 + n seconds, noisy values with the usual decimals, a rising counter, now and then an
 * 'uncertain' quality.
 */
export function makePoll(d: number, n: number, rand: () => number, t0 = 1_767_225_600_000): Poll {
  const device = deviceName(d);
  const ts = t0 + n * 1000 + Math.floor(rand() * 40);
  const readings: Reading[] = new Array(POINTS.length);
  for (let i = 0; i < POINTS.length; i++) {
    const p = POINTS[i];
    let value: number;
    if (i === 0) value = n + 1;
    else {
      const v = p.base + p.swing * Math.sin((n + d * 7 + i) / 23) + p.swing * 0.1 * (rand() - 0.5);
      const f = 10 ** p.dp;
      value = Math.round(v * f) / f;
    }
    const quality: Quality = rand() < 0.002 ? 'uncertain' : 'good';
    readings[i] = { device, point: p.point, ts, value, unit: p.unit, quality };
  }
  return { device, cursor: n + 1, readings };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

/** A loopback port that nothing listens on (bound then released). */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;

/**
 * RSS split as the kernel counts it (/proc/self/status): RssAnon is the process's own memory (V8
 * heaps, malloc arenas, SQLite's cache); RssFile (+ RssShmem) is pages of mapped files, mostly the
 * node binary and the native addons. NaN where unavailable.
 */
function rssSplit(): { anon: number; file: number } {
  try {
    const t = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+) kB`, 'm').exec(t)?.[1] ?? NaN) / 1024;
    return { anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
  } catch {
    return { anon: NaN, file: NaN };
  }
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 1_000_000);
  const devices = 50;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  gc();
  const baseline = process.memoryUsage();
  const baselineSplit = rssSplit();

  const dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-rss-'));
  try {
    const keyFile = join(dir, 'keys', 'holdfast.key');
    generateKey(keyFile, 'k1');
    const port = await closedPort();
    const cfg = buildConfig({
      gatewayId: 'bench-rss',
      dataDir: join(dir, 'data'),
      logFile: '-',
      spoolDir: join(dir, 'cache'),
      store: { encryption: 'aes-256-gcm', keyFile, keyId: 'k1' },
      sources: [],
      uplinks: [{ name: 'nowhere', type: 'mqtt', url: `mqtt://127.0.0.1:${port}`, connectTimeoutMs: 1000 }],
    });
    await loadDrivers(cfg);
    const engine = new Engine(cfg, pino({ level: 'silent' }));
    engine.start();

    const rand = prng(4);
    const t0 = Date.now() - 3_600_000;
    let offered = 0;
    let refusals = 0;
    let n = 0;
    const started = performance.now();
    while (offered < total) {
      for (let d = 0; d < devices && offered < total; d++) {
        const p = makePoll(d, n, rand, t0);
        const rs = p.readings.slice(0, Math.min(p.readings.length, total - offered));
        while (!engine.ingest.offer(p.device, rs, p.cursor)) {
          refusals++;
          engine.ingest.tick();
        }
        offered += rs.length;
      }
      n++;
      // Let the engine's timers (group commit, lane reconnects) run, as they would between polls.
      if (n % 20 === 0) await yieldLoop();
    }
    const feedMs = performance.now() - started;
    await sleep(2500); // the lane keeps trying its closed port; ingest commits what is left
    engine.ingest.tick(true);
    await sleep(100);
    gc();
    await sleep(50);
    gc();
    const mem = process.memoryUsage();
    const split = rssSplit();
    const row = engine.store.db
      .prepare(`SELECT count(*) AS tasks, coalesce(sum(reading_count), 0) AS readings FROM recovery_tasks WHERE status = 'pending'`)
      .get() as { tasks: number; readings: number };
    const pageCount = engine.store.db.pragma('page_count', { simple: true }) as number;
    const pageSize = engine.store.db.pragma('page_size', { simple: true }) as number;
    const snap = engine.lanes[0]?.snapshot();
    await engine.stop();
    const out = {
      offered,
      feedMs: Math.round(feedMs),
      refusals,
      rssMB: mb(mem.rss),
      heapUsedMB: mb(mem.heapUsed),
      heapTotalMB: mb(mem.heapTotal),
      externalMB: mb(mem.external),
      arrayBuffersMB: mb(mem.arrayBuffers),
      baselineRssMB: mb(baseline.rss),
      rssAnonMB: split.anon,
      rssFileMB: split.file,
      baselineAnonMB: baselineSplit.anon,
      baselineFileMB: baselineSplit.file,
      maxRssMB: mb(process.resourceUsage().maxRSS * 1024),
      pendingTasks: row.tasks,
      pendingReadings: row.readings,
      dbMB: mb(pageCount * pageSize),
      laneConnected: snap?.connected ?? false,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
