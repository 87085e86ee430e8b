/**
 * Sets up the clock watch (agent/clock-watch.ts) for a running engine: the lanes it flushes before
 * stored times move and re-reads after batches are rewritten, the batches in flight it must not
 * rewrite, the schedules it re-arms after a step, and the metrics of steps, synchronisation and
 * flagged readings.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { ClockWatch } from './clock-watch.js';
import { scheduleCap } from './policy/clock.js';
import type { Config } from './config/types.js';
import type { Lane } from './forward/lane.js';
import type { Metrics } from './api/metrics.js';
import type { IngestStats } from './ingest.js';
import type { PayloadCodec } from '../store/codec.js';
import type { Store } from '../store/store.js';
import type { Events } from '../store/events.js';
import type { Guard } from './guard.js';

export interface ClockWiring {
  cfg: Config;
  clock: Clock;
  store: () => Store;
  events: Events;
  codec: PayloadCodec;
  log: Logger;
  lanes: () => readonly Lane[];
  metrics: () => Metrics;
  /** After a step: schedules kept in wall time (the purge's cron line) are computed again. */
  afterStep: () => void;
  guard: Guard;
}

export function createClockWatch(w: ClockWiring): ClockWatch {
  return new ClockWatch({
    clock: w.clock, store: w.store, events: w.events, codec: w.codec, log: w.log, guard: w.guard,
    caps: w.cfg.uplinks.filter((u) => u.enabled).map((u) => ({ uplink: u.name, capMs: scheduleCap(u.retry) })),
    beforeRebase: () => {
      for (const l of w.lanes()) l.flush();
    },
    inflight: () => new Set(w.lanes().flatMap((l) => [...l.inflightTasks()])),
    afterRewrite: () => {
      for (const l of w.lanes()) l.rescan();
    },
    onStep: (ms) => {
      w.metrics().clockSteps.inc({ direction: ms > 0 ? 'forward' : 'backward' });
      w.afterStep();
    },
    onSynced: (ok) => w.metrics().clockSynced.set(ok ? 1 : 0),
    onRebased: (n, lost) => {
      if (n > 0) w.metrics().unsyncedReadings.inc({ outcome: 'rebased_stored' }, n);
      if (lost > 0) w.metrics().unsyncedReadings.inc({ outcome: 'unrebasable' }, lost);
    },
  });
}

/** Counts what ingest flagged (and re-based before sealing) since the last call, into the metrics. */
export function unsyncedCounter(metrics: () => Metrics, stats: () => IngestStats): () => void {
  let flagged = 0;
  let rebased = 0;
  return () => {
    const st = stats();
    const m = metrics().unsyncedReadings;
    if (st.unsyncedReadings > flagged) m.inc({ outcome: 'flagged' }, st.unsyncedReadings - flagged);
    if (st.rebasedReadings > rebased) m.inc({ outcome: 'rebased_memory' }, st.rebasedReadings - rebased);
    flagged = st.unsyncedReadings;
    rebased = st.rebasedReadings;
  };
}
