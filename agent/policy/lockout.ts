/**
 * Console login lockout: after `failures` wrong passwords in a row, logins are refused for
 * firstS seconds, doubling at each further failure up to maxS. A guesser at 9600 baud gets a
 * handful of tries an hour; a technician who mistyped waits half a minute. Pure (the caller
 * passes `now`, epoch ms, and persists the state so a reconnect or a restart does not reset it);
 * a success clears it.
 */
export interface LockoutConfig {
  failures: number;
  firstS: number;
  maxS: number;
}
export interface LockoutState {
  /** Wrong passwords in a row. */
  failures: number;
  /** No login is checked before this (epoch ms; 0: none). */
  lockedUntil: number;
}

export const NO_LOCKOUT: Readonly<LockoutState> = Object.freeze({ failures: 0, lockedUntil: 0 });

/** The delay a failure number earns: 0 below the threshold, then firstS, 2 firstS, ... capped. */
export function lockoutDelayS(failures: number, c: LockoutConfig): number {
  if (failures < c.failures) return 0;
  return Math.min(c.maxS, c.firstS * 2 ** Math.min(30, failures - c.failures));
}

/** Seconds left before a password may be tried (0: now). */
export function lockedForS(s: LockoutState, now: number): number {
  return s.lockedUntil > now ? Math.ceil((s.lockedUntil - now) / 1000) : 0;
}

export function afterFailure(s: LockoutState, now: number, c: LockoutConfig): LockoutState {
  const failures = s.failures + 1;
  const delay = lockoutDelayS(failures, c);
  return { failures, lockedUntil: delay > 0 ? now + delay * 1000 : 0 };
}

export function afterSuccess(): LockoutState {
  return { ...NO_LOCKOUT };
}
