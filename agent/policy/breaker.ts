/**
 * The per-uplink circuit breaker, as a pure state machine.
 *
 * Why: when an upstream is down, every attempt costs a connect timeout, a socket and log
 * noise, and a fleet hammering a recovering broker keeps it down. The breaker stops sending
 * after enough failures and lets a few probes through later to see whether it is back.
 *
 *   closed     every call is admitted; outcomes are kept for windowMs (at most
 *              MAX_OUTCOMES of them, the oldest dropped). When the window holds >= minCalls
 *              outcomes, at least one failure, and failures / calls >= failureRate, the
 *              breaker opens. The window is exact to the ms: an outcome exactly windowMs old
 *              is out.
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
 *
 * The window is stored as counts, not as one entry per call: consecutive outcomes recorded at the
 * same ms with the same result are one run {at, ok, n}, and the runs sit in chunks of at most
 * CHUNK_RUNS. Recording copies only the newest chunk and the (short) list of chunks, and the
 * call and failure totals are kept alongside, so a busy lane pays O(CHUNK_RUNS + chunks) per
 * outcome instead of copying and filtering up to MAX_OUTCOMES entries. outcomeList() expands a
 * window back into one {at, ok} per call (tests, debugging).
 */
import type { BreakerConfig } from '../config/types.js';

export type BreakerStateName = 'closed' | 'open' | 'half_open';

export interface Outcome {
  at: number;
  ok: boolean;
}

/** `n` consecutive outcomes recorded at the same ms with the same result. */
export interface OutcomeRun {
  at: number;
  ok: boolean;
  n: number;
}

/** The closed-state window: runs oldest first, in chunks; calls and failures are their totals. */
export interface OutcomeWindow {
  chunks: readonly (readonly OutcomeRun[])[];
  calls: number;
  failures: number;
  /**
   * The runs' times never decrease (the usual case): expired outcomes can only be at the front.
   * False after the clock went backwards, until the out-of-order runs have left the window;
   * meanwhile every record filters the whole window, exactly as an unordered list would be.
   */
  ordered: boolean;
}

export interface BreakerState {
  name: BreakerStateName;
  /** When the breaker entered this state. */
  since: number;
  /** open: when half_open may start. half_open: the probe deadline (see header). closed: 0. */
  openUntil: number;
  /** closed: outcomes within windowMs, oldest first. */
  outcomes: OutcomeWindow;
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
/** Runs per chunk of the window (see header). */
export const CHUNK_RUNS = 32;

const NO_RUNS: readonly OutcomeRun[] = Object.freeze([]);
const NO_CHUNKS: readonly (readonly OutcomeRun[])[] = Object.freeze([]);

export function emptyWindow(): OutcomeWindow {
  return { chunks: NO_CHUNKS, calls: 0, failures: 0, ordered: true };
}
/** The open time is jittered by +- this fraction. */
export const OPEN_JITTER = 0.2;

export function initialBreaker(now: number): BreakerState {
  return { name: 'closed', since: now, openUntil: 0, outcomes: emptyWindow(), probesInFlight: 0, probeSuccesses: 0 };
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

function opened(cfg: BreakerConfig, now: number, outcomes: OutcomeWindow, rand: () => number): BreakerState {
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
  return { name: 'half_open', since: now, openUntil: now + cfg.openMs, outcomes: emptyWindow(), probesInFlight: 0, probeSuccesses: 0 };
}

/** One {at, ok} per call in the window, oldest first. */
export function outcomeList(w: OutcomeWindow): Outcome[] {
  const out: Outcome[] = [];
  for (const chunk of w.chunks) for (const r of chunk) for (let i = 0; i < r.n; i++) out.push({ at: r.at, ok: r.ok });
  return out;
}

/**
 * Drops from the front of the window every outcome at or before `edge` and, beyond that, the
 * oldest outcomes over `max`. Returns `w` itself when nothing goes.
 */
function dropOld(w: OutcomeWindow, edge: number, max: number): OutcomeWindow {
  let { calls, failures } = w;
  const chunks = w.chunks;
  let c = 0; // first chunk kept
  let r = 0; // first run kept in chunks[c]
  let cut = 0; // outcomes dropped from the front of run r
  while (c < chunks.length) {
    const run = chunks[c][r];
    const expired = run.at <= edge;
    const over = calls - max;
    if (!expired && over <= 0) break;
    const drop = expired ? run.n : Math.min(run.n, over);
    calls -= drop;
    if (!run.ok) failures -= drop;
    if (drop < run.n) {
      cut = drop;
      break;
    }
    r++;
    if (r === chunks[c].length) {
      c++;
      r = 0;
    }
  }
  if (c === 0 && r === 0 && cut === 0) return w;
  if (c === chunks.length) return emptyWindow();
  const first = chunks[c];
  let head = r === 0 ? first : first.slice(r);
  if (cut > 0) {
    const run = head[0];
    head = [{ at: run.at, ok: run.ok, n: run.n - cut }, ...head.slice(1)];
  }
  const rest = chunks.slice(c);
  rest[0] = head;
  return { chunks: rest, calls, failures, ordered: w.ordered };
}

/** The slow exact path for an unordered window: keep runs after `edge`, then the newest `max` outcomes. */
function rebuild(w: OutcomeWindow, edge: number, max: number): OutcomeWindow {
  const runs: OutcomeRun[] = [];
  let calls = 0;
  let failures = 0;
  for (const chunk of w.chunks) {
    for (const r of chunk) {
      if (r.at <= edge) continue;
      runs.push(r);
      calls += r.n;
      if (!r.ok) failures += r.n;
    }
  }
  let i = 0;
  while (calls > max) {
    const r = runs[i];
    const drop = Math.min(r.n, calls - max);
    calls -= drop;
    if (!r.ok) failures -= drop;
    if (drop < r.n) runs[i] = { at: r.at, ok: r.ok, n: r.n - drop };
    else i++;
  }
  const kept = runs.slice(i);
  let ordered = true;
  for (let k = 1; k < kept.length; k++) if (kept[k].at < kept[k - 1].at) ordered = false;
  const chunks: OutcomeRun[][] = [];
  for (let k = 0; k < kept.length; k += CHUNK_RUNS) chunks.push(kept.slice(k, k + CHUNK_RUNS));
  return { chunks, calls, failures, ordered };
}

/** The window with one outcome added at `now`, pruned to windowMs and MAX_OUTCOMES. Never mutates `w`. */
export function addOutcome(w: OutcomeWindow, ok: boolean, windowMs: number, now: number): OutcomeWindow {
  const chunks = w.chunks;
  let next: OutcomeWindow;
  const lastChunk = chunks.length > 0 ? chunks[chunks.length - 1] : NO_RUNS;
  const last = lastChunk.length > 0 ? lastChunk[lastChunk.length - 1] : undefined;
  if (last && last.at === now && last.ok === ok) {
    const chunk = lastChunk.slice();
    chunk[chunk.length - 1] = { at: now, ok, n: last.n + 1 };
    const all = chunks.slice();
    all[all.length - 1] = chunk;
    next = { chunks: all, calls: w.calls + 1, failures: w.failures + (ok ? 0 : 1), ordered: w.ordered };
  } else {
    const run: OutcomeRun = { at: now, ok, n: 1 };
    const all = chunks.slice();
    if (lastChunk.length > 0 && lastChunk.length < CHUNK_RUNS) all[all.length - 1] = [...lastChunk, run];
    else all.push([run]);
    next = { chunks: all, calls: w.calls + 1, failures: w.failures + (ok ? 0 : 1), ordered: w.ordered && (!last || now >= last.at) };
  }
  return next.ordered ? dropOld(next, now - windowMs, MAX_OUTCOMES) : rebuild(next, now - windowMs, MAX_OUTCOMES);
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
      const outcomes = addOutcome(s.outcomes, ok, cfg.windowMs, now);
      const { calls, failures } = outcomes;
      if (calls >= cfg.minCalls && failures > 0 && failures / calls >= cfg.failureRate) {
        return opened(cfg, now, outcomes, rand);
      }
      return { ...s, outcomes };
    }
    case 'open':
      return s;
    case 'half_open': {
      if (!probe) return s;
      const probesInFlight = Math.max(0, s.probesInFlight - 1);
      if (!ok) return opened(cfg, now, emptyWindow(), rand);
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
