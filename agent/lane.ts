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
 * The backlog is read ahead: a decode worker (store/decode-pool.ts) reads the next backlog tasks
 * from the store on its own connection and decrypts and inflates their payloads while earlier
 * ones are on the wire; this thread keeps up to `prefetch` of them queued and sends them in id
 * order. Live tasks and due retries are few and are read and decoded here when sent. If the
 * worker fails, this thread reads on from the last task it received (backlogCursor), so no task
 * is lost or skipped; a task stays `pending` in the store until an outcome is written for it.
 *
 * A device whose upstream asked for a posting pace (IEEE 2030.5 postRate, `notBefore` on an ack)
 * is served only by the pacer (agent/pacer.ts): the three paths above skip its tasks, and when its
 * time comes its pending tasks are read from the store and sent as one merged message.
 */
import type { Logger } from 'pino';
import { HoldfastError } from './errors.js';
import type { DeepReadonly, UplinkCommon } from './config/types.js';
import { admit, initialBreaker, record, reset, transition, type BreakerState } from './policy/breaker.js';
import { classify, type Failure } from './policy/classify.js';
import { nextDelay, shouldGiveUp } from './policy/retry.js';
import { adaptiveDelay } from './policy/adaptive.js';
import { budgetAllows, emptyBudget, noteAttempt, take, type RetryBudget, type TokenBucket } from './policy/budget.js';
import { arrayBody, clearWaiting, dueDevices, emptyPace, isPaced, markWaiting, mergeJsonArrays, nextDueAt, noteAck, takeForPost, type PaceState } from './pacer.js';
import { StoredMessage, type UplinkDriver } from '../drivers/uplink.js';
import type { PayloadCodec } from '../store/codec.js';
import { sharedReadAhead, type BacklogStream, type ReadAhead } from '../store/decode-pool.js';
import type { Events } from '../store/events.js';
import type { Outcome, TaskMeta, TaskQueue, TaskRow } from '../store/tasks.js';

const FLUSH_MS = 50;
const FLUSH_MAX = 500;
const DUE_CHECK_MS = 250;
const BUDGET_WINDOW_MS = 10_000;
/** Backlog tasks per request to the read-ahead worker. */
const AHEAD_CHUNK = 8;
/** Buffers waiting to be handed back to the read-ahead worker at most. */
const RECYCLE_MAX = 256;
/** A paced device's merged post holds at most this many readings and tasks (agent/pacer.ts). */
const PACED_MAX_READINGS = 10_000;
const PACED_MAX_TASKS = 500;

/**
 * A backlog task read ahead: decoded by the worker (`readings`, or `error` if its payload does
 * not decode), or read here with its payload (a TaskRow) and decoded when sent.
 */
interface Ahead {
  task: TaskMeta | TaskRow;
  /** From the worker: in a buffer of its own with room around it to frame it in place. */
  readings: Buffer | null;
  error: string | null;
}

export interface LaneDeps {
  cfg: DeepReadonly<UplinkCommon>;
  driver: UplinkDriver;
  tasks: TaskQueue;
  events: Events;
  codec: PayloadCodec;
  log: Logger;
  rand?: () => number;
  now?: () => number;
  /** Told of every finished attempt (metrics): result, whether it was a retry, the ack latency. */
  onAttempt?: (e: { uplink: string; result: 'ok' | 'payload' | 'link'; retry: boolean; latencyMs?: number }) => void;
  /**
   * Reads and decodes the backlog ahead in a worker. Default: the pool shared by every lane of
   * `codec` (store/decode-pool.ts); null reads and decodes on this thread when sending.
   */
  readAhead?: ReadAhead | null;
  /** Backlog tasks queued ahead at most (default 2 x maxInflight, 16..256). */
  prefetch?: number;
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
  private readonly rand: () => number;
  private connected = false;
  private connecting = false;
  private linkFailures = 0;
  private prevLinkDelay = 0;
  private nextConnectAt = 0;
  private heldUntil = 0;
  private breaker: BreakerState;
  private liveFromId = Number.MAX_SAFE_INTEGER;
  private liveCursor = 0;
  private backlogCursor = 0;
  /** Backlog tasks read ahead, oldest first. */
  private backlog: Ahead[] = [];
  /** The store has no backlog task after backlogCursor. */
  private backlogRead = false;
  private backlogExhausted = false;
  private readonly reader: ReadAhead | null;
  /** The worker stream feeding `backlog`; replies from any other stream are dropped. */
  private stream: BacklogStream | null = null;
  /** Tasks asked of `stream` and not received yet. */
  private requested = 0;
  /** Buffers of read-ahead rows whose sends completed: handed back to the worker with the next request. */
  private recycle: ArrayBuffer[] = [];
  /** Read the backlog on this thread until the next rescan (no worker, or it failed). */
  private readInline = false;
  private readonly prefetch: number;
  private liveDirty = true;
  private drainStartAt = 0;
  private nextDueCheckAt = 0;
  private readonly inflight = new Set<number>();
  private outcomes: Outcome[] = [];
  private msgBucket: TokenBucket;
  private readBucket: TokenBucket;
  private budget: RetryBudget = emptyBudget();
  private pace: PaceState = emptyPace();
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt = Infinity;
  private immediate: NodeJS.Immediate | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private delivered = 0;
  private failedAttempts = 0;

  constructor(private readonly d: LaneDeps) {
    this.cfg = d.cfg;
    this.name = d.cfg.name;
    this.now = d.now ?? Date.now;
    this.rand = d.rand ?? Math.random;
    const t = this.now();
    this.breaker = initialBreaker(t);
    this.msgBucket = { tokens: this.cfg.drain.messagesPerSec, at: t };
    this.readBucket = { tokens: this.cfg.drain.readingsPerSec, at: t };
    this.reader = d.readAhead === undefined ? sharedReadAhead(d.codec, d.codec.keyring) : d.readAhead;
    this.prefetch = Math.max(1, Math.floor(d.prefetch ?? Math.min(256, Math.max(16, 2 * this.cfg.maxInflight))));
    d.driver.onDown((raw) => this.onLinkDown(classify(raw)));
  }

  start(): void {
    this.persistLink();
    this.wake(0);
  }

  /** New tasks were committed. */
  notify(): void {
    this.liveDirty = true;
    if (this.connected) this.wake(0);
  }

  /** Tasks were re-admitted by the sweeper: rescan the backlog from the start. */
  rescan(): void {
    this.dropReadAhead();
    this.backlogCursor = 0;
    this.readInline = false;
    this.backlogRead = false;
    this.backlogExhausted = false;
    this.liveDirty = true;
    this.wake(0);
  }

  /** Manual breaker reset (console, CLI, MQTT): closed, hold lifted, reconnect now. */
  resetBreaker(): void {
    const t = this.now();
    this.setBreaker(reset(t), 'manual reset');
    this.heldUntil = 0;
    this.nextConnectAt = 0;
    this.linkFailures = 0;
    this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'breaker', at: t, detail: { reset: 'manual' } });
    this.wake(0);
  }

  snapshot(): LaneSnapshot {
    return {
      uplink: this.name, connected: this.connected, breaker: this.breaker.name, inflight: this.inflight.size,
      heldUntil: this.heldUntil, nextConnectAt: this.nextConnectAt, delivered: this.delivered,
      failedAttempts: this.failedAttempts, draining: !this.backlogExhausted,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    if (this.immediate) clearImmediate(this.immediate);
    this.wakeTimer = null;
    this.immediate = null;
    this.dropReadAhead();
    await this.d.driver.close();
    this.flush();
    await this.reader?.close();
  }

  /** Forgets what was read ahead (it is all still pending in the store) and closes the stream. */
  private dropReadAhead(): void {
    this.stream?.cancel();
    this.stream = null;
    this.requested = 0;
    this.backlog = [];
    this.recycle = [];
  }

  /** Pumps after `ms`; 0 means on the next turn of the event loop (setImmediate, not a >= 1 ms timer). */
  private wake(ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) {
      // As before: an immediate pump replaces a later timed one (the pump re-arms what it needs).
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
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
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.wakeAt = Infinity;
      this.pump();
    }, Math.max(0, ms));
  }

  private pump(): void {
    if (this.stopped) return;
    if (this.connected) this.fill();
    else void this.tryConnect();
  }

  private async tryConnect(): Promise<void> {
    if (this.connecting) return;
    const t = this.now();
    const notBefore = Math.max(this.heldUntil, this.nextConnectAt);
    if (t < notBefore) return this.wake(notBefore - t);
    const a = admit(this.cfg.breaker, this.breaker, t);
    this.setBreaker(a.state);
    if (!a.allowed) return this.wake(Math.max(10, (a.retryAt ?? t + 1000) - t));
    this.connecting = true;
    const r = await this.d.driver.connect();
    this.connecting = false;
    if (this.stopped) return;
    if (r.ok) this.onUp(a.probe);
    else this.onLinkFailure(classify(r.failure), a.probe);
    this.wake(0);
  }

  private onUp(probe: boolean): void {
    const t = this.now();
    this.connected = true;
    this.linkFailures = 0;
    this.prevLinkDelay = 0;
    this.setBreaker(record(this.cfg.breaker, this.breaker, t, true, probe, this.rand));
    const outage = this.d.events.close('uplink', this.name, 'outage', t);
    this.liveFromId = this.d.tasks.maxId() + 1;
    this.liveCursor = this.liveFromId - 1;
    this.rescan();
    this.drainStartAt = t + Math.floor(this.rand() * this.cfg.drain.startJitterMs);
    this.d.log.info({ uplink: this.name, outageMs: outage, drainStartInMs: this.drainStartAt - t }, 'uplink connected');
    this.persistLink();
  }

  private onLinkDown(f: Failure): void {
    if (!this.connected) return;
    this.connected = false;
    // The next connect rescans: release the worker's stream (and the payloads held) meanwhile.
    this.dropReadAhead();
    this.onLinkFailure(f, false);
    this.wake(0);
  }

  private onLinkFailure(f: Failure, probe: boolean): void {
    const t = this.now();
    this.setBreaker(record(this.cfg.breaker, this.breaker, t, false, probe, this.rand));
    this.linkFailures++;
    const r = this.cfg.retry;
    if (f.retry === 'hard') {
      const hold = Math.round(r.hardFailureHoldMs * (0.8 + 0.4 * this.rand()));
      this.heldUntil = t + hold;
      this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'alarm', code: f.code, faultClass: f.faultClass, at: t, detail: { message: f.message, holdMs: hold } });
      this.d.log.error({ uplink: this.name, code: f.code, holdMs: hold }, `hard link failure, data held: ${f.message}`);
    } else {
      const delay =
        r.strategy === 'ADAPTIVE'
          ? Math.max(adaptiveDelay(r, { durationsMs: this.d.events.outageHistory(this.name) }, t - (this.d.events.outageStart(this.name) ?? t), this.rand), f.retryAfterMs ?? 0)
          : nextDelay(r, { attempt: this.linkFailures, prevDelayMs: this.prevLinkDelay || r.baseMs }, this.rand, f.retryAfterMs);
      this.prevLinkDelay = delay;
      this.nextConnectAt = t + delay;
      if (this.linkFailures <= 3 || this.linkFailures % 20 === 0) {
        this.d.log.warn({ uplink: this.name, code: f.code, attempt: this.linkFailures, retryInMs: delay }, `uplink down: ${f.message}`);
      }
    }
    this.d.events.open({ scope: 'uplink', subject: this.name, kind: 'outage', code: f.code, faultClass: f.faultClass, at: t });
    this.persistLink(f);
  }

  private setBreaker(next: BreakerState, why?: string): void {
    const tr = transition(this.breaker, next);
    this.breaker = next;
    if (tr) {
      const t = this.now();
      this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'breaker', at: t, detail: { transition: tr, why } });
      this.d.log.warn({ uplink: this.name, breaker: tr }, 'breaker state changed');
      this.persistLink();
    }
  }

  private persistLink(f?: Failure): void {
    this.d.events.link({
      uplink: this.name, connected: this.connected, breaker: this.breaker.name, breakerSince: this.breaker.since,
      at: this.now(), code: f?.code, error: f?.message,
    });
  }

  /** Fills free in-flight slots: live, then due retries, then the rate-limited backlog. */
  private fill(): void {
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
      const due = this.d.tasks.due(t, free + this.inflight.size + this.outcomes.length);
      // Outcomes not yet flushed are still 'pending' in the store: not due again. (A Set of them
      // is made only here, when retries are due, not for every acknowledgement.)
      const unflushed = due.length > 0 && this.outcomes.length > 0 ? new Set(this.outcomes.map((o) => o.id)) : null;
      let sent = 0;
      for (const task of due) {
        if (free <= 0) break;
        if (this.inflight.has(task.id) || unflushed?.has(task.id) || this.skipPaced(task)) continue;
        if (!budgetAllows(this.budget, b.ratio, b.minPerSec, BUDGET_WINDOW_MS, t)) break;
        if (!this.dispatch(task, task.id < this.liveFromId, 'due')) return;
        free--;
        sent++;
      }
      if (sent === 0) this.nextDueCheckAt = t + DUE_CHECK_MS;
    }
    if (free > 0 && !this.backlogExhausted) {
      if (t < this.drainStartAt) return this.wake(this.drainStartAt - t);
      const dr = this.cfg.drain;
      this.readAhead();
      while (free > 0) {
        const ahead = this.backlog[0];
        if (!ahead) {
          if (this.backlogRead) this.backlogExhausted = true;
          break;
        }
        const task = ahead.task;
        if (this.skipPaced(task)) {
          this.backlog.shift();
          this.readAhead();
          continue;
        }
        const m = take(this.msgBucket, 1, dr.messagesPerSec, dr.messagesPerSec, t);
        const n = take(this.readBucket, task.readingCount, dr.readingsPerSec, dr.readingsPerSec, t);
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
        this.readAhead();
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
    const busy = new Set(this.inflight);
    for (const o of this.outcomes) busy.add(o.id);
    const rows = this.d.tasks.pendingOfDevice(device, t, PACED_MAX_TASKS + busy.size).filter((r) => !busy.has(r.id));
    const group = takeForPost(rows, PACED_MAX_READINGS, PACED_MAX_TASKS);
    if (group.length === rows.length) this.pace = clearWaiting(this.pace, device);
    if (group.length === 0) return 'none';
    return this.dispatchGroup(group, group.some((r) => r.id < this.liveFromId)) ? 'sent' : 'refused';
  }

  /**
   * Keeps the read-ahead topped up: asks the worker for the next backlog tasks (afterId <
   * id < liveFromId) until `prefetch` are queued or asked for; without a worker, reads the next
   * tasks here once the queue is empty.
   */
  private readAhead(): void {
    if (this.backlogRead) return;
    const file = this.d.tasks.file;
    if (this.reader === null || file === null || this.readInline) {
      if (this.backlog.length > 0) return;
      const rows = this.d.tasks.fresh(this.backlogCursor, this.liveFromId, Math.min(this.prefetch, this.cfg.drain.pullTasks));
      if (rows.length === 0) this.backlogRead = true;
      for (const task of rows) {
        this.backlog.push({ task, readings: null, error: null });
        this.backlogCursor = task.id;
      }
      return;
    }
    const stream = (this.stream ??= this.reader.open({ file, uplink: this.name, afterId: this.backlogCursor, beforeId: this.liveFromId }));
    while (this.backlog.length + this.requested + AHEAD_CHUNK <= this.prefetch || (this.backlog.length === 0 && this.requested === 0)) {
      const n = Math.min(AHEAD_CHUNK, this.cfg.drain.pullTasks);
      this.requested += n;
      const recycle = this.recycle;
      this.recycle = [];
      stream.next(n, recycle).then(
        (rows) => {
          if (stream !== this.stream) return;
          this.requested -= n;
          for (const r of rows) {
            this.backlog.push(r);
            this.backlogCursor = r.task.id;
          }
          if (rows.length < n) {
            // The end of the backlog: the requests still out will come back empty.
            if (this.requested === 0) {
              this.backlogRead = true;
              stream.cancel();
              this.stream = null;
            }
          }
          if (this.connected) this.wake(0);
        },
        (e: unknown) => {
          if (stream !== this.stream) return;
          // Nothing is lost: the store still has every task after backlogCursor as pending.
          this.d.log.warn({ uplink: this.name, err: String(e) }, 'backlog read-ahead failed; reading on this thread until the next recovery');
          stream.cancel();
          this.stream = null;
          this.requested = 0;
          this.readInline = true;
          if (this.connected) this.wake(0);
        },
      );
      if (this.requested >= this.prefetch) break;
    }
  }

  /** Sends one task; false when the breaker refused (the caller stops filling). */
  private dispatch(task: TaskMeta | TaskRow, historical: boolean, from: 'live' | 'due' | 'backlog', ahead?: Ahead): boolean {
    const t = this.now();
    const a = admit(this.cfg.breaker, this.breaker, t);
    this.setBreaker(a.state);
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
    const a = admit(this.cfg.breaker, this.breaker, t);
    this.setBreaker(a.state);
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
    this.settle([task], t, { code: 'PAYLOAD_UNREADABLE', message: (e as Error).message, scope: 'payload', retry: 'hard', faultClass: 'local' }, probe);
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
    };
    const retry = tasks.some((task) => task.retryCount > 0);
    this.d.driver.send(msg).then(
      (r) => {
        done();
        if (r.ok) {
          const now = this.now();
          this.setBreaker(record(this.cfg.breaker, this.breaker, now, true, probe, this.rand));
          this.delivered += tasks.length;
          this.d.onAttempt?.({ uplink: this.name, result: 'ok', retry, latencyMs: r.ackAt - r.requestAt });
          for (const task of tasks) this.push({ id: task.id, ok: true, requestAt: r.requestAt, ackAt: r.ackAt });
          this.pace = noteAck(this.pace, msg.device, r.notBefore, now);
          // The driver is done with the readings (acknowledged): their buffer can be filled again.
          if (msg.framable && this.d.driver.releasesOnSettle && this.stream && this.recycle.length < RECYCLE_MAX) {
            this.recycle.push(msg.readings.buffer as ArrayBuffer);
          }
        } else if (!this.stopped) {
          this.settle(tasks, r.requestAt, classify(r.failure), probe);
        }
        this.wake(0);
      },
      (e: unknown) => {
        done();
        this.settle(tasks, t, classify({ kind: 'socket', message: String(e) }), probe);
        this.wake(0);
      },
    );
  }

  /** A failed attempt (of one message): breaker, backoff or dead letter, and the record of why, for each of its tasks. */
  private settle(tasks: readonly TaskMeta[], requestAt: number, f: Failure, probe: boolean): void {
    const t = this.now();
    this.failedAttempts++;
    this.d.onAttempt?.({ uplink: this.name, result: f.scope, retry: tasks.some((task) => task.retryCount > 0) });
    if (f.scope === 'link') {
      // A dropped connection is one link failure (counted in onLinkDown), not one per message.
      if (this.connected) {
        this.setBreaker(record(this.cfg.breaker, this.breaker, t, false, probe, this.rand));
        if (f.retry === 'hard') {
          this.connected = false;
          void this.d.driver.close();
          this.onLinkFailure(f, false);
        }
      }
    } else {
      this.setBreaker(record(this.cfg.breaker, this.breaker, t, true, probe, this.rand));
    }
    for (const task of tasks) this.outcome(task, requestAt, f, t);
  }

  private outcome(task: TaskMeta, requestAt: number, f: Failure, t: number): void {
    const attempts = task.retryCount + 1;
    const base = { id: task.id, ok: false as const, requestAt, faultClass: f.faultClass, retryClass: f.retry };
    const r = this.cfg.retry;
    if (f.scope === 'payload' && f.retry === 'hard') {
      this.push({ ...base, code: f.code, message: f.message, status: 'failed', nextAttemptAt: 0 });
      this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'dead_letter', code: f.code, faultClass: f.faultClass, at: t, detail: { task: task.id, key: task.key } });
      this.d.log.error({ uplink: this.name, task: task.id, code: f.code }, `batch dead-lettered: ${f.message}`);
    } else if (shouldGiveUp(r, attempts, task.firstAttemptAt ?? requestAt, t)) {
      this.push({ ...base, code: 'RETRY_LIMIT_EXCEEDED', message: `${f.code}: ${f.message}`, status: 'failed', nextAttemptAt: 0 });
      this.d.events.record({ scope: 'uplink', subject: this.name, kind: 'dead_letter', code: 'RETRY_LIMIT_EXCEEDED', faultClass: f.faultClass, at: t, detail: { task: task.id, attempts, last: f.code } });
    } else {
      const wait = f.retry === 'hard' ? Math.max(0, this.heldUntil - t) : nextDelay(r, { attempt: attempts, prevDelayMs: r.baseMs }, this.rand, f.retryAfterMs);
      this.push({ ...base, code: f.code, message: f.message, status: 'pending', nextAttemptAt: t + wait });
    }
  }

  private push(o: Outcome): void {
    this.outcomes.push(o);
    if (this.outcomes.length >= FLUSH_MAX) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Writes the grouped outcomes in one transaction. */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const batch = this.outcomes;
    if (batch.length === 0) return;
    this.outcomes = [];
    this.d.tasks.flush(batch);
  }
}
