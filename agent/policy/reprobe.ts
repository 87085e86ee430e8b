/**
 * Re-probing field reads a device refused with a Modbus exception 01, 02 or 03 (illegal
 * function, address, value). Such a refusal usually means the device map is wrong, so the
 * points stop being polled (agent/acquisition/poller.ts); but devices also answer 02 for a while
 * during a boot, a firmware update or a configuration change, and a point disabled for good
 * after five seconds of that would stay dark until the agent restarts. So each refused read is
 * tried again on its own, slowly: after `baseMs`, then twice as long after each refusal, up to
 * `maxMs`, every delay jittered by +-`jitter` so that the gateways of a fleet, and the devices
 * of one bus, do not probe in step. An answer puts the points back in the poll plan.
 *
 * Pure: explicit state (a new object on every change), clock and random source passed in.
 */

export interface ReprobeConfig {
  /** The first re-probe comes this long after the refusal. */
  baseMs: number;
  /** Ceiling of the doubling delay. */
  maxMs: number;
  /** +- fraction of jitter on every delay (0..0.5). */
  jitter: number;
}

/** One refused read: when it was first refused, how many probes it has failed since, when the next is due. */
export interface Refused {
  since: number;
  probes: number;
  nextAt: number;
}

export type ReprobeState = Readonly<Record<string, Readonly<Refused>>>;

export const EMPTY: ReprobeState = Object.freeze({});

/** The config schema's defaults (buses[].reprobe): a minute, doubling up to an hour, +-20 %. */
export const DEFAULT_REPROBE: Readonly<ReprobeConfig> = Object.freeze({ baseMs: 60_000, maxMs: 3_600_000, jitter: 0.2 });

/** Delay before the probe that follows `probes` failed ones: baseMs * 2^probes, at most maxMs, jittered. */
export function delayFor(probes: number, cfg: ReprobeConfig, rand: () => number): number {
  const j = Math.min(0.5, Math.max(0, cfg.jitter));
  const base = Math.max(1, cfg.baseMs);
  const plain = Math.min(Math.max(base, cfg.maxMs), base * 2 ** Math.min(Math.max(0, probes), 40));
  return Math.max(1, Math.round(plain * (1 - j + 2 * j * rand())));
}

/**
 * A read was refused at `now`: the first time it schedules the first probe; after a failed
 * probe (the key is known) it schedules the next, one step slower.
 */
export function refuse(state: ReprobeState, key: string, now: number, cfg: ReprobeConfig, rand: () => number): ReprobeState {
  const prev = state[key];
  const probes = prev ? prev.probes + 1 : 0;
  return Object.freeze({ ...state, [key]: Object.freeze({ since: prev?.since ?? now, probes, nextAt: now + delayFor(probes, cfg, rand) }) });
}

/** The refused reads whose probe is due at `now`, the longest waiting first. */
export function due(state: ReprobeState, now: number): string[] {
  return Object.entries(state)
    .filter(([, r]) => r.nextAt <= now)
    .sort(([, a], [, b]) => a.nextAt - b.nextAt)
    .map(([k]) => k);
}

/** The read was answered: it is polled again and leaves the re-probe schedule. */
export function accept(state: ReprobeState, key: string): ReprobeState {
  if (!Object.hasOwn(state, key)) return state;
  const { [key]: _gone, ...rest } = state;
  void _gone;
  return Object.freeze(rest);
}
