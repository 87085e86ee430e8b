/**
 * What the fleet benchmark (scripts/bench/fleet/) relies on, on a small fleet of real Engines in
 * this process against a real Mosquitto behind the bench's counting proxy:
 *   1. after the broker goes away, the fleet's reconnect attempts are spread over the jitter window
 *      (EXPONENTIAL_BACKOFF, the default) instead of arriving together (FIXED without jitter, the
 *      naive client, shown in the same setup so that the test can tell the two apart);
 *   2. after the broker comes back, the backlog is drained within the configured budget
 *      (drain.messagesPerSec per gateway), with nothing lost.
 * Bounds are behaviour (spread, rate), with room for a loaded machine; no tight timings.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKey } from '../store/codec.js';
import type { Engine } from '../agent/engine.js';
import { fleetBroker } from '../scripts/bench/fleet/broker.js';
import { CountingProxy } from '../scripts/bench/fleet/proxy.js';
import { buildGateway, fakeSysfs, pendingUpTo, maxTaskId, statusCounts } from '../scripts/bench/fleet/gateway.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const N = 16;

async function fleet(t: Test, name: string, uplink: Record<string, unknown>, batchMs = 1000) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'holdfast-fleet-test-'));
  const keyFile = path.join(dir, 'key');
  generateKey(keyFile, 'k1');
  const sysfsRoot = fakeSysfs(path.join(dir, 'sysfs'));
  const broker = await fleetBroker();
  const proxy = new CountingProxy(broker.port);
  const port = await proxy.listen();
  proxy.open = true;
  const engines: Engine[] = [];
  for (let i = 0; i < N; i++) {
    engines.push(buildGateway({ id: `${name}-${i}`, dir: path.join(dir, String(i)), brokerUrl: `mqtt://127.0.0.1:${port}`, keyFile, uplink, batchMs, sysfsRoot }));
  }
  await Promise.all(engines.map((e) => e.start()));
  t.teardown(async () => {
    await Promise.all(engines.map((e) => e.stop(2000)));
    await proxy.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 100 && !engines.every((e) => e.lanes[0].snapshot().connected); i++) await sleep(100);
  t.ok(engines.every((e) => e.lanes[0].snapshot().connected), 'every gateway connected');
  return { engines, broker, proxy };
}

/** The first reconnect attempt of each gateway after the cut, ms after it. */
function firstAttempts(times: number[], cutAt: number, n: number): number[] {
  return times.filter((x) => x > cutAt).slice(0, n).map((x) => x - cutAt);
}

t.test('reconnect attempts spread over the jitter window; no jitter arrives together', async (t) => {
  const results: Record<string, number[]> = {};
  for (const [name, retry] of [
    ['naive', { strategy: 'FIXED', baseMs: 3000, jitter: 0 }],
    ['jittered', { strategy: 'EXPONENTIAL_BACKOFF', baseMs: 3000 }],
  ] as const) {
    const f = await fleet(t, name, { retry, breaker: { minCalls: 1000 } });
    const cutAt = f.proxy.elapsed() * 1000;
    f.proxy.cut();
    await f.broker.stop();
    await sleep(4500);
    results[name] = firstAttempts(f.proxy.connectTimes, cutAt, N);
    t.equal(results[name].length, N, `${name}: every gateway tried again within 4.5 s`);
  }
  const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
  const crowd = (xs: number[]) => Math.max(...xs.map((x) => xs.filter((y) => Math.abs(y - x) <= 150).length));
  // FIXED 3 s without jitter: every gateway lost the link at the same moment, so all come back at ~3 s.
  t.ok(spread(results.naive) < 600, `naive: ${N} attempts within ${spread(results.naive)} ms`);
  t.ok(crowd(results.naive) >= N - 1, 'naive: the whole fleet inside one 300 ms window');
  // Full jitter over [0.3 s, 3 s): attempts spread over the window (about 2 s for 16 draws; a
  // third of it is the bar, since a loaded machine delays timers unevenly), no 300 ms window
  // holds most of them. Without jitter the spread is tens of ms.
  t.ok(spread(results.jittered) > 900, `jittered: attempts spread over ${spread(results.jittered)} ms`);
  t.ok(crowd(results.jittered) <= N / 2, `jittered: at most ${crowd(results.jittered)} of ${N} inside any 300 ms window`);
});

t.test('the backlog drains within the configured budget, nothing lost', async (t) => {
  const r = 2;
  const batchMs = 500;
  const f = await fleet(t, 'budget', { retry: { baseMs: 500, maxMs: 1000 }, breaker: { openMs: 500 }, drain: { messagesPerSec: r, startJitterMs: 1000 } }, batchMs);
  f.proxy.cut();
  await f.broker.stop();
  await sleep(6000);
  await f.broker.start();
  const marks = f.engines.map((e) => maxTaskId(e));
  const backlog = f.engines.reduce((n, e, i) => n + pendingUpTo(e, marks[i]), 0);
  const from = Math.ceil(f.proxy.elapsed());
  f.proxy.open = true;
  t.ok(backlog >= N * 6, `a backlog of ${backlog} batches`);
  const left = () => f.engines.reduce((n, e, i) => n + pendingUpTo(e, marks[i]), 0);
  for (let i = 0; i < 600 && left() > 0; i++) await sleep(100);
  t.equal(left(), 0, 'every backlog drained');
  const secs = f.proxy.series.publishes.slice(from, Math.floor(f.proxy.elapsed()));
  const peak = Math.max(...secs);
  // Per gateway and second at most: the bucket's burst (r) once, r a second, and its live batches.
  const bound = N * (2 * r + 1000 / batchMs + 1);
  t.ok(peak <= bound, `peak ${peak} publishes/s <= ${bound} (budget ${N * r} backlog + ${N * (1000 / batchMs)} live)`);
  // Ideal time at the budget: backlog / (N r); the drain cannot have been faster than the bucket allows.
  const drainS = secs.length;
  t.ok(drainS >= backlog / (N * r) - 2, `drain took ${drainS} s, not faster than the budget allows (${(backlog / (N * r)).toFixed(1)} s)`);
  t.equal(f.engines.reduce((n, e) => n + (statusCounts(e).failed ?? 0), 0), 0, 'nothing dead-lettered');
});
