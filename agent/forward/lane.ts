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
import { classify, type Failure } from '../policy/classify.js';
import { emptyBudget, noteAttempt } from '../policy/budget.js';
import { systemClock, wallAt } from '../clock.js';
import { Guard } from '../guard.js';
import type { OutboundMessage, UplinkDriver } from '../../drivers/uplink.js';
import type { TaskMeta, TaskRow } from '../../store/tasks.js';
import type { LaneDeps, LaneSnapshot } from './lane-deps.js';
import { Link } from './link.js';
import { Attempts } from './attempts.js';
import { TaskSources } from './sources.js';
import { Wakeup } from './wakeup.js';
import { BUDGET_WINDOW_MS, decide, type Gates, type Source } from './order.js';
import { nextDueAt, noteAck } from './pacer.js';
import { openMessage } from './message.js';
import { sendDirect } from './direct.js';

export type { LaneDeps, LaneSnapshot };

/** After a failure caught in the lane's own code (agent/guard.ts), it tries again this much later. */
const RECOVER_MS = 1000;

export class Lane {
  readonly name: string;
  private readonly deps: LaneDeps & Required<Pick<LaneDeps, 'clock' | 'guard' | 'rand'>>;
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

  constructor(deps: LaneDeps) {
    this.deps = { ...deps, clock: deps.clock ?? systemClock(), guard: deps.guard ?? new Guard({ log: deps.log }), rand: deps.rand ?? Math.random };
    this.name = deps.cfg.name;
    const { clock, guard, rand } = this.deps;
    const t = clock.mono();
    this.wakeup = new Wakeup(() => this.pump(), () => clock.mono(), deps.after);
    this.link = new Link({
      cfg: deps.cfg, driver: deps.driver, events: deps.events, log: deps.log, clock: clock, rand,
      wake: (ms) => this.wakeup.in(ms), onUp: (outageMs) => this.onUp(outageMs), stopped: () => this.stopped, onFailure: deps.onLinkFailure,
    });
    this.sources = new TaskSources(deps.tasks, deps.cfg.drain.pullTasks);
    this.attempts = new Attempts({ uplink: this.name, tasks: deps.tasks, events: deps.events, log: deps.log, clock: clock, retry: deps.cfg.retry, rand, guard: guard });
    const dr = deps.cfg.drain;
    this.gates = { msgBucket: { tokens: dr.messagesPerSec, at: t }, readBucket: { tokens: dr.readingsPerSec, at: t }, budget: emptyBudget(), throttle: 1, drainStartAt: 0, serverHoldUntil: 0 };
    const down = (raw: Parameters<Parameters<UplinkDriver['onDown']>[0]>[0]) => {
      if (this.link.down(classify(raw))) this.sources.drop();
      this.wakeup.in(0);
    };
    // A failure here would leave the lane believing the link up: the down is tried once more.
    deps.driver.onDown((raw) => guard.run('lane.down', () => down(raw), () => guard.run('lane.down', () => down(raw), () => this.wakeup.in(RECOVER_MS))));
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

  /** Sends a batch that has no task (spooled while the store was down: direct.ts); null when not sent. Never throws. */
  sendDirect(key: string, device: string, readingCount: number, readings: Buffer): Promise<{ requestAt: number; ackAt: number } | null> {
    if (this.stopped) return Promise.resolve(null);
    const { driver, onAttempt, clock } = this.deps;
    return sendDirect({ uplink: this.name, link: this.link, driver, onAttempt, now: () => clock.mono(), delivered: () => this.attempts.deliveredCount++ }, { key, device, readingCount, readings });
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
      heldUntil: l.heldUntil > 0 ? wallAt(this.deps.clock, l.heldUntil) : 0, nextConnectAt: l.nextConnectAt > 0 ? wallAt(this.deps.clock, l.nextConnectAt) : 0,
      delivered: this.attempts.deliveredCount, failedAttempts: this.attempts.failedCount, draining: this.sources.draining,
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
    if (plan) await this.attempts.settled(plan.acksBy - this.deps.clock.mono());
    await this.deps.driver.close(plan ? Math.max(0, plan.closeBy - this.deps.clock.mono()) : undefined);
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
    if (this.link.connected) this.deps.guard.run('lane.pump', () => this.fill(), () => (this.sources.rescan(), retry()));
    else void this.deps.guard.runAsync('lane.connect', () => this.link.connect(), retry);
  }

  private onUp(outageMs: number | undefined): void {
    const t = this.deps.clock.mono();
    this.sources.recover();
    this.gates = { ...this.gates, drainStartAt: t + Math.floor(this.deps.rand() * this.deps.cfg.drain.startJitterMs) };
    this.deps.log.info({ uplink: this.name, outageMs, drainStartInMs: this.gates.drainStartAt - t }, 'uplink connected');
  }

  /** Sends what decide() picks until the window is full or every source is empty or held. */
  private fill(): void {
    if (this.storeOff) return;
    const cfg = this.deps.cfg;
    let free = Math.min(cfg.maxInflight, this.deps.driver.sendWindow) - this.attempts.inflightCount;
    const busy = this.attempts.busy();
    while (free > 0) {
      const t = this.deps.clock.mono();
      const heads = this.sources.heads(t, this.deps.clock.wall(), free, busy);
      const d = decide(heads, { ...this.gates, breaker: this.link.breakerState }, cfg, t);
      if (d.kind === 'wait') this.wakeup.in(d.ms);
      if (d.kind !== 'take') break;
      const tasks = this.sources.take(d.source, t, this.deps.clock.wall(), busy, () => this.attempts.ids().length);
      if (tasks.length === 0) continue;
      this.link.admitted(d.gates.breaker);
      this.gates = { ...d.gates };
      this.send(tasks, d.source, d.probe);
      free--;
    }
    const t = this.deps.clock.mono();
    this.sources.endFill(t);
    // With nothing in flight no acknowledgement will run the lane: the next retry check is always
    // set. Time passes during a fill, so a check that came due after heads() looked is run 1 ms on.
    if (this.attempts.inflightCount === 0) this.wakeup.in(Math.max(1, this.sources.dueCheckAt - t));
    const paceAt = nextDueAt(this.sources.pace);
    if (paceAt < Infinity) this.wakeup.in(Math.max(1, paceAt - t));
  }

  /** Opens the tasks' payloads and sends them as one message; a payload that does not open dead-letters its task. */
  private send(tasks: readonly TaskRow[], source: Source, probe: boolean): void {
    const t = this.deps.clock.mono();
    for (const task of tasks) this.gates = { ...this.gates, budget: noteAttempt(this.gates.budget, task.retryCount > 0, BUDGET_WINDOW_MS, t) };
    const o = openMessage(tasks, source, this.deps.codec, this.sources.liveFromId);
    for (const u of o.unreadable) this.settle([u.task], this.deps.clock.wall(), { code: 'PAYLOAD_UNREADABLE', message: u.message, scope: 'payload', retry: 'hard', faultClass: 'local' }, probe);
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
      this.deps.guard.run('lane.outcome', fn, () => this.rescan());
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
        const now = this.deps.clock.mono();
        this.link.record(true, probe);
        this.deps.onAttempt?.({ uplink: this.name, result: 'ok', retry, latencyMs: r.ackAt - r.requestAt });
        this.attempts.delivered(tasks, r.requestAt, r.ackAt);
        // The driver's pace is wall time (ack + postRate): kept as the same wait on the monotonic clock.
        const s = this.sources;
        s.pace = noteAck(s.pace, msg.device, r.notBefore === undefined ? undefined : now + Math.max(0, r.notBefore - r.ackAt), now);
      }),
      (e: unknown) => after(() => {
        if (epoch === this.epoch) this.settle(tasks, this.deps.clock.wall(), classify({ kind: 'socket', message: String(e) }), probe);
      }),
    );
  }

  /** A failed attempt (of one message): breaker, backoff or dead letter, and the record of why, for each of its tasks. */
  private settle(tasks: readonly TaskMeta[], requestAt: number, f: Failure, probe: boolean): void {
    this.attempts.failedCount++;
    this.deps.onAttempt?.({ uplink: this.name, result: f.scope, retry: tasks.some((task) => task.retryCount > 0) });
    if (f.scope !== 'link') this.link.record(true, probe);
    else if (this.link.connected) {
      // A dropped connection is one link failure (counted when the link goes down), not one per message.
      this.link.record(false, probe, f.code);
      if (f.retry === 'hard') this.link.hardFailure(f);
    }
    const now = this.deps.clock.mono();
    // A server's "not before" (Retry-After) holds the whole lane, not only the batches it refused.
    if (f.retryAfterMs !== undefined && f.retryAfterMs > 0) this.gates = { ...this.gates, serverHoldUntil: Math.max(this.gates.serverHoldUntil, now + f.retryAfterMs) };
    const holdLeftMs = Math.max(0, this.link.heldUntil - now);
    for (const task of tasks) this.attempts.failed(task, requestAt, f, holdLeftMs);
  }
}
