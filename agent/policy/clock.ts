/**
 * Wall-clock steps and unsynchronised stamps, pure (the caller reads the clocks and passes them).
 *
 * The offset of the wall clock over the monotonic one (wall - mono) stays put while both run;
 * NTP slewing moves it by microseconds a second. A change beyond the threshold between two looks
 * is a step (settimeofday: NTP correcting a clock that ran a year ahead, or setting a board that
 * booted in 1970), and its size is the change.
 *
 * Ages and schedules that a step could have made absurd are judged here:
 *   - a wall time below the floor was stamped by an unsynchronised clock: no age can be taken
 *     from it once the clock is good;
 *   - an age is never negative, and never more than it was when this process first saw the task
 *     plus what the monotonic clock has counted since.
 */
import type { Reading } from '../reading.js';

/** A change of (wall - mono) beyond this is a step, not drift. */
export const STEP_THRESHOLD_MS = 1000;

export interface ClockState {
  /** wall - mono at the last look (ms). */
  offset: number;
  /** The wall clock was at or above the floor at the last look. */
  synced: boolean;
  /** The offset last written to the store (restart-time detection compares with it). */
  persisted: number;
}

export interface ClockLook {
  state: ClockState;
  /** The wall clock stepped by this much since the last look (ms, + forward), or null. */
  step: number | null;
  /** The wall clock crossed the floor. */
  became: 'synced' | 'unsynced' | null;
  /** The state should be written to the store. */
  persist: boolean;
}

/** The first look, with the state the store kept for this boot (a previous run), if any. */
export function firstLook(kept: { offset: number; synced: boolean } | undefined, wall: number, mono: number, floor: number, thresholdMs = STEP_THRESHOLD_MS): ClockLook {
  const offset = wall - mono;
  const synced = wall >= floor;
  const state = { offset, synced, persisted: offset };
  if (!kept) return { state, step: null, became: synced ? 'synced' : null, persist: true };
  const d = offset - kept.offset;
  const step = Math.abs(d) > thresholdMs ? Math.round(d) : null;
  const became = synced && !kept.synced ? 'synced' : !synced && kept.synced ? 'unsynced' : null;
  return { state, step, became, persist: true };
}

/** A later look at the clocks. */
export function look(s: ClockState, wall: number, mono: number, floor: number, thresholdMs = STEP_THRESHOLD_MS): ClockLook {
  const offset = wall - mono;
  const synced = wall >= floor;
  const d = offset - s.offset;
  const step = Math.abs(d) > thresholdMs ? Math.round(d) : null;
  const became = synced && !s.synced ? 'synced' : !synced && s.synced ? 'unsynced' : null;
  // Drift alone is written only when it reaches half the threshold: no flash write per look.
  const persist = step !== null || became !== null || Math.abs(offset - s.persisted) > thresholdMs / 2;
  return { state: { offset, synced, persisted: persist ? offset : s.persisted }, step, became, persist };
}

/**
 * How old a task is by the wall clock, where that can be told: 0 for a first attempt; null when
 * the first attempt was stamped below the floor while the clock is now good, or lies in the future
 * (a step came between).
 */
export function wallAge(firstAttemptAt: number | null, wallNow: number, floor: number): number | null {
  if (firstAttemptAt === null) return 0;
  if (firstAttemptAt < floor && wallNow >= floor) return null;
  const age = wallNow - firstAttemptAt;
  return age < 0 ? null : age;
}

/** A task's age when this process first judged it, and the monotonic time of that. */
export interface SeenAge {
  mono: number;
  age: number;
}

/**
 * The age to judge a retry limit by: the wall age, never more than the age first seen plus what
 * the monotonic clock counted since; where the wall age cannot be told, that bound (0 if the task
 * was never seen).
 */
export function judgeAge(firstAttemptAt: number | null, wallNow: number, floor: number, seen: SeenAge | undefined, monoNow: number): number {
  const w = wallAge(firstAttemptAt, wallNow, floor);
  if (!seen) return w ?? 0;
  const bound = seen.age + Math.max(0, monoNow - seen.mono);
  return w === null ? bound : Math.min(w, bound);
}

/**
 * Flags readings stamped by an unsynchronised clock (ts below the floor): `clock: 'unsynced'` and
 * the monotonic time each was taken at (from the clocks now: a reading is offered as soon as it
 * is stamped). Returns how many were flagged.
 */
export function flagUnsynced(readings: Reading[], wallNow: number, monoNow: number, floor: number): number {
  let n = 0;
  for (const r of readings) {
    if (!(r.ts < floor) || r.clock !== undefined) continue;
    r.clock = 'unsynced';
    r.mono = Math.round(monoNow - (wallNow - r.ts));
    n++;
  }
  return n;
}

/**
 * Re-bases flagged readings on a good wall clock: ts = the monotonic time it was taken at + the
 * offset (wall - mono) of a good clock in the same boot. Returns how many were re-based.
 */
export function rebaseReadings(readings: Array<Partial<Reading>>, offset: number): number {
  let n = 0;
  for (const r of readings) {
    if (r.clock !== 'unsynced' || typeof r.mono !== 'number' || !Number.isFinite(r.mono)) continue;
    r.ts = Math.round(r.mono + offset);
    r.clock = 'rebased';
    delete r.mono;
    n++;
  }
  return n;
}

/** How far ahead a stored retry time may lie: the retry cap or the hard-failure hold (+ its jitter), whichever is longer. */
export function scheduleCap(retry: { maxMs: number; hardFailureHoldMs: number }): number {
  return Math.ceil(Math.max(retry.maxMs * 1.1, retry.hardFailureHoldMs * 1.2)) + 1000;
}
