/**
 * One forward lane per uplink: the link (connect, breaker, backoff, hold), the sources of its
 * tasks, and the messages between the store and the driver. Each fill asks decide()
 * (agent/forward/order.ts) for the next message until the in-flight window is full or every
 * source is empty or held: the gates are asked before a task is taken, so nothing is undone.
 * A task stays `pending` in the store until an outcome is written for it; outcomes are written
 * in groups.
 *
 * A device whose upstream asked for a posting pace (IEEE 2030.5 postRate, `notBefore` on an ack)
 * is served by the pacer only (agent/forward/pacer.ts): its pending tasks are read from the store
 * when its time comes and sent as one merged message.
 */
import type { Logger } from 'pino';
import type { DeepReadonly, UplinkCommon } from '../config/types.js';
import { classify, type Failure } from '../policy/classify.js';
import { emptyBudget, noteAttempt } from '../policy/budget.js';
import { systemClock, wallAt, type Clock } from '../clock.js';
import { Guard } from '../guard.js';
import type { OutboundMessage, UplinkDriver } from '../../drivers/uplink.js';
import type { PayloadCodec } from '../../store/codec.js';
import type { Events } from '../../store/events.js';
import type { TaskMeta, TaskQueue, TaskRow } from '../../store/tasks.js';
import { Link } from './link.js';
import { Attempts } from './attempts.js';
import { TaskSources } from './sources.js';
import { Wakeup, type After } from './wakeup.js';
import { BUDGET_WINDOW_MS, decide, type Gates, type Source } from './order.js';
import { clearWaiting, nextDueAt, noteAck, takeForPost } from './pacer.js';
import { openMessage } from './message.js';

/** After a failure caught in the lane's own code (agent/guard.ts), it tries again this much later. */
const RECOVER_MS = 1000;
/** A paced device's merged post holds at most this many readings and tasks. */
const PACED_MAX_READINGS = 10_000;
const PACED_MAX_TASKS = 500;

export interface LaneDeps {
  cfg: DeepReadonly<UplinkCommon>;
  driver: UplinkDriver;
  tasks: TaskQueue;
  events: Events;
  codec: PayloadCodec;
  log: Logger;
  rand?: () => number;
  /** Timers, rates and ages run on clock.mono(); clock.wall() only stamps stored times. */
  clock?: Clock;
  /** Told of every failed connect and lost connection (metrics). */
  onLinkFailure?: (f: Failure) => void;
  /** Told of every finished attempt (metrics): result, whether it was a retry, the ack latency. */
  onAttempt?: (e: { uplink: string; result: 'ok' | 'payload' | 'link'; retry: boolean; latencyMs?: number }) => void;
  /** A send from before the store came back (storeBack) was acknowledged: recorded by key, as task ids may name other tasks now. */
  onStaleAck?: (key: string, uplink: string, requestAt: number, ackAt: number) => void;
  /** The owner of the lane's timers and callbacks (default: one that only logs, for tools and tests). */
  guard?: Guard;
  /** Sets the lane's timed wake-ups (default safeTimeout; a test passes fake timers on its clock). */
  after?: After;
}

export interface LaneSnapshot {
  uplink: string;
  connected: boolean;
  breaker: string;
  inflight: number;
  heldUntil: number;
  nextConnectAt: number;
  delivered: number;
  failedAttempts: number;
  draining: boolean;
}

export class Lane {
  readonly name: string;
  private readonly deps: LaneDeps;
  private readonly clock: Clock;
  private readonly guard: Guard;
  private readonly link: Link;
  private readonly sources: TaskSources;
  private readonly attempts: Attempts;
  private readonly wakeup: Wakeup;
  /** The gates of order.ts but the breaker, which the link keeps. */
  private gates: Omit<Gates, 'breaker'>;
  private stopped = false;
  /** The store failed (agent/storage/keeper.ts): nothing is read from it until storeBack(). */
  private storeOff = false;
  /** One more at each storeBack(): an outcome is written by task id only within the epoch it was sent in. */
  private epoch = 0;
  private delivered = 0;
  private failedAttempts = 0;

  constructor(deps: LaneDeps) {
    this.deps = deps;
    this.name = deps.cfg.name;
    this.guard = deps.guard ?? new Guard({ log: deps.log });
    this.clock = deps.clock ?? systemClock();
    const rand = deps.rand ?? Math.random;
    const t = this.clock.mono();
    this.wakeup = new Wakeup(() => this.pump(), () => this.clock.mono(), deps.after);
    this.link = new Link({
      cfg: deps.cfg, driver: deps.driver, events: deps.events, log: deps.log, clock: this.clock, rand,
      wake: (ms) => this.wakeup.in(ms), onUp: (outageMs) => this.onUp(outageMs, rand), stopped: () => this.stopped, onFailure: deps.onLinkFailure,
    });
    this.sources = new TaskSources(deps.tasks, deps.cfg.drain.pullTasks);
    this.attempts = new Attempts({ uplink: this.name, tasks: deps.tasks, events: deps.events, log: deps.log, clock: this.clock, retry: deps.cfg.retry, rand, guard: this.guard });
    const dr = deps.cfg.drain;
    this.gates = { msgBucket: { tokens: dr.messagesPerSec, at: t }, readBucket: { tokens: dr.readingsPerSec, at: t }, budget: emptyBudget(), throttle: 1, drainStartAt: 0 };
    const down = (raw: Parameters<Parameters<UplinkDriver['onDown']>[0]>[0]) => {
      if (this.link.down(classify(raw))) this.sources.drop();
      this.wakeup.in(0);
    };
    // A failure here would leave the lane believing the link up: the down is tried once more.
    deps.driver.onDown((raw) => this.guard.run('lane.down', () => down(raw), () => this.guard.run('lane.down', () => down(raw), () => this.wakeup.in(RECOVER_MS))));
  }

  start(): void {
    this.link.persist();
    this.wakeup.in(0);
  }

  /** New tasks were committed. */
  notify(): void {
    this.sources.notify();
    if (this.link.connected) this.wakeup.in(0);
  }

  /** Tasks were re-admitted by the sweeper: read the backlog from its start again. */
  rescan(): void {
    this.sources.rescan();
    this.wakeup.in(0);
  }

  /** The store failed: send nothing from it (outcomes could not be written) until storeBack(). */
  storeDown(): void {
    this.storeOff = true;
    this.sources.drop();
    this.flush(); // the outcomes waiting go to the keeper now, while the failed store can still name their tasks
  }

  /** The store works again, maybe as a new file (task ids start over): everything stored is backlog. */
  storeBack(): void {
    this.storeOff = false;
    this.epoch++;
    this.sources.recover();
    this.wakeup.in(0);
  }

  /** Sends a batch that has no task (spooled while the store was down); null when not sent. Never throws. */
  async sendDirect(key: string, device: string, readingCount: number, readings: Buffer): Promise<{ requestAt: number; ackAt: number } | null> {
    if (this.stopped || !this.link.connected) return null;
    const a = this.link.admit(this.clock.mono());
    if (!a.allowed) return null;
    try {
      const r = await this.deps.driver.send({ taskId: 0, key, seq: 0, device, historical: false, readingCount, readings });
      if (!r.ok) {
        const f = classify(r.failure);
        this.link.record(f.scope !== 'link', a.probe);
        this.deps.onAttempt?.({ uplink: this.name, result: f.scope, retry: false });
        return null;
      }
      this.link.record(true, a.probe);
      this.delivered++;
      this.deps.onAttempt?.({ uplink: this.name, result: 'ok', retry: false, latencyMs: r.ackAt - r.requestAt });
      return { requestAt: r.requestAt, ackAt: r.ackAt };
    } catch {
      return null;
    }
  }

  /** Tasks on their way (in flight, outcome unwritten, or read into a page): the storage policy leaves their files alone. */
  busyTaskIds(): number[] {
    return [...this.attempts.ids(), ...this.sources.ids()];
  }

  /** The thermal governor's factor on the drain rates and the retry budget (agent/policy/governor.ts). */
  setThrottle(factor: number): void {
    this.gates = { ...this.gates, throttle: factor > 0 && factor <= 1 ? factor : 1 };
  }

  /** Manual breaker reset (console, CLI, MQTT): closed, hold lifted, reconnect now. */
  resetBreaker(): void {
    this.link.reset();
    this.wakeup.in(0);
  }

  inflightTasks(): ReadonlySet<number> {
    return this.attempts.inflightIds();
  }

  snapshot(): LaneSnapshot {
    const l = this.link;
    return {
      uplink: this.name, connected: l.connected, breaker: l.breakerName, inflight: this.attempts.inflightCount,
      heldUntil: l.heldUntil > 0 ? wallAt(this.clock, l.heldUntil) : 0, nextConnectAt: l.nextConnectAt > 0 ? wallAt(this.clock, l.nextConnectAt) : 0,
      delivered: this.delivered, failedAttempts: this.failedAttempts, draining: this.sources.draining,
    };
  }

  /**
   * Stops sending. With a plan (agent/shutdown.ts): acknowledgements of messages in flight are
   * awaited until `acksBy`, then the driver gets until `closeBy` to end the connection. Tasks
   * still unacknowledged stay pending, sent again (same key) after the restart.
   */
  async stop(plan?: { acksBy: number; closeBy: number }): Promise<void> {
    this.stopped = true;
    this.wakeup.stop();
    this.sources.drop();
    const left = plan ? await this.attempts.settled(plan.acksBy - this.clock.mono()) : 0;
    if (left > 0) {
      this.deps.log.warn({ uplink: this.name, code: 'SHUTDOWN_ACK_TIMEOUT', inflight: left }, `stopping: ${left} message(s) not acknowledged in time; they stay pending and are sent again after the restart`);
      try {
        this.deps.events.record({ scope: 'uplink', subject: this.name, kind: 'shutdown', code: 'SHUTDOWN_ACK_TIMEOUT', faultClass: 'local', at: this.clock.wall(), detail: { inflight: left } });
      } catch (err) {
        this.deps.log.error({ err, code: 'STORE_UNAVAILABLE', uplink: this.name }, 'shutdown event not recorded');
      }
    }
    await this.deps.driver.close(plan ? Math.max(0, plan.closeBy - this.clock.mono()) : undefined);
    this.flush();
  }

  /** Writes the grouped outcomes in one transaction. */
  flush(): void {
    this.attempts.flush();
  }

  /** Fills or connects; a failure in either is reported and the lane tries again shortly. */
  private pump(): void {
    if (this.stopped) return;
    const retry = () => this.wakeup.in(RECOVER_MS);
    if (this.link.connected) this.guard.run('lane.pump', () => this.fill(), () => (this.sources.rescan(), retry()));
    else void this.guard.runAsync('lane.connect', () => this.link.connect(), retry);
  }

  private onUp(outageMs: number | undefined, rand: () => number): void {
    const t = this.clock.mono();
    this.sources.recover();
    this.gates = { ...this.gates, drainStartAt: t + Math.floor(rand() * this.deps.cfg.drain.startJitterMs) };
    this.deps.log.info({ uplink: this.name, outageMs, drainStartInMs: this.gates.drainStartAt - t }, 'uplink connected');
  }

  /** Sends what decide() picks until the window is full or every source is empty or held. */
  private fill(): void {
    if (this.storeOff) return;
    const cfg = this.deps.cfg;
    let free = Math.min(cfg.maxInflight, this.deps.driver.sendWindow) - this.attempts.inflightCount;
    const busy = this.attempts.busy();
    while (free > 0) {
      const t = this.clock.mono();
      const heads = this.sources.heads(t, this.clock.wall(), free, busy);
      const d = decide(heads, { ...this.gates, breaker: this.link.breakerState }, cfg, t);
      if (d.kind === 'wait') this.wakeup.in(d.ms);
      if (d.kind !== 'take') break;
      const taken = this.sources.take(d.source, t);
      const tasks = typeof taken === 'string' ? this.pacedGroup(taken, busy) : [taken];
      if (tasks.length === 0) continue;
      this.link.admitted(d.gates.breaker);
      this.gates = { ...d.gates };
      this.send(tasks, d.source, d.probe);
      free--;
    }
    const t = this.clock.mono();
    this.sources.endFill(t);
    if (this.attempts.inflightCount === 0 && this.sources.dueCheckAt > t) this.wakeup.in(this.sources.dueCheckAt - t);
    const paceAt = nextDueAt(this.sources.pace);
    if (paceAt < Infinity) this.wakeup.in(Math.max(1, paceAt - t));
  }

  /** A paced device's pending tasks that fit one post (none: it has nothing waiting any more). */
  private pacedGroup(device: string, busy: (id: number) => boolean): TaskRow[] {
    const s = this.sources;
    const paged = new Set(s.ids());
    const rows = this.deps.tasks.pendingOfDevice(device, this.clock.wall(), PACED_MAX_TASKS + this.attempts.ids().length + paged.size).filter((r) => !busy(r.id) && !paged.has(r.id));
    const group = takeForPost(rows, PACED_MAX_READINGS, PACED_MAX_TASKS);
    if (group.length === rows.length) s.pace = clearWaiting(s.pace, device);
    return group;
  }

  /** Opens the tasks' payloads and sends them as one message; a payload that does not open dead-letters its task. */
  private send(tasks: readonly TaskRow[], source: Source, probe: boolean): void {
    const t = this.clock.mono();
    for (const task of tasks) this.gates = { ...this.gates, budget: noteAttempt(this.gates.budget, task.retryCount > 0, BUDGET_WINDOW_MS, t) };
    const o = openMessage(tasks, source, this.deps.codec, this.sources.liveFromId);
    for (const u of o.unreadable) this.settle([u.task], this.clock.wall(), { code: 'PAYLOAD_UNREADABLE', message: u.message, scope: 'payload', retry: 'hard', faultClass: 'local' }, probe);
    if (o.msg) this.transmit(o.sent, o.msg, probe);
  }

  /** Hands one message (of one or more tasks) to the driver and settles every task on its outcome. */
  private transmit(tasks: readonly TaskMeta[], msg: OutboundMessage, probe: boolean): void {
    this.attempts.begin(tasks);
    const retry = tasks.some((task) => task.retryCount > 0);
    const epoch = this.epoch;
    // A failure in handling the outcome leaves the tasks pending in the store: read again and sent again, same key.
    const after = (fn: () => void) => {
      this.attempts.end(tasks);
      this.guard.run('lane.outcome', fn, () => this.rescan());
      this.wakeup.in(0);
    };
    this.deps.driver.send(msg).then(
      (r) => after(() => {
        if (epoch !== this.epoch) {
          // Sent before the store came back, maybe as a new file: its task ids may name other tasks now.
          if (r.ok) for (const task of tasks) this.deps.onStaleAck?.(task.key, this.name, r.requestAt, r.ackAt);
          return;
        }
        if (!r.ok) {
          if (!this.stopped) this.settle(tasks, r.requestAt, classify(r.failure), probe);
          return;
        }
        const now = this.clock.mono();
        this.link.record(true, probe);
        this.delivered += tasks.length;
        this.deps.onAttempt?.({ uplink: this.name, result: 'ok', retry, latencyMs: r.ackAt - r.requestAt });
        this.attempts.delivered(tasks, r.requestAt, r.ackAt);
        // The driver's pace is wall time (ack + postRate): kept as the same wait on the monotonic clock.
        const s = this.sources;
        s.pace = noteAck(s.pace, msg.device, r.notBefore === undefined ? undefined : now + Math.max(0, r.notBefore - r.ackAt), now);
      }),
      (e: unknown) => after(() => {
        if (epoch === this.epoch) this.settle(tasks, this.clock.wall(), classify({ kind: 'socket', message: String(e) }), probe);
      }),
    );
  }

  /** A failed attempt (of one message): breaker, backoff or dead letter, and the record of why, for each of its tasks. */
  private settle(tasks: readonly TaskMeta[], requestAt: number, f: Failure, probe: boolean): void {
    this.failedAttempts++;
    this.deps.onAttempt?.({ uplink: this.name, result: f.scope, retry: tasks.some((task) => task.retryCount > 0) });
    if (f.scope !== 'link') this.link.record(true, probe);
    else if (this.link.connected) {
      // A dropped connection is one link failure (counted when the link goes down), not one per message.
      this.link.record(false, probe);
      if (f.retry === 'hard') this.link.hardFailure(f);
    }
    const holdLeftMs = Math.max(0, this.link.heldUntil - this.clock.mono());
    for (const task of tasks) this.attempts.failed(task, requestAt, f, holdLeftMs);
  }
}
