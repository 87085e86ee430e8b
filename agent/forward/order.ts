/**
 * The order of service of a lane and the admission of the next message, as one pure function
 * over the lane's gates: nothing is taken from a source until every gate said yes, so a refusal
 * never has to be undone.
 *
 * Order (ORDER): live tasks (committed since the link came up: never rate-limited) → retries that
 * are due (within the retry budget) → the backlog (after the drain's start delay, within the drain
 * rates) → devices whose upstream set a posting pace (agent/forward/pacer.ts). The breaker gates
 * them all. The thermal factor shrinks the drain rates and the retry budget, never live data.
 */
import type { BreakerConfig } from '../config/types.js';
import { admit, type BreakerState } from '../policy/breaker.js';
import { budgetAllows, take, type RetryBudget, type TokenBucket } from '../policy/budget.js';

export type Source = 'live' | 'due' | 'backlog' | 'paced';
export const ORDER: readonly Source[] = ['live', 'due', 'backlog', 'paced'];

/** The retry budget's sliding window. */
export const BUDGET_WINDOW_MS = 10_000;
/** A retry refused by the budget is asked for again this much later. */
export const DUE_CHECK_MS = 250;

/** What a source offers next: its head's size (backlog buckets) or nothing. */
export interface Head {
  readings: number;
}

export type Heads = Partial<Record<Source, Head>>;

/** The state every admission reads; the lane holds it and stores what a 'take' returns. */
export interface Gates {
  breaker: BreakerState;
  msgBucket: TokenBucket;
  readBucket: TokenBucket;
  budget: RetryBudget;
  /** The thermal governor's factor (0..1]. */
  throttle: number;
  /** The backlog waits until then after the link came up (jittered). */
  drainStartAt: number;
  /**
   * The upstream asked every request to wait until then (a 503 or 429 with Retry-After, MQTT
   * server busy, gRPC RetryInfo): RFC 9110 asks it of the client, not of one request, so every
   * source waits, live data too.
   */
  serverHoldUntil: number;
}

export interface GateConfig {
  breaker: BreakerConfig;
  drain: { messagesPerSec: number; readingsPerSec: number };
  retryBudget: { ratio: number; minPerSec: number };
}

export type Decision =
  /** Take the head of `source` and send it; store `gates`; `probe`: a half-open probe. */
  | { kind: 'take'; source: Source; gates: Gates; probe: boolean }
  /** Every head is held by a gate: ask again in `ms`. */
  | { kind: 'wait'; ms: number; why: Source | 'breaker' | 'server' }
  /** No source has anything. */
  | { kind: 'idle' };

/** The next message to send, or why none goes now. Never mutates its arguments. */
export function decide(heads: Heads, g: Gates, cfg: GateConfig, t: number): Decision {
  if (!ORDER.some((s) => heads[s])) return { kind: 'idle' };
  const a = admit(cfg.breaker, g.breaker, t);
  if (!a.allowed) return { kind: 'wait', ms: Math.max(10, (a.retryAt ?? t + 1000) - t), why: 'breaker' };
  if (t < g.serverHoldUntil) return { kind: 'wait', ms: Math.max(1, g.serverHoldUntil - t), why: 'server' };
  let wait: { ms: number; why: Source } | null = null;
  const held = (ms: number, why: Source) => {
    if (!wait || ms < wait.ms) wait = { ms: Math.max(1, ms), why };
  };
  for (const source of ORDER) {
    const head = heads[source];
    if (!head) continue;
    const next: Gates = { ...g, breaker: a.state };
    if (source === 'due') {
      const b = cfg.retryBudget;
      if (!budgetAllows(g.budget, b.ratio * g.throttle, b.minPerSec * g.throttle, BUDGET_WINDOW_MS, t)) {
        held(DUE_CHECK_MS, source);
        continue;
      }
    } else if (source === 'backlog') {
      if (t < g.drainStartAt) {
        held(g.drainStartAt - t, source);
        continue;
      }
      // Throttled: the rates shrink, the bursts stay (a burst clamps what one message may need).
      const dr = cfg.drain;
      const m = take(g.msgBucket, 1, dr.messagesPerSec * g.throttle, dr.messagesPerSec, t);
      const n = take(g.readBucket, head.readings, dr.readingsPerSec * g.throttle, dr.readingsPerSec, t);
      if (!m.ok || !n.ok) {
        held(Math.max(m.waitMs, n.waitMs), source);
        continue;
      }
      next.msgBucket = m.bucket;
      next.readBucket = n.bucket;
    }
    return { kind: 'take', source, gates: next, probe: a.probe };
  }
  const w = wait as { ms: number; why: Source } | null;
  return w ? { kind: 'wait', ms: w.ms, why: w.why } : { kind: 'idle' };
}
