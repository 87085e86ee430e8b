/** The figures of one strategy's phase, from the proxy's per-second series and the stores. */
import type { Series } from './proxy.js';

export interface PhaseInput {
  strategy: string;
  gateways: number;
  series: Series;
  /** Seconds since the series began. */
  outageAt: number;
  restoreAt: number;
  drainedAt: number | null;
  /** Tasks pending at the restore, committed up to then (the fleet's backlog). */
  backlog: number;
  /** Configured fleet budget, messages/s: N x (drain.messagesPerSec + live batches/s). */
  budget: number;
  /** Backlog / (N x drain.messagesPerSec). */
  idealS: number;
  lost: number;
  duplicates: number;
  failed: number;
  leftPending: number;
  lagP99Ms: number;
  lagMaxMs: number;
}

export interface Row {
  strategy: string;
  peakPublish: number;
  peakXBudget: number;
  peakConnect: number;
  outageConnectPerS: number;
  drainS: number | null;
  drainXIdeal: number | null;
  backlog: number;
  lost: number;
  duplicates: number;
  lagP99Ms: number;
}

const at = (a: number[], i: number) => a[i] ?? 0;

export function summarize(p: PhaseInput): Row {
  const from = Math.floor(p.restoreAt);
  const to = Math.max(p.series.publishes.length, p.series.connects.length);
  let peakPublish = 0;
  let peakConnect = 0;
  for (let s = from; s < to; s++) {
    peakPublish = Math.max(peakPublish, at(p.series.publishes, s));
    peakConnect = Math.max(peakConnect, at(p.series.connects, s));
  }
  let outage = 0;
  const o0 = Math.ceil(p.outageAt);
  for (let s = o0; s < from; s++) outage += at(p.series.connects, s);
  const drainS = p.drainedAt === null ? null : p.drainedAt - p.restoreAt;
  return {
    strategy: p.strategy, peakPublish, peakXBudget: peakPublish / p.budget, peakConnect,
    outageConnectPerS: from > o0 ? outage / (from - o0) : 0,
    drainS, drainXIdeal: drainS === null ? null : drainS / p.idealS, backlog: p.backlog,
    lost: p.lost, duplicates: p.duplicates, lagP99Ms: p.lagP99Ms,
  };
}

const f1 = (x: number | null) => (x === null ? 'not drained' : x.toFixed(1));
const f2 = (x: number | null) => (x === null ? '-' : x.toFixed(2));

export function tableText(rows: Row[], budget: number, idealS: number): string {
  const head = '| strategy | peak publishes/s | x budget | peak CONNECTs/s after restore | CONNECTs/s during outage | drain s | x ideal | backlog | lost | dup | loop lag p99 ms |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = rows.map((r) =>
    `| ${r.strategy} | ${r.peakPublish} | ${f2(r.peakXBudget)} | ${r.peakConnect} | ${r.outageConnectPerS.toFixed(1)} | ${f1(r.drainS)} | ${f2(r.drainXIdeal)} | ${r.backlog} | ${r.lost} | ${r.duplicates} | ${r.lagP99Ms.toFixed(0)} |`,
  );
  return [`fleet budget ${budget} msg/s, ideal drain ${idealS.toFixed(1)} s (backlog / (N x drain.messagesPerSec))`, head, sep, ...lines].join('\n');
}
