/**
 * What becomes of a task after an attempt, and the grouped write of it.
 *
 * failureOutcome() is the pure decision for a failed attempt: dead-letter a hard payload failure,
 * give up at the retry limits (RETRY_LIMIT_EXCEEDED), otherwise retry after the backoff (or, for
 * a hard link failure, after the lane's hold). OutcomeWriter groups outcomes into one transaction
 * (every FLUSH_MS or FLUSH_MAX outcomes), never one write per acknowledgement; until written, a
 * task is still `pending` in the store, so the lane must not send it again (`has`).
 */
import type { DeepReadonly, RetryConfig } from '../config/types.js';
import type { Failure } from '../policy/classify.js';
import { nextDelay, shouldGiveUp } from '../policy/retry.js';
import type { Outcome, TaskMeta, TaskQueue } from '../../store/tasks.js';
import type { SafeTimer } from '../../drivers/timer.js';
import type { Guard } from '../guard.js';

const FLUSH_MS = 50;
const FLUSH_MAX = 500;

export interface FailureVerdict {
  outcome: Outcome;
  /** Set when the task is dead-lettered: the event's code and detail. */
  deadLetter?: { code: string; detail: Record<string, unknown> };
}

/** The clocks of a failed attempt, as the lane judged them (agent/policy/clock.ts). */
export interface AttemptTimes {
  /** Wall time now: the stored retry time is counted from it. */
  wallNow: number;
  /** The task's age for retry.maxAgeMs, judged so that a wall-clock step cannot make it absurd. */
  ageMs: number;
  /** What is left of the lane's hard-failure hold (monotonic). */
  holdLeftMs: number;
}

/** The outcome of a failed attempt of `task` (`requestAt`: when it was sent, wall time). */
export function failureOutcome(
  task: TaskMeta, requestAt: number, f: Failure, at: AttemptTimes, retry: DeepReadonly<RetryConfig>, rand: () => number,
): FailureVerdict {
  const now = at.wallNow;
  const attempts = task.retryCount + 1;
  const base = { id: task.id, ok: false as const, requestAt, faultClass: f.faultClass, retryClass: f.retry };
  if (f.scope === 'payload' && f.retry === 'hard') {
    return {
      outcome: { ...base, code: f.code, message: f.message, status: 'failed', nextAttemptAt: 0 },
      deadLetter: { code: f.code, detail: { task: task.id, key: task.key } },
    };
  }
  // The age comes judged (first attempt at 0, now at ageMs): never a raw wall-time difference.
  if (shouldGiveUp(retry, attempts, 0, at.ageMs)) {
    return {
      outcome: { ...base, code: 'RETRY_LIMIT_EXCEEDED', message: `${f.code}: ${f.message}`, status: 'failed', nextAttemptAt: 0 },
      deadLetter: { code: 'RETRY_LIMIT_EXCEEDED', detail: { task: task.id, attempts, last: f.code } },
    };
  }
  const wait = f.retry === 'hard' ? Math.max(0, at.holdLeftMs) : nextDelay(retry, { attempt: attempts, prevDelayMs: retry.baseMs }, rand, f.retryAfterMs);
  return { outcome: { ...base, code: f.code, message: f.message, status: 'pending', nextAttemptAt: now + wait } };
}

/** Outcomes waiting for their grouped write. */
export class OutcomeWriter {
  private outcomes: Outcome[] = [];
  private timer: SafeTimer | null = null;

  constructor(
    private readonly tasks: TaskQueue,
    private readonly guard: Guard,
  ) {}

  get size(): number {
    return this.outcomes.length;
  }

  /** The ids of the tasks whose outcome is not written yet (still `pending` in the store). */
  ids(): Set<number> {
    return new Set(this.outcomes.map((o) => o.id));
  }

  push(o: Outcome): void {
    this.outcomes.push(o);
    if (this.outcomes.length >= FLUSH_MAX) this.flush();
    else this.timer ??= this.arm();
  }

  /** The flush timer; after a failed flush (kept outcomes, or lost ones whose tasks stay pending) it is armed again. */
  private arm(): SafeTimer {
    return this.guard.timeout('lane.outcomes', () => this.flush(), FLUSH_MS, () => {
      this.timer = null;
      if (this.outcomes.length > 0) this.timer = this.arm();
    });
  }

  /** Writes the grouped outcomes in one transaction. */
  flush(): void {
    this.timer?.clear();
    this.timer = null;
    const batch = this.outcomes;
    if (batch.length === 0) return;
    this.outcomes = [];
    this.tasks.flush(batch);
  }
}
