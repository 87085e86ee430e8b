/**
 * The thermal governor, a pure policy over an explicit clock: above `aboveC` the agent slows the
 * work it can defer (the backlog drain, retries, field polling) to `factor` of its configured
 * rate; below `belowC` it runs at full speed again. The gap between the two (hysteresis) and a
 * minimum time in each state keep a CPU that sits at the threshold from flapping every sample.
 * Live data is never slowed (the lanes keep sending what was just committed).
 *
 * An unknown temperature (no readable sensor, a read that failed) releases the throttle: a broken
 * sensor must not keep a gateway slow forever, and docs/thermal.md says so.
 */

export interface GovernorConfig {
  /** Throttle at or above this CPU temperature (degrees C). */
  aboveC: number;
  /** Release at or below this (< aboveC). */
  belowC: number;
  /** The fraction of the configured rates kept while throttled (0 < factor <= 1). */
  factor: number;
  /** Stay at least this long in a state before leaving it on temperature (ms). */
  minDwellMs: number;
}

export interface GovernorState {
  throttled: boolean;
  /** When the current state began (ms). */
  since: number;
}

export interface GovernorStep {
  state: GovernorState;
  /** The rate factor to apply now: 1, or cfg.factor while throttled. */
  factor: number;
  /** Set when this sample changed the state. */
  change: 'throttle' | 'release' | null;
}

export const initialGovernor = (now: number): GovernorState => ({ throttled: false, since: now });

/** One temperature sample (null: unknown) at `now`. */
export function govern(cfg: GovernorConfig, s: GovernorState, tempC: number | null, now: number): GovernorStep {
  const dwelt = now - s.since >= cfg.minDwellMs;
  let throttled = s.throttled;
  if (tempC === null || !Number.isFinite(tempC)) throttled = false;
  else if (!s.throttled && tempC >= cfg.aboveC && dwelt) throttled = true;
  else if (s.throttled && tempC <= cfg.belowC && dwelt) throttled = false;
  const state = throttled === s.throttled ? s : { throttled, since: now };
  const change = throttled === s.throttled ? null : throttled ? 'throttle' : 'release';
  return { state, factor: throttled ? cfg.factor : 1, change };
}

/**
 * Every how many poll slots a device is polled at `factor` (1 at full speed): a throttled poller
 * keeps its grid and skips the slots in between.
 */
export function pollStride(factor: number): number {
  return factor >= 1 || !(factor > 0) ? 1 : Math.max(1, Math.round(1 / factor));
}
