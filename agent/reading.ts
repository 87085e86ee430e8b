/** A reading, as acquired and as published: `{device, point, ts (epoch ms), value, unit, quality}`. */
export type Quality = 'good' | 'uncertain' | 'bad' | 'not_implemented';

export interface Reading {
  device: string;
  point: string;
  ts: number;
  value: number | string | boolean | null;
  unit: string;
  quality: Quality;
  /**
   * Set only when the wall clock was not synchronised when the reading was taken (docs/clocks.md):
   * 'unsynced': `ts` is from that clock, not true time; 'rebased': `ts` was re-computed from the
   * monotonic clock once the wall clock was good.
   */
  clock?: 'unsynced' | 'rebased';
  /** With 'unsynced': the monotonic time (ms since the boot) the reading was taken at. */
  mono?: number;
}

/** What ingest offers a source: false means the queue is full and the source must hold its position. */
export type Sink = (device: string, readings: Reading[], cursor?: number) => boolean;
