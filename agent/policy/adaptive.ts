/**
 * ADAPTIVE retry timing: per uplink, the interval before the next reconnect is chosen from
 * that uplink's recorded outage history (the durations of its past closed `outage` rows in
 * recovery_events). Pure: no clock, no I/O, no Math.random. The caller loads the history
 * (e.g. the last 50 closed outages, most recent last), passes the time since the current
 * outage began and a `rand: () => number` in [0, 1), exactly as for agent/policy/retry.ts.
 * See docs/adaptive-retry.md for the reasoning and the simulation numbers.
 *
 * Why: EXPONENTIAL_BACKOFF knows nothing about the link. If this uplink's outages typically
 * last ~60 s (a cellular re-attach, a broker restart), probing at 0.5, 1.5, 3.5, 7.5 ... s
 * wastes attempts while the outage is young, and by the time it typically ends the
 * exponential interval has grown to ~30 s, so the agent notices recovery late. History says
 * when recovery is likely; ADAPTIVE probes sparsely before that, densely around it.
 *
 * The model is the empirical distribution of past outage durations D (the usable, most
 * recent HISTORY_LIMIT = 50 of them). Given the outage has lasted e = elapsedMs, only the
 * past outages that lasted longer than e are still possible: the survivors S = {d in D : d > e}.
 * The hazard of an interval (e, e + x] is the conditional probability that the outage ends in
 * it: |{d in S : d <= e + x}| / |S|. The interval is:
 *
 *   fallback  fewer than MIN_HISTORY (5) usable durations: no evidence. Full jitter,
 *             exponential in elapsed time: uniform in [baseMs, cap) with cap = clamp(2e,
 *             2 baseMs, maxMs). (After k attempts of full-jitter exponential backoff about
 *             baseMs 2^(k-1) has elapsed and the next cap is baseMs 2^k: twice the elapsed
 *             time. The API has no attempt count, so elapsed time stands in for it.)
 *   tail      e >= p90 of D: the outage is already longer than 9 in 10 past ones; history
 *             has little left to say. Exponential backoff restarted at p90: centre
 *             baseMs + TAIL_GROWTH (e - p90), so the probe times' distance beyond p90
 *             doubles with every probe (x -> 2x + baseMs), up to maxMs.
 *   early /   otherwise (e < p90) the smaller of two candidates; the regime is 'early'
 *   typical   while e < p25 of D (younger than 3 in 4 past outages), else 'typical':
 *             - hazard target: wait until the HAZARD_TARGET (25 %) quantile of S, i.e.
 *               choose x so that the outage ends in (e, e + x] with probability 1/4. Where
 *               many past outages ended (e near a mode of D) that quantile is close to e and
 *               the interval shrinks to baseMs: dense probing around the typical end.
 *             - early hedge: (median(S) - e) / EARLY_DIVISOR, a fraction of the expected
 *               remaining time. When e is well below the typical end this is large (sparse
 *               probing) but never jumps straight to it: if this outage is shorter than
 *               history says (history drifts), it is noticed within a fraction of the gap.
 *               For a tight history (all ~60 s) the hedge is the smaller one and the probes
 *               close in on the typical end by halving the gap: 30, 45, 52.5, 56.3 ... s.
 *
 * Jitter, always: a fleet of gateways with the same history would otherwise probe in lock-
 * step. The centre c (first clamped to [baseMs, maxMs]) is spread to c * (1 +- j) with
 * j = max(cfg.jitter, MIN_JITTER), so even jitter 0 keeps +-10 %. As in retry.ts the
 * window is cut at [baseMs, maxMs] and drawn uniformly from what is left (clamping after the
 * draw would pile the fleet onto baseMs or maxMs). At c = baseMs that is [baseMs, baseMs(1+j)].
 *
 * Bounds: every result is an integer number of ms in [baseMs, maxMs] (maxMs is a hard
 * ceiling: if maxMs < baseMs the result is maxMs). Robustness: non-finite and negative
 * durations are ignored (zeros are kept: an outage that ended at once is evidence too);
 * quantiles are order statistics, so a single huge outage moves p90 by at most one rank and
 * the interval never exceeds maxMs; a NaN or negative elapsedMs counts as 0, +Infinity as
 * the longest outage there is. `rand` is called exactly once per call.
 *
 * Against EXPONENTIAL_BACKOFF on simulated outage distributions (test/policy-adaptive.test.ts,
 * docs/adaptive-retry.md) ADAPTIVE needs fewer probes per outage and notices recovery sooner.
 * The cost: while the history is stale (outages suddenly much shorter or longer than recorded)
 * it is worse, until the new outages dominate the window.
 */
import { draw, positive } from './retry.js';

/** Past outages of one uplink, most recent last (e.g. duration_ms of its closed 'outage' rows). */
export interface OutageHistory {
  readonly durationsMs: readonly number[];
}

export interface AdaptiveConfig {
  baseMs: number;
  maxMs: number;
  jitter: number;
}

export type AdaptiveRegime = 'fallback' | 'early' | 'typical' | 'tail';

/** How an interval is chosen before the one rand() draw (for tests, status and logs). */
export interface AdaptivePlan {
  regime: AdaptiveRegime;
  /** The un-jittered interval after clamping to [baseMs, maxMs] (fallback: the window's middle). */
  centreMs: number;
  /** The window the interval is drawn from, uniformly: [lowMs, highMs]. */
  lowMs: number;
  highMs: number;
  /** Usable durations in the model. */
  n: number;
}

/** Only the most recent this many usable durations are used. */
export const HISTORY_LIMIT = 50;
/** Fewer usable durations than this: fall back to exponential full jitter. */
export const MIN_HISTORY = 5;
/** Beyond this quantile of the durations the outage is unusually long: exponential backoff. */
export const TAIL_QUANTILE = 0.9;
/** The next probe comes when this fraction of the surviving past outages would have ended. */
export const HAZARD_TARGET = 0.25;
/** Early on, wait at most 1/EARLY_DIVISOR of the time to the median of the survivors. */
export const EARLY_DIVISOR = 2;
/** Tail: centre = baseMs + TAIL_GROWTH * (elapsed - p90); 1 doubles the distance per probe. */
export const TAIL_GROWTH = 1;
/** Jitter is at least +- this fraction, whatever cfg.jitter says. */
export const MIN_JITTER = 0.1;

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** The most recent HISTORY_LIMIT usable (finite, >= 0) durations, sorted ascending. */
function usable(history: OutageHistory): number[] {
  const all = Array.isArray(history?.durationsMs) ? history.durationsMs : [];
  const out: number[] = [];
  for (let i = all.length - 1; i >= 0 && out.length < HISTORY_LIMIT; i--) {
    const d = all[i];
    if (typeof d === 'number' && Number.isFinite(d) && d >= 0) out.push(d);
  }
  return out.sort((a, b) => a - b);
}

/**
 * The p-quantile of an ascending, non-empty array: linear interpolation between order
 * statistics (Hyndman & Fan type 7, numpy's default). Written as a + (b - a) f so that
 * values near Number.MAX_VALUE do not overflow.
 */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const h = (sorted.length - 1) * clamp(p, 0, 1);
  const i = Math.floor(h);
  const a = sorted[i];
  const b = sorted[Math.min(i + 1, sorted.length - 1)];
  return a + (b - a) * (h - i);
}

/** n usable durations (of the most recent HISTORY_LIMIT) and their median and p90; 0s when n = 0. */
export function summarize(history: OutageHistory): { n: number; p50: number; p90: number } {
  const d = usable(history);
  return { n: d.length, p50: quantile(d, 0.5), p90: quantile(d, TAIL_QUANTILE) };
}

/** The regime, centre and jitter window of the next interval (see the header). */
export function adaptivePlan(cfg: AdaptiveConfig, history: OutageHistory, elapsedMs: number): AdaptivePlan {
  const maxMs = positive(cfg.maxMs, positive(cfg.baseMs, 1));
  const baseMs = Math.min(positive(cfg.baseMs, 1), maxMs);
  const j = Math.max(MIN_JITTER, Number.isFinite(cfg.jitter) ? Math.min(1, cfg.jitter) : 0);
  // NaN and negative count as 0; +Infinity as the longest outage there is.
  const e = Number.isNaN(elapsedMs) || elapsedMs <= 0 ? 0 : Math.min(elapsedMs, Number.MAX_VALUE);
  const d = usable(history);
  const n = d.length;

  if (n < MIN_HISTORY) {
    const cap = clamp(2 * e, 2 * baseMs, maxMs);
    return { regime: 'fallback', centreMs: (baseMs + cap) / 2, lowMs: baseMs, highMs: Math.max(baseMs, cap), n };
  }

  let regime: AdaptiveRegime;
  let centre: number;
  const p90 = quantile(d, TAIL_QUANTILE);
  if (e >= p90) {
    regime = 'tail';
    centre = baseMs + TAIL_GROWTH * (e - p90);
  } else {
    // e < p90 <= max(d), so at least one past outage outlasted e.
    const survivors = d.filter((x) => x > e);
    const hazard = quantile(survivors, HAZARD_TARGET) - e;
    const hedge = (quantile(survivors, 0.5) - e) / EARLY_DIVISOR;
    regime = e < quantile(d, 0.25) ? 'early' : 'typical';
    centre = Math.min(hazard, hedge);
  }
  centre = clamp(centre, baseMs, maxMs);
  return {
    regime,
    centreMs: centre,
    lowMs: clamp(centre * (1 - j), baseMs, maxMs),
    highMs: clamp(centre * (1 + j), baseMs, maxMs),
    n,
  };
}

/** The interval before the next reconnect/retry, in integer ms within [baseMs, maxMs]. */
export function adaptiveDelay(cfg: AdaptiveConfig, history: OutageHistory, elapsedMs: number, rand: () => number): number {
  const p = adaptivePlan(cfg, history, elapsedMs);
  const delay = p.lowMs + (p.highMs - p.lowMs) * draw(rand);
  const top = Math.max(1, Math.floor(p.highMs));
  const bottom = Math.min(top, Math.max(1, Math.ceil(p.lowMs)));
  return Math.min(top, Math.max(bottom, Math.round(delay)));
}
