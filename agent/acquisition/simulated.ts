/**
 * The `simulated` source: a stand-in field device that needs no plant. Each poll
 * yields `points` readings; the first is `counter`, which rises by exactly one per poll and is
 * committed as the source cursor, so loss or duplication is visible to anyone downstream and a
 * restarted agent resumes the count where the store left it.
 */
import type { SimulatedSourceConfig, DeepReadonly } from '../config/types.js';
import type { Reading, Sink } from '../reading.js';
import type { Guard } from '../guard.js';

const EXTRA = [
  { point: 'voltage_l1', unit: 'V', base: 230, swing: 4 },
  { point: 'current_l1', unit: 'A', base: 12, swing: 3 },
  { point: 'active_power', unit: 'W', base: 2700, swing: 600 },
  { point: 'frequency', unit: 'Hz', base: 50, swing: 0.05 },
  { point: 'power_factor', unit: '', base: 0.95, swing: 0.03 },
];

export class SimulatedSource {
  private timer: NodeJS.Timeout | null = null;
  private counter: number;

  constructor(
    private readonly cfg: DeepReadonly<SimulatedSourceConfig>,
    private readonly sink: Sink,
    startCursor: number,
    private readonly now: () => number,
    /** Owns the poll interval. */
    private readonly guard: Guard,
  ) {
    this.counter = startCursor;
  }

  get device(): string {
    return this.cfg.device;
  }

  get position(): number {
    return this.counter;
  }

  get done(): boolean {
    return this.cfg.stopAfter !== undefined && this.counter >= this.cfg.stopAfter;
  }

  /** One poll: the next counter value and the other points; false if the sink refused it. */
  poll(): boolean {
    if (this.done) return false;
    const ts = this.now();
    const next = this.counter + 1;
    const readings: Reading[] = [{ device: this.cfg.device, point: 'counter', ts, value: next, unit: '', quality: 'good' }];
    for (let i = 1; i < this.cfg.points; i++) {
      const e = EXTRA[(i - 1) % EXTRA.length];
      const suffix = i > EXTRA.length ? `_${Math.floor((i - 1) / EXTRA.length)}` : '';
      const v = e.base + e.swing * Math.sin((next + i) / 17);
      readings.push({ device: this.cfg.device, point: e.point + suffix, ts, value: Math.round(v * 1000) / 1000, unit: e.unit, quality: 'good' });
    }
    if (!this.sink(this.cfg.device, readings, next)) return false;
    this.counter = next;
    return true;
  }

  start(): void {
    if (this.timer) return;
    this.timer = this.guard.interval('source.simulated', () => {
      this.poll();
      if (this.done) this.stop();
    }, this.cfg.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
