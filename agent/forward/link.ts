/**
 * The link half of a lane: one uplink's connection, its circuit breaker, its reconnect backoff
 * (jittered; ADAPTIVE from the outage history) and the hold after a hard link failure (bad
 * credentials: data held, alarm raised, no hammering). The policies are the pure modules in
 * agent/policy/; this class keeps their state, asks the driver to connect, and records every
 * transition (outages, breaker changes, alarms) in the store.
 */
import type { Logger } from 'pino';
import type { DeepReadonly, UplinkCommon } from '../config/types.js';
import { admit, initialBreaker, record, reset, transition, type Admission, type BreakerState } from '../policy/breaker.js';
import { classify, type Failure } from '../policy/classify.js';
import { nextDelay } from '../policy/retry.js';
import { adaptiveDelay } from '../policy/adaptive.js';
import type { UplinkDriver } from '../../drivers/uplink.js';
import type { Events } from '../../store/events.js';
import { wallAt, type Clock } from '../clock.js';

export interface LinkDeps {
  cfg: DeepReadonly<UplinkCommon>;
  driver: UplinkDriver;
  events: Events;
  log: Logger;
  /** The breaker, backoff and hold run on clock.mono(); events and link_state are stamped with clock.wall(). */
  clock: Clock;
  rand: () => number;
  /** Run the lane again after `ms` (0: on the next turn of the event loop). */
  wake: (ms: number) => void;
  /** The link came up (after `outageMs` down, if an outage was open). */
  onUp: (outageMs: number | undefined) => void;
  /** The lane was stopped: a connect that completes is ignored. */
  stopped: () => boolean;
  /** Told of every failed connect and lost connection (metrics). */
  onFailure?: (f: Failure) => void;
}

export class Link {
  connected = false;
  private connecting = false;
  private failures = 0;
  private prevDelay = 0;
  /** The code of the last failure the breaker counted (named in its transitions). */
  private lastCode: string | null = null;
  /** Failure lines left out of the log since the last one written, by code. */
  private readonly quiet = new Map<string, number>();
  /** Monotonic, like every time the link keeps. */
  nextConnectAt = 0;
  heldUntil = 0;
  /** When the open outage began (monotonic), if this process saw it begin. */
  private outageFrom: number | null = null;
  private breaker: BreakerState;
  private readonly name: string;
  private readonly now: () => number;
  private readonly wall: () => number;
  /** The code of the config fault (a file the driver reads) in the current run of failures, once recorded. */
  private configCode: string | null = null;

  constructor(private readonly deps: LinkDeps) {
    this.name = deps.cfg.name;
    this.now = () => deps.clock.mono();
    this.wall = () => deps.clock.wall();
    this.breaker = initialBreaker(this.now());
  }

  get breakerName(): string {
    return this.breaker.name;
  }

  /** The breaker as admission reads it (agent/forward/order.ts). */
  get breakerState(): BreakerState {
    return this.breaker;
  }

  /** Stores the breaker state of an admission that was used (a message went out). */
  admitted(state: BreakerState): void {
    this.setBreaker(state);
  }

  /** Whether the breaker lets a call through now (and whether it is a half-open probe). */
  admit(t: number): Admission {
    const a = admit(this.deps.cfg.breaker, this.breaker, t);
    this.setBreaker(a.state);
    return a;
  }

  /** The outcome of a call for the breaker (`ok` false: a link failure). */
  record(ok: boolean, probe: boolean, code?: string): void {
    if (!ok && code) this.lastCode = code;
    this.setBreaker(record(this.deps.cfg.breaker, this.breaker, this.now(), ok, probe, this.deps.rand));
  }

  /** One connection attempt when the backoff, the hold and the breaker allow it. */
  async connect(): Promise<void> {
    if (this.connecting) return;
    const t = this.now();
    const notBefore = Math.max(this.heldUntil, this.nextConnectAt);
    if (t < notBefore) return this.deps.wake(notBefore - t);
    const a = this.admit(t);
    if (!a.allowed) return this.deps.wake(Math.max(10, (a.retryAt ?? t + 1000) - t));
    this.connecting = true;
    let r: Awaited<ReturnType<UplinkDriver['connect']>>;
    try {
      r = await this.deps.driver.connect();
    } finally {
      // A driver that throws (a bug: failures are results) must not wedge the link; the lane's guard reports it.
      this.connecting = false;
    }
    if (this.deps.stopped()) return;
    if (r.ok) this.up(a.probe);
    else this.failed(classify(r.failure), a.probe);
    this.deps.wake(0);
  }

  private up(probe: boolean): void {
    this.outageFrom = null;
    this.connected = true;
    this.configCode = null;
    this.failures = 0;
    this.prevDelay = 0;
    this.record(true, probe);
    const outage = this.deps.events.close('uplink', this.name, 'outage', this.wall());
    this.deps.onUp(outage);
    this.persist();
  }

  /** The driver lost the connection; false if it was not up. */
  down(f: Failure): boolean {
    if (!this.connected) return false;
    this.connected = false;
    this.failed(f, false);
    return true;
  }

  /** A send failed hard on the link (credentials revoked): drop the connection and hold. */
  hardFailure(f: Failure): void {
    this.connected = false;
    void this.deps.driver.close();
    this.failed(f, false);
  }

  /** A failed connect or a lost link: breaker, then the hold (hard) or the next reconnect time. */
  private failed(f: Failure, probe: boolean): void {
    const t = this.now();
    this.record(false, probe, f.code);
    this.failures++;
    this.deps.onFailure?.(f);
    if (f.faultClass === 'config' && f.code !== this.configCode) {
      // A file the uplink needs is missing or refused: an operator's fault, said once per run (the retries stay quiet).
      this.configCode = f.code;
      this.deps.events.record({ scope: 'uplink', subject: this.name, kind: 'config', code: f.code, faultClass: f.faultClass, at: this.wall(), detail: { message: f.message } });
      this.deps.log.error({ uplink: this.name, code: f.code }, `uplink cannot connect: ${f.message}; retrying`);
    }
    // The reconnect has its own, lower ceiling: it bounds how late the link notices a recovery.
    const c = this.deps.cfg.retry;
    const r = { ...c, maxMs: Math.min(c.maxMs, Math.max(c.baseMs, c.reconnectMaxMs)) };
    if (f.retry === 'hard') {
      const hold = Math.round(r.hardFailureHoldMs * (0.8 + 0.4 * this.deps.rand()));
      this.heldUntil = t + hold;
      this.deps.events.record({ scope: 'uplink', subject: this.name, kind: 'alarm', code: f.code, faultClass: f.faultClass, at: this.wall(), detail: { message: f.message, holdMs: hold } });
      this.deps.log.error({ uplink: this.name, code: f.code, holdMs: hold }, `hard link failure, data held: ${f.message}`);
    } else {
      const delay =
        r.strategy === 'ADAPTIVE'
          ? Math.max(adaptiveDelay(r, { durationsMs: this.deps.events.outageHistory(this.name) }, this.outageSoFar(), this.deps.rand), f.retryAfterMs ?? 0)
          : nextDelay(r, { attempt: this.failures, prevDelayMs: this.prevDelay || r.baseMs }, this.deps.rand, f.retryAfterMs);
      this.prevDelay = delay;
      this.nextConnectAt = t + delay;
      if (this.failures <= 3 || this.failures % 20 === 0) {
        // The lines left out in between are summed by code here, so no refusal code goes unsaid.
        const suppressed = this.quiet.size > 0 ? Object.fromEntries(this.quiet) : undefined;
        this.quiet.clear();
        this.deps.log.warn({ uplink: this.name, code: f.code, attempt: this.failures, retryInMs: delay, suppressedSinceLast: suppressed }, `uplink down: ${f.message}`);
      } else this.quiet.set(f.code, (this.quiet.get(f.code) ?? 0) + 1);
    }
    if (this.outageFrom === null && this.deps.events.outageStart(this.name) === undefined) this.outageFrom = t;
    this.deps.events.open({ scope: 'uplink', subject: this.name, kind: 'outage', code: f.code, faultClass: f.faultClass, at: this.wall() });
    this.persist(f);
  }

  /** How long the open outage has lasted: on the monotonic clock when this process saw it begin, else from its stored start. */
  private outageSoFar(): number {
    if (this.outageFrom !== null) return this.now() - this.outageFrom;
    const start = this.deps.events.outageStart(this.name);
    return start === undefined ? 0 : Math.max(0, this.wall() - start);
  }

  /** Manual breaker reset (console, CLI, MQTT, API): closed, hold lifted, reconnect now. */
  reset(): void {
    const t = this.now();
    this.setBreaker(reset(t), 'manual reset');
    this.heldUntil = 0;
    this.nextConnectAt = 0;
    this.failures = 0;
    this.deps.events.record({ scope: 'uplink', subject: this.name, kind: 'breaker', at: this.wall(), detail: { reset: 'manual' } });
  }

  private setBreaker(next: BreakerState, why?: string): void {
    const tr = transition(this.breaker, next);
    this.breaker = next;
    if (tr) {
      // Named by the last failure's code: the refusal that opened it, or the one it recovered from.
      const code = this.lastCode ?? undefined;
      this.deps.events.record({ scope: 'uplink', subject: this.name, kind: 'breaker', code, at: this.wall(), detail: { transition: tr, why } });
      this.deps.log.warn({ uplink: this.name, breaker: tr, code }, `breaker ${tr}${code ? ` (last failure ${code})` : ''}`);
      this.persist();
    }
  }

  /** The link's state for `holdfast status` (link_state). */
  persist(f?: Failure): void {
    this.deps.events.link({
      uplink: this.name, connected: this.connected, breaker: this.breaker.name, breakerSince: wallAt(this.deps.clock, this.breaker.since),
      at: this.wall(), code: f?.code, error: f?.message,
    });
  }
}
