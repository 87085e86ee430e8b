/**
 * The six fleet strategies of the benchmark, as uplink configs of the real agent. Only what a
 * strategy is about differs; everything else is the agent's default.
 *
 *   naive         FIXED 1 s, no jitter: mqtt.js's own reconnectPeriod (1000 ms, not jittered);
 *                 the backlog sent as fast as the window allows, no breaker, no retry budget.
 *   exponential   capped exponential without jitter: EXPONENTIAL_BACKOFF with the process's
 *                 Math.random pinned to the top of [0, 1) (the draw then returns the cap itself:
 *                 1, 2, 3, 3 ... s under the reconnect ceiling); unlimited drain, no breaker, no retry budget.
 *   full-jitter   EXPONENTIAL_BACKOFF (the agent's reconnect as is); unlimited drain, no breaker.
 *   decorrelated  DECORRELATED_JITTER; unlimited drain, no breaker.
 *   adaptive      ADAPTIVE reconnect, with Holdfast's drain limits, breaker and retry budget.
 *   holdfast      the defaults: EXPONENTIAL_BACKOFF up to retry.reconnectMaxMs, breaker,
 *                 drain.startJitterMs, retry budget, with drain.messagesPerSec set by the
 *                 operator's rule (docs/fleet.md).
 * Every row reconnects under the same ceiling (retry.reconnectMaxMs): only the jitter differs.
 */
export const STRATEGY_NAMES = ['naive', 'exponential', 'full-jitter', 'decorrelated', 'adaptive', 'holdfast'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export interface Strategy {
  name: StrategyName;
  /** Merged into the uplink's config. */
  uplink: Record<string, unknown>;
  /** Pin Math.random in the worker (the exponential row: no jitter anywhere in that process). */
  pinRandom: boolean;
  /** Whether the drain is limited (the ideal drain time applies). */
  limited: boolean;
}

/** What a client without Holdfast's drain protections does: everything at once, no breaker. */
const UNLIMITED = {
  drain: { startJitterMs: 0, messagesPerSec: 1_000_000, readingsPerSec: 1_000_000_000 },
  retryBudget: { ratio: 10, minPerSec: 1_000_000 },
  breaker: { minCalls: 1_000_000_000 },
};

/**
 * The strategy's uplink config. `messagesPerSec`: the per-gateway drain rate of the limited
 * rows; `overrides`: defaults under test (e.g. drain.startJitterMs), merged per section.
 */
export function strategy(name: StrategyName, messagesPerSec: number, overrides: Record<string, Record<string, unknown>> = {}): Strategy {
  const limited = (extra: Record<string, unknown>) => {
    const out: Record<string, Record<string, unknown>> = { drain: { messagesPerSec } };
    for (const [k, v] of Object.entries({ ...overrides })) out[k] = { ...(out[k] ?? {}), ...v };
    for (const [k, v] of Object.entries(extra)) out[k] = { ...(out[k] ?? {}), ...(v as object) };
    return out;
  };
  switch (name) {
    case 'naive':
      return { name, uplink: { ...UNLIMITED, retry: { strategy: 'FIXED', baseMs: 1000, jitter: 0 } }, pinRandom: false, limited: false };
    case 'exponential':
      return { name, uplink: { ...UNLIMITED, retry: { strategy: 'EXPONENTIAL_BACKOFF' } }, pinRandom: true, limited: false };
    case 'full-jitter':
      return { name, uplink: { ...UNLIMITED, retry: { strategy: 'EXPONENTIAL_BACKOFF' } }, pinRandom: false, limited: false };
    case 'decorrelated':
      return { name, uplink: { ...UNLIMITED, retry: { strategy: 'DECORRELATED_JITTER' } }, pinRandom: false, limited: false };
    case 'adaptive':
      return { name, uplink: limited({ retry: { strategy: 'ADAPTIVE' } }), pinRandom: false, limited: true };
    case 'holdfast':
      return { name, uplink: limited({}), pinRandom: false, limited: true };
  }
}
