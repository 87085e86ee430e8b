/**
 * A seeded, deterministic rand() for policy tests: mulberry32. The policy modules take
 * randomness as an injected `() => number` in [0, 1); a fixed seed stands in for
 * Math.random so every run draws the same sequence, and constant sources (`fixed`) pin
 * a draw to an exact edge of its range.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A rand() that always returns r (0 and 1 - 1e-12 pin the two ends of a range). */
export function fixed(r: number): () => number {
  return () => r;
}

/** A rand() that returns the given values in turn, then repeats the last. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)];
}

/** The largest double below 1: the top of a [0, 1) draw. */
export const ALMOST_ONE = 1 - Number.EPSILON;
