/**
 * A seeded rand() for the fleet bench and the backoff simulation (mulberry32, the same generator
 * as test/helpers/rand.ts: scripts do not import test/). Every gateway and every simulated client
 * gets its own stream, so a run is reproducible and the streams are independent.
 */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The top of a [0, 1) draw: pins EXPONENTIAL_BACKOFF's full-jitter draw to its cap (no jitter). */
export const ALMOST_ONE = 1 - Number.EPSILON;
