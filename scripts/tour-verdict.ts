/**
 * The tour's verdict: what the store committed set against what a subscriber on the broker
 * received. Pure, so that the counting itself is tested (test/tour.test.ts) apart from the run.
 *
 * - missing: a committed batch whose readings never reached the broker. The one thing the
 *   product promises never happens.
 * - duplicates: one reading (device, point, ts) received under two different batch keys: the
 *   store or a source produced it twice, and a consumer deduplicating by key would keep both.
 * - re-sends: the same key received again. MQTT QoS 1 is at-least-once: a message whose PUBACK
 *   was lost (a kill -9 between the broker's ack and the store's commit) goes again with the
 *   same key, and a consumer drops it by key. Counted, and not a fault.
 */

/** One committed batch, from the store. */
export interface StoredBatch {
  key: string;
  device: string;
  readings: number;
  /** The task's status for the uplink the tour watches. */
  status: 'pending' | 'failed' | 'delivered';
}

/** One telemetry message as the subscriber received it. */
export interface Received {
  key: string;
  part: number;
  parts: number;
  historical: boolean;
  /** Arrival, ms since the tour began. */
  at: number;
  readings: { device: string; point: string; ts: number }[];
}

export interface Verdict {
  committedBatches: number;
  committedReadings: number;
  deliveredReadings: number;
  pendingReadings: number;
  failedReadings: number;
  receivedBatches: number;
  receivedReadings: number;
  missingBatches: number;
  missingReadings: number;
  /** Keys received that the store does not hold (another publisher on the topic?). */
  unknownBatches: number;
  duplicateReadings: number;
  resentMessages: number;
  historicalMessages: number;
  liveMessages: number;
  ok: boolean;
}

export function verdict(stored: readonly StoredBatch[], received: readonly Received[]): Verdict {
  const byKey = new Map(stored.map((b) => [b.key, b]));
  // key -> the parts seen, each with its reading count
  const parts = new Map<string, Map<number, number>>();
  let resent = 0;
  let historical = 0;
  let live = 0;
  const owner = new Map<string, string>(); // reading identity -> the first key it came under
  let duplicates = 0;
  for (const m of received) {
    let seen = parts.get(m.key);
    if (!seen) parts.set(m.key, (seen = new Map()));
    if (seen.has(m.part)) {
      resent++;
      continue;
    }
    seen.set(m.part, m.readings.length);
    if (m.historical) historical++;
    else live++;
    for (const r of m.readings) {
      const id = `${r.device}\u0000${r.point}\u0000${r.ts}`;
      const first = owner.get(id);
      if (first === undefined) owner.set(id, m.key);
      else if (first !== m.key) duplicates++;
    }
  }
  const readingsOf = (key: string) => [...(parts.get(key)?.values() ?? [])].reduce((a, b) => a + b, 0);
  let committedReadings = 0;
  let delivered = 0;
  let pending = 0;
  let failed = 0;
  let missingBatches = 0;
  let missingReadings = 0;
  for (const b of stored) {
    committedReadings += b.readings;
    if (b.status === 'delivered') delivered += b.readings;
    else if (b.status === 'pending') pending += b.readings;
    else failed += b.readings;
    const got = readingsOf(b.key);
    if (got < b.readings) {
      missingBatches++;
      missingReadings += b.readings - got;
    }
  }
  let receivedReadings = 0;
  let unknown = 0;
  for (const key of parts.keys()) {
    receivedReadings += readingsOf(key);
    if (!byKey.has(key)) unknown++;
  }
  return {
    committedBatches: stored.length,
    committedReadings,
    deliveredReadings: delivered,
    pendingReadings: pending,
    failedReadings: failed,
    receivedBatches: parts.size,
    receivedReadings,
    missingBatches,
    missingReadings,
    unknownBatches: unknown,
    duplicateReadings: duplicates,
    resentMessages: resent,
    historicalMessages: historical,
    liveMessages: live,
    ok: missingReadings === 0 && duplicates === 0 && unknown === 0 && stored.length > 0,
  };
}

/**
 * The drain rate a subscriber saw: historical messages within [from, to) (ms since the tour
 * began), timed from the first message after the bucket's initial burst (`burst` messages go at
 * once when a drain starts with a full bucket) to the last; null when too few arrived to time.
 */
export function drainRate(received: readonly Received[], from: number, to: number, burst = 0): { messages: number; perSec: number } | null {
  const times = received.filter((m) => m.historical && m.at >= from && m.at < to).map((m) => m.at).sort((a, b) => a - b);
  const timed = times.slice(Math.min(Math.max(0, Math.floor(burst) - 1), times.length));
  if (timed.length < 2) return null;
  const span = (timed[timed.length - 1] - timed[0]) / 1000;
  return { messages: times.length, perSec: span > 0 ? (timed.length - 1) / span : Infinity };
}

/** The longest time between two live (non-historical) messages within [from, to), in ms. */
export function longestLiveGap(received: readonly Received[], from: number, to: number): number | null {
  const times = received.filter((m) => !m.historical && m.at >= from && m.at < to).map((m) => m.at).sort((a, b) => a - b);
  if (times.length === 0) return null;
  let gap = times[0] - from;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
  return Math.max(gap, to - times[times.length - 1]);
}
