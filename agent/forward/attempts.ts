/**
 * A lane's attempts on their way: the tasks in flight, the outcomes waiting for their grouped
 * write (agent/forward/outcomes.ts), and what a finished attempt writes for each of its tasks.
 * Until its outcome is written a task is still `pending` in the store: busy() keeps it from being
 * offered again.
 */
import type { Logger } from 'pino';
import type { DeepReadonly, RetryConfig } from '../config/types.js';
import type { Failure } from '../policy/classify.js';
import type { Clock } from '../clock.js';
import type { Guard } from '../guard.js';
import type { Events } from '../../store/events.js';
import type { TaskMeta, TaskQueue } from '../../store/tasks.js';
import { within } from '../../drivers/timer.js';
import { failureOutcome, OutcomeWriter } from './outcomes.js';
import { TaskAges } from './task-ages.js';

export interface AttemptsDeps {
  uplink: string;
  tasks: TaskQueue;
  events: Events;
  log: Logger;
  clock: Clock;
  retry: DeepReadonly<RetryConfig>;
  rand: () => number;
  guard: Guard;
}

export class Attempts {
  private readonly inflight = new Set<number>();
  private readonly outcomes: OutcomeWriter;
  private readonly ages: TaskAges;
  private idle: (() => void) | null = null;
  /** Tasks delivered and failed attempts since the start (holdfast status). */
  deliveredCount = 0;
  failedCount = 0;

  constructor(private readonly deps: AttemptsDeps) {
    this.outcomes = new OutcomeWriter(deps.tasks, deps.guard);
    this.ages = new TaskAges(deps.clock);
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Ids of the tasks being sent now. */
  inflightIds(): ReadonlySet<number> {
    return this.inflight;
  }

  /** Sent and not settled, or settled and not written: still pending in the store, on their way. */
  ids(): number[] {
    return [...this.inflight, ...this.outcomes.ids()];
  }

  /** A view for one fill: whether a task is on its way (the unwritten outcomes are looked at once). */
  busy(): (id: number) => boolean {
    const unflushed = this.outcomes.size > 0 ? this.outcomes.ids() : null;
    return (id) => this.inflight.has(id) || (unflushed?.has(id) ?? false);
  }

  begin(tasks: readonly TaskMeta[]): void {
    for (const task of tasks) this.inflight.add(task.id);
  }

  end(tasks: readonly TaskMeta[]): void {
    for (const task of tasks) this.inflight.delete(task.id);
    if (this.inflight.size === 0) this.idle?.();
  }

  delivered(tasks: readonly TaskMeta[], requestAt: number, ackAt: number): void {
    this.deliveredCount += tasks.length;
    for (const task of tasks) {
      this.outcomes.push({ id: task.id, ok: true, requestAt, ackAt });
      this.ages.forget(task.id);
    }
  }

  /** A failed attempt of `task`: retry later, give up, or dead-letter (with its event). */
  failed(task: TaskMeta, requestAt: number, f: Failure, holdLeftMs: number): void {
    const wall = this.deps.clock.wall();
    const v = failureOutcome(task, requestAt, f, { wallNow: wall, ageMs: this.ages.age(task), holdLeftMs }, this.deps.retry, this.deps.rand);
    this.outcomes.push(v.outcome);
    if (!v.outcome.ok && v.outcome.status === 'failed') this.ages.forget(task.id);
    if (v.deadLetter) {
      this.deps.events.record({ scope: 'uplink', subject: this.deps.uplink, kind: 'dead_letter', code: v.deadLetter.code, faultClass: f.faultClass, at: wall, detail: v.deadLetter.detail });
      if (f.scope === 'payload') this.deps.log.error({ uplink: this.deps.uplink, task: task.id, code: f.code }, `batch dead-lettered: ${f.message}`);
    }
  }

  /** Writes the waiting outcomes in one transaction. */
  flush(): void {
    this.outcomes.flush();
  }

  /**
   * Waits until nothing is in flight or `ms` passed (stopping); what is still in flight then stays
   * pending, to be sent again (same key) after the restart: said in the log and an event.
   */
  async settled(ms: number): Promise<void> {
    if (this.inflight.size > 0) {
      await within(new Promise<void>((res) => (this.idle = res)), ms);
      this.idle = null;
    }
    const left = this.inflight.size;
    if (left === 0) return;
    const { log, events, uplink, clock } = this.deps;
    log.warn({ uplink, code: 'SHUTDOWN_ACK_TIMEOUT', inflight: left }, `stopping: ${left} message(s) not acknowledged in time; they stay pending and are sent again after the restart`);
    try {
      events.record({ scope: 'uplink', subject: uplink, kind: 'shutdown', code: 'SHUTDOWN_ACK_TIMEOUT', faultClass: 'local', at: clock.wall(), detail: { inflight: left } });
    } catch (err) {
      log.error({ err, code: 'STORE_UNAVAILABLE', uplink }, 'shutdown event not recorded');
    }
  }
}
