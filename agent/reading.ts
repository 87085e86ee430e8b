/** A reading, as acquired and as published: `{device, point, ts (epoch ms), value, unit, quality}`. */
export type Quality = 'good' | 'uncertain' | 'bad' | 'not_implemented';

export interface Reading {
  device: string;
  point: string;
  ts: number;
  value: number | string | boolean | null;
  unit: string;
  quality: Quality;
}

/** What ingest offers a source: false means the queue is full and the source must hold its position. */
export type Sink = (device: string, readings: Reading[], cursor?: number) => boolean;
