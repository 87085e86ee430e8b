/**
 * Watches the wall clock against the monotonic one (agent/policy/clock.ts) on a jittered timer
 * and owns what follows (docs/clocks.md):
 *   - a step (either way, beyond STEP_THRESHOLD_MS), also one that happened while the agent was
 *     stopped within the same boot: a `clock_step` event (CLOCK_STEP) with its size, a warning, a
 *     metric; the pending wall times in the store move with it and schedules further ahead than
 *     an uplink's cap are brought back;
 *   - the wall clock below the floor (not synchronised): an open `clock_unsynced` event
 *     (CLOCK_UNSYNCED) and a warning, closed when the clock becomes good;
 *   - once it is good: stored batches with readings stamped while it was not are re-based, a few
 *     per look (store/clock-rebase.ts); those of a boot that never had a good clock keep their flag.
 * Every failure of a look is logged with its code; the next look tries again.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { firstLook, look, rebaseReadings, type ClockLook, type ClockState } from './policy/clock.js';
import type { SafeTimer } from '../drivers/timer.js';
import { Guard } from './guard.js';
import type { Store } from '../store/store.js';
import type { Events } from '../store/events.js';
import type { PayloadCodec } from '../store/codec.js';
import { clampSchedules, goodOffsets, loadBoot, rebaseForStep, saveBoot } from '../store/clock.js';
import { rebaseStored } from '../store/clock-rebase.js';

/** Looks at the clocks this often (+-10 %). */
export const CLOCK_CHECK_MS = 1000;
/** Stored batches re-based per look at most. */
const REBASE_PER_LOOK = 50;

export interface ClockWatchDeps {
  clock: Clock;
  /** The store in use (it may be reopened after a failure). */
  store: () => Store;
  events: Events;
  codec: PayloadCodec;
  log: Logger;
  /** How far ahead each uplink's stored retry times may lie (agent/policy/clock.ts scheduleCap). */
  caps: readonly { uplink: string; capMs: number }[];
  /** Writes what is held in memory with wall times (the lanes' outcomes) before they are moved. */
  beforeRebase?: () => void;
  /** Task ids being sent now (a batch in flight is not rewritten under its sender). */
  inflight?: () => ReadonlySet<number>;
  /** Batches were rewritten: whoever read them ahead reads them again. */
  afterRewrite?: () => void;
  /** Metrics: a step, the sync state, readings re-based or left flagged. */
  onStep?: (stepMs: number) => void;
  onSynced?: (synced: boolean) => void;
  onRebased?: (rebased: number, unrebasable: number) => void;
  rand?: () => number;
  intervalMs?: number;
  /** Owns the watch's timer (default: one that only logs). */
  guard?: Guard;
}

export class ClockWatch {
  private state: ClockState | null = null;
  private timer: SafeTimer | null = null;
  private stopped = false;
  private failing = false;
  /** Steps seen by this process. */
  steps = 0;

  private readonly guard: Guard;

  constructor(private readonly deps: ClockWatchDeps) {
    this.guard = deps.guard ?? new Guard({ log: deps.log });
  }

  get synced(): boolean {
    return this.state?.synced ?? this.deps.clock.wall() >= this.deps.clock.floor;
  }

  /** The first look (compared with what the store kept for this boot), then one every ~CLOCK_CHECK_MS. */
  start(): void {
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.clear();
    this.timer = null;
  }

  /** One look and its consequences (the timer calls it; tests call it too). */
  tick(): void {
    if (this.stopped) return;
    try {
      this.lookNow();
      if (this.failing) this.deps.log.info('clock watch works again');
      this.failing = false;
    } catch (e) {
      if (!this.failing) this.deps.log.error({ err: e, code: 'STORE_UNAVAILABLE' }, `clock watch: ${(e as Error).message}`);
      this.failing = true;
    }
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    const ms = (this.deps.intervalMs ?? CLOCK_CHECK_MS) * (0.9 + 0.2 * (this.deps.rand ?? Math.random)());
    this.timer = this.guard.timeout('clock.watch', () => this.tick(), ms, () => this.arm()).unref();
  }

  private lookNow(): void {
    const c = this.deps.clock;
    const wall = c.wall();
    const mono = c.mono();
    const first = this.state === null;
    const l: ClockLook = first ? firstLook(loadBoot(this.deps.store().db, c.boot), wall, mono, c.floor) : look(this.state!, wall, mono, c.floor);
    if (l.step !== null) this.stepped(l.step, wall, first);
    if (first) {
      // Schedules written by a clock that ran ahead in another boot, or before this run.
      const cl = clampSchedules(this.deps.store().db, wall, this.deps.caps);
      if (cl.schedules + cl.events > 0) this.deps.log.warn({ code: 'CLOCK_STEP', ...cl }, 'stored retry times further ahead than the retry cap brought back');
    }
    if (first ? !l.state.synced : l.became === 'unsynced') this.unsynced(wall, first);
    if (l.became === 'synced' && !first) this.becameSynced(wall);
    else if (first && l.state.synced) this.deps.events.close('gateway', 'clock', 'unsynced', wall);
    if (l.persist) saveBoot(this.deps.store().db, c.boot, { offset: l.state.offset, synced: l.state.synced }, wall);
    this.state = l.state;
    if (first) this.deps.onSynced?.(l.state.synced);
    if (l.state.synced) this.rebase();
  }

  private stepped(stepMs: number, wall: number, whileStopped: boolean): void {
    this.steps++;
    this.deps.beforeRebase?.();
    const moved = rebaseForStep(this.deps.store().db, stepMs);
    const clamped = clampSchedules(this.deps.store().db, wall, this.deps.caps);
    const detail = { stepMs, from: wall - stepMs, to: wall, whileStopped, moved, clamped };
    this.deps.events.record({ scope: 'gateway', subject: 'clock', kind: 'clock_step', code: 'CLOCK_STEP', faultClass: 'local', at: wall, detail });
    this.deps.log.warn(
      { code: 'CLOCK_STEP', stepMs, from: new Date(wall - stepMs).toISOString(), to: new Date(wall).toISOString(), whileStopped, moved, clamped },
      `wall clock stepped ${stepMs > 0 ? 'forward' : 'back'} by ${describe(Math.abs(stepMs))}${whileStopped ? ' while the agent was stopped' : ''}: timers unaffected, stored schedules moved with it`,
    );
    this.deps.onStep?.(stepMs);
  }

  private unsynced(wall: number, atStart: boolean): void {
    const c = this.deps.clock;
    this.deps.events.open({ scope: 'gateway', subject: 'clock', kind: 'unsynced', code: 'CLOCK_UNSYNCED', faultClass: 'local', at: wall, detail: { wall, floor: c.floor } });
    this.deps.log.warn(
      { code: 'CLOCK_UNSYNCED', wall: new Date(wall).toISOString(), floor: new Date(c.floor).toISOString(), atStart },
      'wall clock not synchronised (earlier than this release): readings are flagged clock=unsynced until it is',
    );
    this.deps.onSynced?.(false);
  }

  private becameSynced(wall: number): void {
    const ms = this.deps.events.close('gateway', 'clock', 'unsynced', wall);
    this.deps.log.info({ wall: new Date(wall).toISOString(), unsyncedMs: ms }, 'wall clock synchronised: flagged readings are re-based');
    this.deps.onSynced?.(true);
  }

  /** Re-bases a few stored batches with readings stamped while the clock was not good. */
  private rebase(): void {
    let offsets: Map<string, number> | null = null;
    const r = rebaseStored(this.deps.store(), this.deps.codec, this.deps.clock.boot, REBASE_PER_LOOK, (readings, boot) => {
      offsets ??= goodOffsets(this.deps.store().db);
      const off = offsets.get(boot);
      return off === undefined ? null : rebaseReadings(readings, off);
    }, this.deps.inflight?.());
    if (r.rebased > 0) this.deps.afterRewrite?.();
    if (r.rebased + r.kept + r.unrebasable === 0) return;
    const at = this.deps.clock.wall();
    this.deps.events.record({ scope: 'gateway', subject: 'clock', kind: 'clock_rebase', at, detail: r });
    if (r.rebased > 0) this.deps.log.info({ batches: r.rebased, readings: r.rebasedReadings }, 'stored readings stamped by an unsynchronised clock re-based');
    if (r.unrebasable > 0) {
      this.deps.log.warn(
        { code: 'CLOCK_UNREBASABLE', batches: r.unrebasable, readings: r.unrebasableReadings, errors: r.errors.slice(0, 5) },
        'stored readings stamped by an unsynchronised clock cannot be re-based (their boot never had a good clock): they keep clock=unsynced',
      );
    }
    this.deps.onRebased?.(r.rebasedReadings, r.unrebasableReadings);
  }
}

function describe(ms: number): string {
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} days`;
}
