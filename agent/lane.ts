/**
 * One forward lane per uplink: it owns the link (connect, breaker, backoff, hard-failure hold)
 * and moves that uplink's tasks from the store to the driver.
 *
 * Order of service on every fill, within maxInflight:
 *   1. live tasks (committed since the link last came up): never rate-limited, never starved;
 *   2. retries that are due, within the retry budget (a fraction of first attempts);
 *   3. the backlog (tasks older than the recovery), oldest first, marked historical, after a
 *      random start delay and within the drain rate (messages/s and readings/s).
 * Outcomes are written to the store in groups; the breaker and backoff are the pure policies.
 *
 * The backlog is read ahead by a decode worker (agent/backlog.ts); live tasks and due retries
 * are few and are read and decoded here when sent. A task stays `pending` in the store until an
 * outcome is written for it.
 *
 * A device whose upstream asked for a posting pace (IEEE 2030.5 postRate, `notBefore` on an ack)
 * is served only by the pacer (agent/pacer.ts): the three paths above skip its tasks, and when its
 * time comes its pending tasks are read from the store and sent as one merged message.
 */
import type { Logger } from 'pino';
import { HoldfastError } from './errors.js';
import type { DeepReadonly, UplinkCommon } from './config/types.js';
import { classify, type Failure } from './policy/classify.js';
import { failureOutcome, OutcomeWriter } from './outcomes.js';
import { Link } from './link.js';
import { budgetAllows, emptyBudget, noteAttempt, take, type RetryBudget, type TokenBucket } from './policy/budget.js';
import { arrayBody, clearWaiting, dueDevices, emptyPace, isPaced, markWaiting, mergeJsonArrays, nextDueAt, noteAck, takeForPost, type PaceState } from './pacer.js';
import { StoredMessage, type UplinkDriver } from '../drivers/uplink.js';
import type { PayloadCodec } from '../store/codec.js';
import { sharedReadAhead, type ReadAhead } from '../store/decode-pool.js';
import { Backlog, type Ahead } from './backlog.js';
import { within } from '../drivers/timer.js';
import type { Events } from '../store/events.js';
import type { TaskMeta, TaskQueue, TaskRow } from '../store/tasks.js';
import { systemClock, wallAt, type Clock } from './clock.js';
import { safeTimeout, type SafeTimer } from '../drivers/timer.js';
import { TaskAges } from './task-ages.js';
import { Guard } from './guard.js';

const DUE_CHECK_MS = 250;
/** After a failure caught in the lane's own code (agent/guard.ts), it tries again this much later. */
const RECOVER_MS = 1000;
const BUDGET_WINDOW_MS = 10_000;
/** A paced device's merged post holds at most this many readings and tasks (agent/pacer.ts). */
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
  /**
   * Reads and decodes the backlog ahead in a worker. Default: the pool shared by every lane of
   * `codec` (store/decode-pool.ts); null reads and decodes on this thread when sending.
   */
  readAhead?: ReadAhead | null;
  /** Backlog tasks queued ahead at most (default 2 x maxInflight, 16..256). */
  prefetch?: number;
  /** A send from before the store came back (storeBack) was acknowledged: recorded by key, as task ids may name other tasks now. */
  onStaleAck?: (key: string, uplink: string, requestAt: number, ackAt: number) => void;
  /** The owner of the lane's timers and callbacks (default: one that only logs, for tools and tests). */
  guard?: Guard;
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
  private readonly cfg: DeepReadonly<UplinkCommon>;
  private readonly now: () => number;
  private readonly clock: Clock;
  private readonly ages: TaskAges;
  private readonly rand: () => number;
  private readonly link: Link;
  private liveFromId = Number.MAX_SAFE_INTEGER;
  private liveCursor = 0;
  private readonly backlog: Backlog;
  private backlogExhausted = false;
  private liveDirty = true;
  private drainStartAt = 0;
  private nextDueCheckAt = 0;
  private readonly inflight = new Set<number>();
  private readonly outcomes: OutcomeWriter;
  private msgBucket: TokenBucket;
  private readBucket: TokenBucket;
  private budget: RetryBudget = emptyBudget();
  private pace: PaceState = emptyPace();
  /** The thermal governor's factor on the drain rates and the retry budget (1: full speed). */
  private throttle = 1;
  private wakeTimer: SafeTimer | null = null;
  private wakeAt = Infinity;
  private immediate: NodeJS.Immediate | null = null;
  private stopped = false;
  /** Set while stop() waits for the messages in flight: called when the last one settles. */
  private idle: (() => void) | null = null;
  /** The store failed (agent/storage/keeper.ts): nothing is read from it until storeBack(). */
  private storeOff = false;
  /** One more at each storeBack(): a send's outcome is written by task id only within the epoch it was sent in. */
  private epoch = 0;
  private delivered = 0;
  private failedAttempts = 0;
  private readonly guard: Guard;

  constructor(private readonly d: LaneDeps) {
    this.guard = d.guard ?? new Guard({ log: d.log });
    this.cfg = d.cfg;
    this.name = d.cfg.name;
    this.clock = d.clock ?? systemClock();
    this.now = () => this.clock.mono();
    this.ages = new TaskAges(this.clock);
    this.rand = d.rand ?? Math.random;
    const t = this.now();
    this.link = new Link({
      cfg: d.cfg, driver: d.driver, events: d.events, log: d.log, clock: this.clock, rand: this.rand,
      wake: (ms) => this.wake(ms), onUp: (outageMs) => this.onUp(outageMs), stopped: () => this.stopped, onFailure: d.onLinkFailure,
    });
    this.outcomes = new OutcomeWriter(d.tasks, this.guard);
    this.msgBucket = { tokens: this.cfg.drain.messagesPerSec, at: t };
    this.readBucket = { tokens: this.cfg.drain.readingsPerSec, at: t };
    this.backlog = new Backlog({
      uplink: this.name, tasks: d.tasks, log: d.log, pullTasks: this.cfg.drain.pullTasks,
      reader: d.readAhead === undefined ? sharedReadAhead(d.codec, d.codec.keyring) : d.readAhead,
      prefetch: Math.max(1, Math.floor(d.prefetch ?? Math.min(256, Math.max(16, 2 * this.cfg.maxInflight)))),
      beforeId: () => this.liveFromId,
      onArrival: () => {
        if (this.link.connected) this.wake(0);
      },
    });
    const down = (raw: Parameters<Parameters<UplinkDriver['onDown']>[0]>[0]) => {
      // The next connect rescans: release the worker's stream (and the payloads held) meanwhile.
      if (this.link.down(classify(raw))) this.backlog.drop();
      this.wake(0);
    };
    // A failure here would leave the lane believing the link up: the down is tried once more.
    d.driver.onDown((raw) => this.guard.run('lane.down', () => down(raw), () => this.guard.run('lane.down', () => down(raw), () => this.wake(RECOVER_MS))));
  }

  start(): void {
    this.link.persist();
    this.wake(0);
  }

  /** New tasks were committed. */
  notify(): void {
    this.liveDirty = true;
    if (this.link.connected) this.wake(0);
  }

  /** Tasks were re-admitted by the sweeper: rescan the backlog from the start. */
  rescan(): void {
    this.backlog.restart();
    this.backlogExhausted = false;
    this.liveDirty = true;
    this.wake(0);
  }

  /**
   * The store failed: send nothing from it (outcomes could not be written) until storeBack().
   * Batches spooled meanwhile come through sendDirect().
   */
  storeDown(): void {
    this.storeOff = true;
    this.backlog.drop();
    this.flush(); // the outcomes waiting go to the keeper now, while the failed store can still name their tasks
  }

  /**
   * The store works again, maybe as a new file (task ids start over): every stored task is
   * backlog from here, read from the start.
   */
  storeBack(): void {
    this.storeOff = false;
    this.epoch++;
    this.liveFromId = this.d.tasks.maxId() + 1;
    this.liveCursor = this.liveFromId - 1;
    this.nextDueCheckAt = 0;
    this.rescan();
  }

  /**
   * Sends a batch that has no task (spooled while the store was down), if the link is up and
   * the breaker lets it through; null when not sent. Never throws.
   */
  async sendDirect(key: string, device: string, readingCount: number, readings: Buffer): Promise<{ requestAt: number; ackAt: number } | null> {
    if (this.stopped || !this.link.connected) return null;
    const a = this.link.admit(this.now());
    if (!a.allowed) return null;
    try {
      const r = await this.d.driver.send(new StoredMessage(0, key, 0, device, false, readingCount, readings));
      if (r.ok) {
        this.link.record(true, a.probe);
        this.delivered++;
        this.d.onAttempt?.({ uplink: this.name, result: 'ok', retry: false, latencyMs: r.ackAt - r.requestAt });
        return { requestAt: r.requestAt, ackAt: r.ackAt };
      }
      const f = classify(r.failure);
      this.link.record(f.scope !== 'link', a.probe);
      this.d.onAttempt?.({ uplink: this.name, result: f.scope, retry: false });
      return null;
    } catch {
      return null;
    }
  }

  /** Tasks sent and not settled, or settled and not written yet: still pending in the store, but on their way. */
  busyTaskIds(): number[] {
    return [...this.inflight, ...this.outcomes.ids()];
  }

  /** The thermal governor's factor (agent/policy/governor.ts): live data is never slowed. */
  setThrottle(factor: number): void {
    this.throttle = factor > 0 && factor <= 1 ? factor : 1;
  }

  /** Manual breaker reset (console, CLI, MQTT): closed, hold lifted, reconnect now. */
  resetBreaker(): void {
    this.link.reset();
    this.wake(0);
  }

  /** Ids of the tasks being sent now. */
  inflightTasks(): ReadonlySet<number> {
    return this.inflight;
  }

  snapshot(): LaneSnapshot {
    return {
      uplink: this.name, connected: this.link.connected, breaker: this.link.breakerName, inflight: this.inflight.size,
      heldUntil: this.link.heldUntil > 0 ? wallAt(this.clock, this.link.heldUntil) : 0,
      nextConnectAt: this.link.nextConnectAt > 0 ? wallAt(this.clock, this.link.nextConnectAt) : 0, delivered: this.delivered,
      failedAttempts: this.failedAttempts, draining: !this.backlogExhausted,
    };
  }

  /**
   * Stops sending. With a plan (agent/shutdown.ts): the acknowledgements of messages in flight
   * are awaited until `acksBy` (those that come are recorded as delivered), then the driver gets
   * until `closeBy` to end the connection. Tasks still unacknowledged stay pending, to be sent
   * again (same key) at the next start.
   */
  async stop(plan?: { acksBy: number; closeBy: number }): Promise<void> {
    this.stopped = true;
    this.wakeTimer?.clear();
    if (this.immediate) clearImmediate(this.immediate);
    this.wakeTimer = null;
    this.immediate = null;
    this.backlog.drop();
    if (plan) await this.awaitAcks(plan.acksBy);
    await this.d.driver.close(plan ? Math.max(0, plan.closeBy - this.now()) : undefined);
    this.flush();
    await this.backlog.close();
  }

  private async awaitAcks(by: number): Promise<void> {
    if (this.inflight.size > 0) {
      await within(new Promise<void>((res) => (this.idle = res)), by - this.now());
      this.idle = null;
    }
    if (this.inflight.size === 0) return;
    const n = this.inflight.size;
    this.d.log.warn({ uplink: this.name, code: 'SHUTDOWN_ACK_TIMEOUT', inflight: n }, `stopping: ${n} message(s) not acknowledged in time; they stay pending and are sent again after the restart`);
    try {
      this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'shutdown', code: 'SHUTDOWN_ACK_TIMEOUT', faultClass: 'local', at: this.clock.wall(), detail: { inflight: n } });
    } catch (err) {
      this.d.log.error({ err, code: 'STORE_UNAVAILABLE', uplink: this.name }, 'shutdown event not recorded');
    }
  }

  /** Pumps after `ms`; 0 means on the next turn of the event loop (setImmediate, not a >= 1 ms timer). */
  private wake(ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) {
      // An immediate pump replaces a later timed one (the pump re-arms what it needs).
      this.wakeTimer?.clear();
      this.wakeTimer = null;
      this.wakeAt = Infinity;
      this.immediate ??= setImmediate(() => {
        this.immediate = null;
        this.pump();
      });
      return;
    }
    if (this.immediate) return;
    const at = this.now() + ms;
    if (this.wakeTimer && at >= this.wakeAt) return;
    this.wakeTimer?.clear();
    this.wakeAt = at;
    this.wakeTimer = safeTimeout(() => {
      this.wakeTimer = null;
      this.wakeAt = Infinity;
      this.pump();
    }, ms);
  }

  /** Fills or connects; a failure in either is reported and the lane tries again shortly. */
  private pump(): void {
    if (this.stopped) return;
    const retry = () => this.wake(RECOVER_MS);
    if (this.link.connected) this.guard.run('lane.pump', () => this.fill(), retry);
    else void this.guard.runAsync('lane.connect', () => this.link.connect(), retry);
  }

  private onUp(outageMs: number | undefined): void {
    const t = this.now();
    this.liveFromId = this.d.tasks.maxId() + 1;
    this.liveCursor = this.liveFromId - 1;
    this.rescan();
    this.drainStartAt = t + Math.floor(this.rand() * this.cfg.drain.startJitterMs);
    this.d.log.info({ uplink: this.name, outageMs, drainStartInMs: this.drainStartAt - t }, 'uplink connected');
  }

  /** Fills free in-flight slots: live, then due retries, then the rate-limited backlog. */
  private fill(): void {
    if (this.storeOff) return;
    const t = this.now();
    let free = Math.min(this.cfg.maxInflight, this.d.driver.sendWindow) - this.inflight.size;
    if (free <= 0) return;
    if (this.pace.waiting.size > 0) {
      for (const device of dueDevices(this.pace, t)) {
        if (free <= 0) break;
        const r = this.sendPaced(device, t);
        if (r === 'refused') return;
        if (r === 'sent') free--;
      }
      if (free <= 0) return;
    }
    if (this.liveDirty) {
      this.liveDirty = false;
      const live = this.d.tasks.fresh(this.liveCursor, Number.MAX_SAFE_INTEGER, free);
      if (live.length === free) this.liveDirty = true;
      for (const task of live) {
        this.liveCursor = task.id;
        if (this.skipPaced(task)) continue;
        if (!this.dispatch(task, false, 'live')) return;
        free--;
      }
    }
    if (free > 0 && t >= this.nextDueCheckAt) {
      const b = this.cfg.retryBudget;
      // Retry times are stored as wall time (they survive a restart; a step moves them, agent/clock-watch.ts).
      const due = this.d.tasks.due(this.clock.wall(), free + this.inflight.size + this.outcomes.size);
      // Outcomes not yet flushed are still 'pending' in the store: not due again. (A Set of them
      // is made only here, when retries are due, not for every acknowledgement.)
      const unflushed = due.length > 0 && this.outcomes.size > 0 ? this.outcomes.ids() : null;
      let sent = 0;
      for (const task of due) {
        if (free <= 0) break;
        if (this.inflight.has(task.id) || unflushed?.has(task.id) || this.skipPaced(task)) continue;
        if (!budgetAllows(this.budget, b.ratio * this.throttle, b.minPerSec * this.throttle, BUDGET_WINDOW_MS, t)) break;
        if (!this.dispatch(task, task.id < this.liveFromId, 'due')) return;
        free--;
        sent++;
      }
      if (sent === 0) this.nextDueCheckAt = t + DUE_CHECK_MS;
    }
    if (free > 0 && !this.backlogExhausted) {
      if (t < this.drainStartAt) return this.wake(this.drainStartAt - t);
      const dr = this.cfg.drain;
      this.backlog.fill();
      while (free > 0) {
        const ahead = this.backlog.peek();
        if (!ahead) {
          if (this.backlog.done) this.backlogExhausted = true;
          break;
        }
        const task = ahead.task;
        if (this.skipPaced(task)) {
          this.backlog.shift();
          this.backlog.fill();
          continue;
        }
        // Throttled: the rates shrink, the bursts stay (a burst clamps what one message may need).
        const m = take(this.msgBucket, 1, dr.messagesPerSec * this.throttle, dr.messagesPerSec, t);
        const n = take(this.readBucket, task.readingCount, dr.readingsPerSec * this.throttle, dr.readingsPerSec, t);
        if (!m.ok || !n.ok) {
          this.msgBucket = m.ok ? this.msgBucket : m.bucket;
          this.readBucket = n.ok ? this.readBucket : n.bucket;
          return this.wake(Math.max(m.ok ? 0 : m.waitMs, n.ok ? 0 : n.waitMs, 1));
        }
        this.msgBucket = m.bucket;
        this.readBucket = n.bucket;
        this.backlog.shift();
        if (!this.dispatch(task, true, 'backlog', ahead)) return;
        free--;
        this.backlog.fill();
      }
    }
    if (this.inflight.size === 0 && this.nextDueCheckAt > t) this.wake(this.nextDueCheckAt - t);
    const paceAt = nextDueAt(this.pace);
    if (paceAt < Infinity) this.wake(Math.max(1, paceAt - t));
  }

  /** A task of a paced device met on another path: left pending for the pacer. */
  private skipPaced(task: TaskMeta): boolean {
    if (!isPaced(this.pace, task.device)) return false;
    this.pace = markWaiting(this.pace, task.device);
    return true;
  }

  /**
   * Sends a paced device's pending tasks (fresh and due, not in flight, not awaiting their
   * outcome's write) as one merged message. 'none' when it has nothing to send.
   */
  private sendPaced(device: string, t: number): 'sent' | 'none' | 'refused' {
    const busy = this.outcomes.ids();
    for (const id of this.inflight) busy.add(id);
    const rows = this.d.tasks.pendingOfDevice(device, this.clock.wall(), PACED_MAX_TASKS + busy.size).filter((r) => !busy.has(r.id));
    const group = takeForPost(rows, PACED_MAX_READINGS, PACED_MAX_TASKS);
    if (group.length === rows.length) this.pace = clearWaiting(this.pace, device);
    if (group.length === 0) return 'none';
    return this.dispatchGroup(group, group.some((r) => r.id < this.liveFromId)) ? 'sent' : 'refused';
  }

  /** Sends one task; false when the breaker refused (the caller stops filling). */
  private dispatch(task: TaskMeta | TaskRow, historical: boolean, from: 'live' | 'due' | 'backlog', ahead?: Ahead): boolean {
    const t = this.now();
    const a = this.link.admit(t);
    if (!a.allowed) {
      if (from === 'backlog' && ahead) this.backlog.unshift(ahead);
      if (from === 'live') {
        this.liveCursor = Math.min(this.liveCursor, task.id - 1);
        this.liveDirty = true;
      }
      this.wake(Math.max(10, (a.retryAt ?? t + 1000) - t));
      return false;
    }
    let readings: Buffer;
    let framable = false;
    try {
      // Same error (and message) as the codec's own, wherever the payload was decoded.
      if (ahead?.error != null) throw new HoldfastError('PAYLOAD_UNREADABLE', ahead.error, task.key);
      if (ahead?.readings) {
        readings = ahead.readings;
        framable = true;
      } else if ('payload' in task) readings = this.d.codec.decode(task.payload, task.key);
      else throw new Error(`task ${task.id} was read without its payload`);
    } catch (e) {
      this.unreadable(task, t, e, a.probe);
      return true;
    }
    this.transmit([task], new StoredMessage(task.id, task.key, task.payloadId, task.device, historical, task.readingCount, readings, framable), a.probe);
    return true;
  }

  /**
   * Sends tasks of one device as one message, their readings merged oldest first (the pacer's
   * post); false when the breaker refused. A task whose payload does not decode is dead-lettered
   * on its own and left out.
   */
  private dispatchGroup(tasks: readonly TaskRow[], historical: boolean): boolean {
    const t = this.now();
    const a = this.link.admit(t);
    if (!a.allowed) {
      this.wake(Math.max(10, (a.retryAt ?? t + 1000) - t));
      return false;
    }
    const sent: TaskRow[] = [];
    const parts: Buffer[] = [];
    for (const task of tasks) {
      try {
        const b = this.d.codec.decode(task.payload, task.key);
        arrayBody(b); // not a JSON array: this task alone is dead-lettered
        parts.push(b);
        sent.push(task);
      } catch (e) {
        this.unreadable(task, t, e, a.probe);
      }
    }
    if (sent.length === 0) return true;
    const merged = mergeJsonArrays(parts);
    const first = sent[0];
    const count = sent.reduce((n, r) => n + r.readingCount, 0);
    this.transmit(sent, new StoredMessage(first.id, first.key, first.payloadId, first.device, historical, count, merged), a.probe);
    return true;
  }

  private unreadable(task: TaskMeta, t: number, e: unknown, probe: boolean): void {
    this.budget = noteAttempt(this.budget, task.retryCount > 0, BUDGET_WINDOW_MS, t);
    this.settle([task], this.clock.wall(), { code: 'PAYLOAD_UNREADABLE', message: (e as Error).message, scope: 'payload', retry: 'hard', faultClass: 'local' }, probe);
  }

  /** Hands one message (of one or more tasks) to the driver and settles every task on its outcome. */
  private transmit(tasks: readonly TaskMeta[], msg: StoredMessage, probe: boolean): void {
    const t = this.now();
    for (const task of tasks) {
      this.inflight.add(task.id);
      this.budget = noteAttempt(this.budget, task.retryCount > 0, BUDGET_WINDOW_MS, t);
    }
    const done = () => {
      for (const task of tasks) this.inflight.delete(task.id);
      if (this.inflight.size === 0) this.idle?.();
    };
    const retry = tasks.some((task) => task.retryCount > 0);
    const epoch = this.epoch;
    // A failure in handling the outcome leaves the tasks pending in the store: read again and sent again, same key.
    const after = (fn: () => void) => {
      done();
      this.guard.run('lane.outcome', fn, () => this.rescan());
      this.wake(0);
    };
    this.d.driver.send(msg).then(
      (r) => after(() => {
        if (epoch !== this.epoch) {
          // Sent before the store came back, maybe as a new file: its task ids may name other tasks now.
          if (r.ok) for (const task of tasks) this.d.onStaleAck?.(task.key, this.name, r.requestAt, r.ackAt);
          return;
        }
        if (r.ok) {
          const now = this.now();
          this.link.record(true, probe);
          this.delivered += tasks.length;
          this.d.onAttempt?.({ uplink: this.name, result: 'ok', retry, latencyMs: r.ackAt - r.requestAt });
          for (const task of tasks) {
            this.outcomes.push({ id: task.id, ok: true, requestAt: r.requestAt, ackAt: r.ackAt });
            this.ages.forget(task.id);
          }
          // The driver's pace is wall time (ack + postRate): kept as the same wait on the monotonic clock.
          this.pace = noteAck(this.pace, msg.device, r.notBefore === undefined ? undefined : now + Math.max(0, r.notBefore - r.ackAt), now);
          // The driver is done with the readings (acknowledged): their buffer can be filled again.
          if (msg.framable && this.d.driver.releasesOnSettle) this.backlog.recycle(msg.readings);
        } else if (!this.stopped) {
          this.settle(tasks, r.requestAt, classify(r.failure), probe);
        }
      }),
      (e: unknown) => after(() => {
        if (epoch === this.epoch) this.settle(tasks, this.clock.wall(), classify({ kind: 'socket', message: String(e) }), probe);
      }),
    );
  }

  /** A failed attempt (of one message): breaker, backoff or dead letter, and the record of why, for each of its tasks. */
  private settle(tasks: readonly TaskMeta[], requestAt: number, f: Failure, probe: boolean): void {
    const t = this.now();
    this.failedAttempts++;
    this.d.onAttempt?.({ uplink: this.name, result: f.scope, retry: tasks.some((task) => task.retryCount > 0) });
    if (f.scope === 'link') {
      // A dropped connection is one link failure (counted in onLinkDown), not one per message.
      if (this.link.connected) {
        this.link.record(false, probe);
        if (f.retry === 'hard') this.link.hardFailure(f);
      }
    } else {
      this.link.record(true, probe);
    }
    for (const task of tasks) this.outcome(task, requestAt, f, t);
  }

  private outcome(task: TaskMeta, requestAt: number, f: Failure, t: number): void {
    const wall = this.clock.wall();
    const v = failureOutcome(task, requestAt, f, {
      wallNow: wall, ageMs: this.ages.age(task), holdLeftMs: Math.max(0, this.link.heldUntil - t),
    }, this.cfg.retry, this.rand);
    this.outcomes.push(v.outcome);
    if (!v.outcome.ok && v.outcome.status === 'failed') this.ages.forget(task.id);
    if (v.deadLetter) {
      this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'dead_letter', code: v.deadLetter.code, faultClass: f.faultClass, at: wall, detail: v.deadLetter.detail });
      if (f.scope === 'payload') this.d.log.error({ uplink: this.name, task: task.id, code: f.code }, `batch dead-lettered: ${f.message}`);
    }
  }

  /** Writes the grouped outcomes in one transaction. */
  flush(): void {
    this.outcomes.flush();
  }
}
