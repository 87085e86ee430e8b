/**
 * The thermal governor at work: samples the board's CPU temperature (hardware/sensors.ts) on a
 * jittered timer, runs the pure policy (agent/policy/governor.ts) and applies its factor to the
 * lanes' drain and retry rates and to the field pollers. Each throttle is a THERMAL_THROTTLE
 * recovery event (scope 'gateway', subject 'cpu', kind 'throttle') open while it lasts, and a
 * warning in the log; the factor and the temperature are metrics.
 */
import type { Logger } from 'pino';
import type { DeepReadonly, ThrottleConfig } from './config/types.js';
import { govern, initialGovernor, type GovernorState } from './policy/governor.js';
import type { Events } from '../store/events.js';
import { systemClock, type Clock } from './clock.js';
import type { SafeTimer } from '../drivers/timer.js';
import { Guard } from './guard.js';

export interface ThermalDeps {
  cfg: DeepReadonly<ThrottleConfig>;
  /** The CPU temperature now (null: unknown); never rejects. */
  sample: () => Promise<number | null>;
  events: Events;
  log: Logger;
  /** Applies a factor (1: full speed) to everything the governor slows. */
  apply: (factor: number) => void;
  /** The governor's dwell runs on clock.mono(); events are stamped with clock.wall(). */
  clock?: Clock;
  rand?: () => number;
  /** Owns the sampling timer (default: one that only logs). */
  guard?: Guard;
}

export class Thermal {
  /** Last CPU temperature sample (null: no readable sensor). */
  tempC: number | null = null;
  factor = 1;
  private state: GovernorState;
  private timer: SafeTimer | null = null;
  private stopped = false;
  private readonly now: () => number;
  private readonly clock: Clock;
  private readonly rand: () => number;
  private readonly guard: Guard;

  constructor(private readonly deps: ThermalDeps) {
    this.clock = deps.clock ?? systemClock();
    this.now = () => this.clock.mono();
    this.rand = deps.rand ?? Math.random;
    this.guard = deps.guard ?? new Guard({ log: deps.log });
    this.state = initialGovernor(this.now());
  }

  start(): void {
    this.guard.settle('thermal.tick', this.tick(), () => this.arm());
  }

  stop(): void {
    this.stopped = true;
    this.timer?.clear();
    this.timer = null;
  }

  /** One sample and its consequence (exported for tests; the timer calls it). */
  async tick(): Promise<void> {
    const temp = await this.deps.sample().catch(() => null);
    if (this.stopped) return;
    this.tempC = temp;
    this.step(temp);
    this.arm();
  }

  /** The next sample; a failed one re-arms too, so the governor never stops sampling. */
  private arm(): void {
    if (this.stopped) return;
    // +-10% jitter: a fleet of gateways must not sample (and throttle) in lockstep.
    const ms = Math.round(this.deps.cfg.sampleMs * (0.9 + 0.2 * this.rand()));
    this.timer = this.guard.timeout('thermal.tick', () => this.tick(), ms, () => this.arm()).unref();
  }

  private step(temp: number | null): void {
    const t = this.now();
    const c = this.deps.cfg;
    const r = govern({ aboveC: c.aboveC, belowC: c.belowC, factor: c.factor, minDwellMs: c.minDwellMs }, this.state, temp, t);
    this.state = r.state;
    if (r.factor !== this.factor) {
      this.factor = r.factor;
      this.deps.apply(r.factor);
    }
    if (r.change === 'throttle') {
      this.deps.events.open({ scope: 'gateway', subject: 'cpu', kind: 'throttle', code: 'THERMAL_THROTTLE', faultClass: 'local', at: this.clock.wall(), detail: { tempC: temp, aboveC: c.aboveC, factor: r.factor } });
      this.deps.log.warn({ code: 'THERMAL_THROTTLE', tempC: temp, aboveC: c.aboveC, factor: r.factor }, 'CPU hot: drain, retries and polling slowed');
    } else if (r.change === 'release') {
      const ms = this.deps.events.close('gateway', 'cpu', 'throttle', this.clock.wall());
      this.deps.log.info({ tempC: temp, belowC: c.belowC, throttledMs: ms }, temp === null ? 'CPU temperature unknown: throttle released' : 'CPU cool again: full speed');
    }
  }
}
