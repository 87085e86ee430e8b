/**
 * The agent's two clocks. `mono()` runs every timer, age, rate and schedule: it never steps.
 * `wall()` only stamps (readings, events, rows that must survive a restart). A wall clock below
 * CLOCK_FLOOR_MS (agent/version.ts) is not synchronised: the board booted without an RTC and NTP
 * has not set it yet.
 *
 * mono() is CLOCK_MONOTONIC (process.hrtime), which counts from the boot, not from the process:
 * two processes of the same boot read the same clock, so a reading stamped by a previous run of
 * the agent can still be re-based once this boot's wall clock is known to be good. `boot` names
 * the boot (the kernel's boot_id); where it cannot be read, each process is its own "boot".
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CLOCK_FLOOR_MS } from './version.js';

export interface Clock {
  /** Monotonic milliseconds (from the boot); never steps. */
  mono(): number;
  /** Wall-clock epoch milliseconds (Date.now()); may step either way. */
  wall(): number;
  /** The boot `mono()` counts in. */
  readonly boot: string;
  /** Wall times below this were stamped by an unsynchronised clock. */
  readonly floor: number;
}

function readBootId(): string {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    if (/^[0-9a-f-]{8,64}$/i.test(id)) return id;
  } catch {
    /* not Linux, or /proc hidden: fall through */
  }
  return `process-${randomUUID()}`;
}

let boot: string | undefined;

/** The real clocks. */
export function systemClock(): Clock {
  boot ??= readBootId();
  return {
    mono: () => Number(process.hrtime.bigint() / 1000n) / 1000,
    wall: () => Date.now(),
    boot,
    floor: CLOCK_FLOOR_MS,
  };
}

/** The wall time that corresponds to monotonic time `mono`, by the clocks as they are now. */
export function wallAt(clock: Clock, mono: number): number {
  return Math.round(mono + (clock.wall() - clock.mono()));
}

/**
 * A clock for tests: both clocks set by hand (`advance` moves both, `stepWall` only the wall
 * clock, as NTP does).
 */
export function manualClock(wall: number, mono = 1_000_000, floor = CLOCK_FLOOR_MS, bootId = 'test-boot'): Clock & {
  advance(ms: number): void;
  stepWall(ms: number): void;
} {
  let w = wall;
  let m = mono;
  return {
    mono: () => m,
    wall: () => w,
    boot: bootId,
    floor,
    advance(ms: number) {
      w += ms;
      m += ms;
    },
    stepWall(ms: number) {
      w += ms;
    },
  };
}
