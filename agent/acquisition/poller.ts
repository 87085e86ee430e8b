/**
 * One device's poll loop. Points are coalesced into as few reads as the protocol allows
 * (drivers/modbus/plan.ts), read through the bus's serial queue, decoded, and offered to ingest
 * as one poll. The schedule is fixed-rate (poll k starts at t0 + k * pollMs; a late poll does not
 * shift the ones after it, missed slots are skipped and counted). After a failed poll the next
 * one waits for the shared backoff (agent/policy/retry.ts), sooner for "busy" exceptions.
 * Points answered with exception 01/02/03 stop being polled (a config fault, reported); their
 * read is re-probed alone on a slow, jittered schedule (agent/acquisition/refused.ts) and the points
 * come back once it is answered.
 */
import type { Logger } from 'pino';
import type { ReadRequest } from '../../drivers/modbus/frame.js';
import { decodePoint, registerCount } from '../../drivers/modbus/decode.js';
import { planReads } from '../../drivers/modbus/plan.js';
import { discover, modelPoints } from '../../drivers/modbus/sunspec.js';
import type { ModbusFailure, PointDef, ReadPlanItem, ReadResult } from '../../drivers/modbus/types.js';
import { nextDelay } from '../policy/retry.js';
import { pollStride } from '../policy/governor.js';
import type { RetryConfig } from '../config/types.js';
import type { Reading, Sink } from '../reading.js';
import { systemClock, type Clock } from '../clock.js';
import type { SafeTimer } from '../../drivers/timer.js';
import { Guard } from '../guard.js';
import { DEFAULT_REPROBE, type ReprobeConfig } from '../policy/reprobe.js';
import { RefusedReads } from './refused.js';

export interface BusReader {
  read(req: ReadRequest, timeoutMs: number): Promise<ReadResult>;
}

export interface PollerOptions {
  bus: string;
  device: string;
  unitId: number;
  pollMs: number;
  timeoutMs: number;
  /** Fixed points from a device map, or 'sunspec' to discover them. */
  points: readonly PointDef[] | 'sunspec';
  gap: number;
  retry: Pick<RetryConfig, 'strategy' | 'baseMs' | 'maxMs' | 'jitter'>;
  /** Multiplier applied to the backoff after a "busy" answer (exception 05/06). */
  soonerFactor: number;
  /** Schedule of the re-probes of reads refused with exception 01/02/03 (default DEFAULT_REPROBE). */
  reprobe?: ReprobeConfig;
}

/** `address` on an ok: a refused read at that address was answered again (clears its point fault). */
export type PollOutcome = { ok: true; address?: number } | { ok: false; failure: ModbusFailure; address?: number };

const refusal = (f: ModbusFailure): boolean => f.kind === 'exception' && f.exception !== undefined && f.exception >= 1 && f.exception <= 3;

const FN = { holding: 3, input: 4, coil: 1, discrete: 2 } as const;

export class DevicePoller {
  private timer: SafeTimer | null = null;
  private plan: ReadPlanItem[] = [];
  private disabled = new Set<string>();
  private readonly refused: RefusedReads;
  private points: PointDef[] = [];
  private failures = 0;
  private prevDelay = 0;
  private t0 = 0;
  private k = 0;
  private stride = 1;
  private stopped = false;
  readonly stats = { polls: 0, okPolls: 0, failedPolls: 0, skippedSlots: 0, lateMs: [] as number[] };

  constructor(
    private readonly opts: PollerOptions,
    private readonly bus: BusReader,
    private readonly sink: Sink,
    private readonly report: (o: PollOutcome) => void,
    private readonly log: Logger,
    private readonly rand: () => number = Math.random,
    /** The grid runs on clock.mono() (a wall-clock step neither floods nor stalls the bus); readings are stamped with clock.wall(). */
    private readonly clock: Clock = systemClock(),
    /** Owns the poll timer: a failed poll is reported and the next slot still comes. */
    private readonly guard: Guard = new Guard({ log }),
  ) {
    this.refused = new RefusedReads(opts.reprobe ?? DEFAULT_REPROBE, opts.device, log, rand);
    if (opts.points !== 'sunspec') this.setPoints([...opts.points]);
  }

  private setPoints(points: PointDef[]): void {
    this.points = points;
    this.plan = planReads(points.filter((p) => !this.disabled.has(p.name)), { gap: this.opts.gap });
  }

  /** The thermal governor's factor: polled every pollStride(factor)-th slot (1: every slot). */
  setThrottle(factor: number): void {
    this.stride = pollStride(factor);
  }

  /** `at`: monotonic time of the first slot. */
  start(at = this.clock.mono()): void {
    this.t0 = at;
    this.k = 0;
    this.arm(at);
  }

  private arm(when: number): void {
    if (this.stopped) return;
    this.timer = this.guard.timeout('field.poll', () => this.tick(when), when - this.clock.mono(), () => this.arm(this.clock.mono() + this.opts.pollMs));
  }

  private async tick(scheduled: number): Promise<void> {
    const start = this.clock.mono();
    if (this.stats.lateMs.length < 100_000) this.stats.lateMs.push(start - scheduled);
    const outcome = await this.poll();
    if (this.stopped) return;
    const now = this.clock.mono();
    // next slot on the fixed grid, skipping the ones already past
    this.k = Math.max(this.k + 1, Math.ceil((now - this.t0) / this.opts.pollMs));
    const missed = this.k - 1 - Math.floor((scheduled - this.t0) / this.opts.pollMs);
    if (missed > 0) this.stats.skippedSlots += missed;
    // Throttled (thermal governor): the same grid, only every stride-th slot.
    if (this.stride > 1) this.k = Math.ceil(this.k / this.stride) * this.stride;
    let next = this.t0 + this.k * this.opts.pollMs;
    if (!outcome.ok) {
      this.failures++;
      const busy = outcome.failure.kind === 'exception' && (outcome.failure.exception === 5 || outcome.failure.exception === 6);
      const d = nextDelay(this.opts.retry, { attempt: this.failures, prevDelayMs: this.prevDelay || this.opts.retry.baseMs }, this.rand);
      this.prevDelay = d;
      const wait = busy ? Math.max(1, Math.round(d * this.opts.soonerFactor)) : d;
      if (now + wait > next) {
        this.k = Math.ceil((now + wait - this.t0) / this.opts.pollMs);
        next = this.t0 + this.k * this.opts.pollMs;
      }
    } else {
      this.failures = 0;
      this.prevDelay = 0;
    }
    this.arm(next);
  }

  /** One poll of every planned read; stops at the first timeout or transport failure. */
  async poll(): Promise<PollOutcome> {
    this.stats.polls++;
    if (this.opts.points === 'sunspec' && this.points.length === 0) {
      const found = await this.discover();
      if (!found.ok) return this.fail(found);
    }
    const raws = new Map<string, number[] | boolean>();
    let configFault: PollOutcome | null = null;
    // This poll reads what was planned when it began; a change of plan applies from the next one.
    const plan = this.plan;
    // Refused reads whose re-probe is due go first, each alone.
    for (const item of this.refused.due(this.clock.mono())) {
      const r = await this.bus.read({ unit: this.opts.unitId, fn: FN[item.kind], address: item.address, count: item.count }, this.opts.timeoutMs);
      if (r.ok) {
        this.refused.answered(item, this.clock.mono());
        for (const p of item.points) this.disabled.delete(p.name);
        collect(item, r, raws);
        this.setPoints(this.points);
        this.report({ ok: true, address: item.address });
      } else if (refusal(r.failure)) {
        this.refused.refuse(item, `MODBUS_EXCEPTION_0${r.failure.exception}`, this.clock.mono());
      } else {
        return this.fail({ ok: false, failure: r.failure, address: item.address });
      }
    }
    for (const item of plan) {
      const r = await this.bus.read({ unit: this.opts.unitId, fn: FN[item.kind], address: item.address, count: item.count }, this.opts.timeoutMs);
      if (!r.ok) {
        const f = r.failure;
        if (refusal(f)) {
          for (const p of item.points) this.disabled.add(p.name);
          this.refused.refuse(item, `MODBUS_EXCEPTION_0${f.exception}`, this.clock.mono());
          configFault = { ok: false, failure: f, address: item.address };
          this.setPoints(this.points);
          continue;
        }
        return this.fail({ ok: false, failure: f, address: item.address });
      }
      collect(item, r, raws);
    }
    const ts = this.clock.wall();
    const out: Reading[] = [];
    for (const p of this.points) {
      const raw = raws.get(p.name);
      if (raw === undefined) continue;
      if (typeof raw === 'boolean') {
        out.push({ device: this.opts.device, point: p.name, ts, value: raw, unit: p.unit ?? '', quality: 'good' });
        continue;
      }
      // A SunSpec scale factor is an int16 read in the same poll; a missing one decodes as "not implemented".
      let sf: number | undefined;
      if (p.scaleFactor !== undefined) {
        const sfRaw = raws.get(p.scaleFactor);
        sf = Array.isArray(sfRaw) ? (sfRaw[0] << 16) >> 16 : -32768;
      }
      const d = decodePoint(p, raw, sf);
      out.push({ device: this.opts.device, point: p.name, ts, value: d.value, unit: p.unit ?? '', quality: d.quality });
    }
    if (out.length > 0 && !this.sink(this.opts.device, out)) this.log.warn({ device: this.opts.device, code: 'INGEST_QUEUE_FULL' }, 'poll dropped: ingest queue full');
    this.stats.okPolls++;
    this.report(configFault ?? { ok: true });
    return { ok: true };
  }

  private fail(o: PollOutcome & { ok: false }): PollOutcome {
    this.stats.failedPolls++;
    this.report(o);
    return o;
  }

  private async discover(): Promise<{ ok: true } | { ok: false; failure: ModbusFailure }> {
    let failure: ModbusFailure | null = null;
    const found = await discover(async (address, count) => {
      const r = await this.bus.read({ unit: this.opts.unitId, fn: 3, address, count }, this.opts.timeoutMs);
      if (r.ok) return r.registers ?? null;
      if (r.failure.kind !== 'exception') failure = r.failure;
      return null;
    });
    if (!found) return { ok: false, failure: failure ?? { kind: 'exception', exception: 2, message: 'no SunSpec marker at 40000, 0 or 50000' } };
    const points = found.models.flatMap((m) => modelPoints(m));
    this.log.info({ device: this.opts.device, base: found.base, models: found.models.map((m) => m.id), points: points.length }, 'SunSpec discovery');
    this.setPoints(points);
    return { ok: true };
  }

  /** Reads refused with exception 01/02/03 and waiting for their re-probe. */
  get refusedReads(): number {
    return this.refused.size;
  }

  get activePoints(): number {
    return this.points.length - this.disabled.size;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.clear();
  }
}

/** The raw values of a read's points, by point name. */
function collect(item: ReadPlanItem, r: Extract<ReadResult, { ok: true }>, raws: Map<string, number[] | boolean>): void {
  for (const p of item.points) {
    const off = p.address - item.address;
    raws.set(p.name, r.registers ? r.registers.slice(off, off + registerCount(p)) : r.bits![off]);
  }
}
