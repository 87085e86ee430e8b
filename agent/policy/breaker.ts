/**
 * The per-uplink circuit breaker, as a pure state machine.
 *
 * Why: when an upstream is down, every attempt costs a connect timeout, a socket and log
 * noise, and a fleet hammering a recovering broker keeps it down. The breaker stops sending
 * after enough failures and lets a few probes through later to see whether it is back.
 *
 *   closed     every call is admitted; outcomes are kept for windowMs (at most
 *              MAX_OUTCOMES of them). When the window holds >= minCalls outcomes, at least
 *              one failure, and failures / calls >= failureRate, the breaker opens.
 *   open       nothing is admitted until openUntil = now + openMs * (0.8 + 0.4 * rand()):
 *              +-20 % so gateways that failed together do not probe together.
 *   half_open  up to halfOpenProbes probes may be in flight. One failed probe reopens
 *              (with a fresh jittered openUntil); halfOpenProbes successful probes close
 *              it with an empty window.
 *
 * A lost probe (admitted but never recorded) would wedge half_open forever, so on entering
 * half_open `openUntil` is reused as the probe deadline (now + openMs): once it passes with
 * every probe slot still taken, the in-flight probes are presumed lost and new ones are
 * admitted. Callers should still record every admitted call; the ack timeout guarantees one.
 *
 * Outcomes recorded while open, and non-probe outcomes recorded while half_open, are
 * ignored: they are calls admitted before the breaker opened, and say nothing about the
 * upstream as it is now. Probe outcomes arriving after the breaker closed count as normal
 * closed-state outcomes.
 *
 * Everything is immutable: each function returns new objects and never mutates its input.
 * `now` is epoch ms from the caller; `rand` in [0, 1) is injected for the jitter.
 */
import type { BreakerConfig } from '../config/types.js';

export type BreakerStateName = 'closed' | 'open' | 'half_open';

export interface Outcome {
  at: number;
  ok: boolean;
}

export interface BreakerState {
  name: BreakerStateName;
  /** When the breaker entered this state. */
  since: number;
  /** open: when half_open may start. half_open: the probe deadline (see header). closed: 0. */
  openUntil: number;
  /** closed: outcomes within windowMs, oldest first. */
  outcomes: readonly Outcome[];
  /** half_open: probes admitted and not yet recorded. */
  probesInFlight: number;
  /** half_open: successful probes so far. */
  probeSuccesses: number;
}

export interface Admission {
  allowed: boolean;
  /** The state after admission (probe slots taken, open -> half_open); store it. */
  state: BreakerState;
  /** The call is a half-open probe: record its outcome with probe = true. */
  probe: boolean;
  /** When refused: the earliest time worth asking again. */
  retryAt?: number;
}

/** Outcomes kept in the closed window at most (a busy lane must not grow it without bound). */
export const MAX_OUTCOMES = 1000;
/** The open time is jittered by +- this fraction. */
export const OPEN_JITTER = 0.2;

export function initialBreaker(now: number): BreakerState {
  return { name: 'closed', since: now, openUntil: 0, outcomes: [], probesInFlight: 0, probeSuccesses: 0 };
}

/** Manual reset (console, config reload): closed with an empty window. */
export function reset(now: number): BreakerState {
  return initialBreaker(now);
}

function draw(rand: () => number): number {
  const r = rand();
  if (!Number.isFinite(r) || r < 0) return 0;
  return r >= 1 ? 1 - Number.EPSILON : r;
}

function probeLimit(cfg: BreakerConfig): number {
  return Math.max(1, Math.floor(cfg.halfOpenProbes));
}

function opened(cfg: BreakerConfig, now: number, outcomes: readonly Outcome[], rand: () => number): BreakerState {
  const factor = 1 - OPEN_JITTER + 2 * OPEN_JITTER * draw(rand);
  return {
    name: 'open',
    since: now,
    openUntil: now + Math.round(cfg.openMs * factor),
    outcomes,
    probesInFlight: 0,
    probeSuccesses: 0,
  };
}

function halfOpened(cfg: BreakerConfig, now: number): BreakerState {
  return { name: 'half_open', since: now, openUntil: now + cfg.openMs, outcomes: [], probesInFlight: 0, probeSuccesses: 0 };
}

/** Outcomes younger than windowMs, the newest MAX_OUTCOMES of them. */
export function pruneOutcomes(outcomes: readonly Outcome[], windowMs: number, now: number): Outcome[] {
  const kept = outcomes.filter((o) => o.at > now - windowMs);
  return kept.length > MAX_OUTCOMES ? kept.slice(kept.length - MAX_OUTCOMES) : kept;
}

/** Asks whether a call may go out now. Never mutates `s`. */
export function admit(cfg: BreakerConfig, s: BreakerState, now: number): Admission {
  let state = s;
  if (state.name === 'closed') return { allowed: true, state, probe: false };

  if (state.name === 'open') {
    if (now < state.openUntil) return { allowed: false, state, probe: false, retryAt: state.openUntil };
    state = halfOpened(cfg, now);
  }

  // half_open
  const limit = probeLimit(cfg);
  if (state.probesInFlight >= limit) {
    if (now < state.openUntil) return { allowed: false, state, probe: false, retryAt: state.openUntil };
    // Probe deadline passed with every slot taken: presume the probes lost (see header).
    state = { ...state, probesInFlight: 0, openUntil: now + cfg.openMs };
  }
  return { allowed: true, state: { ...state, probesInFlight: state.probesInFlight + 1 }, probe: true };
}

/** Records the outcome of an admitted call. Never mutates `s`. */
export function record(
  cfg: BreakerConfig,
  s: BreakerState,
  now: number,
  ok: boolean,
  probe: boolean,
  rand: () => number,
): BreakerState {
  switch (s.name) {
    case 'closed': {
      const outcomes = pruneOutcomes([...s.outcomes, { at: now, ok }], cfg.windowMs, now);
      const failures = outcomes.reduce((n, o) => (o.ok ? n : n + 1), 0);
      if (outcomes.length >= cfg.minCalls && failures > 0 && failures / outcomes.length >= cfg.failureRate) {
        return opened(cfg, now, outcomes, rand);
      }
      return { ...s, outcomes };
    }
    case 'open':
      return s;
    case 'half_open': {
      if (!probe) return s;
      const probesInFlight = Math.max(0, s.probesInFlight - 1);
      if (!ok) return opened(cfg, now, [], rand);
      const probeSuccesses = s.probeSuccesses + 1;
      if (probeSuccesses >= probeLimit(cfg)) return initialBreaker(now);
      return { ...s, probesInFlight, probeSuccesses };
    }
  }
}

/** 'closed->open' and the like when the state name changed, else undefined (for logs and events). */
export function transition(a: BreakerState, b: BreakerState): string | undefined {
  return a.name === b.name ? undefined : `${a.name}->${b.name}`;
}
