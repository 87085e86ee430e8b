/**
 * The contention simulation of the AWS Architecture Blog's "Exponential Backoff And Jitter"
 * (Marc Brooker, 2015), run with OUR backoff module (agent/policy/retry.ts, nextDelay).
 *
 *   node dist/scripts/bench/backoff-sim.js [--runs 200] [--seed 1]
 *
 * Model (docs/fleet.md#the-classic-result-reproduced): N clients each have one write to make to a
 * single resource under optimistic concurrency. All start at t = 0. Time is cut into slots of
 * SLOT_MS (the time a write takes). In a slot where one or more clients call, the earliest call
 * wins (ties: random) and that client is done; every other call in the slot read the version the
 * winner just replaced, so it fails, and its client backs off by nextDelay(attempt) and calls
 * again. A run ends when every client has written. Printed per strategy and N: total calls (the
 * work the resource saw) and completion time (the last client's success), means over `runs` seeds.
 *
 * Strategies, all from nextDelay with baseMs BASE_MS and maxMs CAP_MS:
 *   exponential   EXPONENTIAL_BACKOFF with its draw pinned to the top of [0, 1): the cap
 *                 min(maxMs, base 2^(attempt-1)) itself, i.e. capped exponential without jitter;
 *   full-jitter   EXPONENTIAL_BACKOFF as the agent runs it (uniform in [0, cap), floored at 10 %);
 *   equal-jitter  NOT in the module (the agent does not offer it): built here from two calls,
 *                 cap/2 (the pinned draw, halved) + full jitter over [0, cap/2);
 *   decorrelated  DECORRELATED_JITTER (uniform in [base, 3 prev), capped).
 */
import { nextDelay } from '../../agent/policy/retry.js';
import type { RetryConfig } from '../../agent/config/types.js';
import { ALMOST_ONE, mulberry32 as seeded } from '../../test/helpers/rand.js';

export const SLOT_MS = 1;
export const BASE_MS = 5;
export const CAP_MS = 2000;
export const STRATEGIES = ['exponential', 'full-jitter', 'equal-jitter', 'decorrelated'] as const;
export type SimStrategy = (typeof STRATEGIES)[number];

type Cfg = Pick<RetryConfig, 'strategy' | 'baseMs' | 'maxMs' | 'jitter'>;
const expo: Cfg = { strategy: 'EXPONENTIAL_BACKOFF', baseMs: BASE_MS, maxMs: CAP_MS, jitter: 0 };
const half: Cfg = { ...expo, baseMs: BASE_MS / 2, maxMs: CAP_MS / 2 };
const decor: Cfg = { ...expo, strategy: 'DECORRELATED_JITTER' };
const top = () => ALMOST_ONE;

/** The delay before a client's next call after its `attempt`-th failure. */
export function backoff(s: SimStrategy, attempt: number, prevDelayMs: number, rand: () => number): number {
  const st = { attempt, prevDelayMs };
  switch (s) {
    case 'exponential':
      return nextDelay(expo, st, top);
    case 'full-jitter':
      return nextDelay(expo, st, rand);
    case 'equal-jitter':
      return nextDelay(half, st, top) + nextDelay(half, st, rand);
    case 'decorrelated':
      return nextDelay(decor, st, rand);
  }
}

export interface SimResult {
  calls: number;
  completionMs: number;
}

/** One run of N clients; deterministic for a given rand. */
export function simulate(s: SimStrategy, n: number, rand: () => number): SimResult {
  const at = new Array<number>(n).fill(0);
  const attempts = new Array<number>(n).fill(0);
  const prev = new Array<number>(n).fill(0);
  const done = new Array<boolean>(n).fill(false);
  let left = n;
  let calls = 0;
  let completionMs = 0;
  while (left > 0) {
    let slot = Infinity;
    for (let i = 0; i < n; i++) if (!done[i]) slot = Math.min(slot, Math.floor(at[i] / SLOT_MS));
    const inSlot: number[] = [];
    for (let i = 0; i < n; i++) if (!done[i] && Math.floor(at[i] / SLOT_MS) === slot) inSlot.push(i);
    calls += inSlot.length;
    const first = Math.min(...inSlot.map((i) => at[i]));
    const ties = inSlot.filter((i) => at[i] === first);
    const winner = ties[Math.floor(rand() * ties.length)];
    for (const i of inSlot) {
      if (i === winner) {
        done[i] = true;
        left--;
        completionMs = Math.max(completionMs, at[i] + SLOT_MS);
        continue;
      }
      attempts[i]++;
      const d = backoff(s, attempts[i], prev[i], rand);
      prev[i] = d;
      // A failed call is known at the end of its slot; the client waits from there.
      at[i] = (slot + 1) * SLOT_MS + d;
    }
  }
  return { calls, completionMs };
}

/** Means over `runs` seeds, for each N. */
export function table(ns: readonly number[], runs: number, seed: number): { n: number; results: Record<SimStrategy, SimResult> }[] {
  return ns.map((n) => {
    const results = {} as Record<SimStrategy, SimResult>;
    for (const s of STRATEGIES) {
      let calls = 0;
      let time = 0;
      for (let r = 0; r < runs; r++) {
        const x = simulate(s, n, seeded(seed * 1_000_003 + n * 1009 + r));
        calls += x.calls;
        time += x.completionMs;
      }
      results[s] = { calls: calls / runs, completionMs: time / runs };
    }
    return { n, results };
  });
}

function main(): void {
  const arg = (name: string, def: number) => {
    const i = process.argv.indexOf(name);
    const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
    return Number.isFinite(v) && v > 0 ? v : def;
  };
  const runs = arg('--runs', 200);
  const seed = arg('--seed', 1);
  const ns = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
  console.log(`Backoff contention (AWS "Exponential Backoff And Jitter"), agent/policy/retry.ts nextDelay`);
  console.log(`slot ${SLOT_MS} ms, baseMs ${BASE_MS}, maxMs ${CAP_MS}, mean of ${runs} runs per cell, seed ${seed}\n`);
  const head = STRATEGIES.map((s) => `${s} calls | ${s} ms`).join(' | ');
  console.log(`| N | ${head} |`);
  console.log(`|---|${STRATEGIES.map(() => '---:|---:').join('|')}|`);
  for (const row of table(ns, runs, seed)) {
    const cells = STRATEGIES.map((s) => `${Math.round(row.results[s].calls)} | ${Math.round(row.results[s].completionMs)}`);
    console.log(`| ${row.n} | ${cells.join(' | ')} |`);
  }
}

if (process.argv[1]?.endsWith('backoff-sim.js')) main();
