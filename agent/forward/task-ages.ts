/**
 * How old each task a lane retries is, judged so that a step of the wall clock cannot make it
 * absurd (agent/policy/clock.ts judgeAge): the first time this process judges a task, its wall
 * age (first_attempt_at against now) is taken as far as it can be trusted; from then on the age
 * grows only with the monotonic clock. Bounded: past MAX_TRACKED the oldest entry is forgotten and
 * that task is judged by its wall age alone again.
 */
import type { Clock } from '../clock.js';
import { judgeAge, wallAge, type SeenAge } from '../policy/clock.js';

const MAX_TRACKED = 100_000;

export class TaskAges {
  private readonly seen = new Map<number, SeenAge>();

  constructor(private readonly clock: Clock) {}

  /** The age of `task`'s retries now (ms), for the retry limit. */
  age(task: { id: number; firstAttemptAt: number | null }): number {
    const wall = this.clock.wall();
    const mono = this.clock.mono();
    const s = this.seen.get(task.id);
    const age = judgeAge(task.firstAttemptAt, wall, this.clock.floor, s, mono);
    if (!s) {
      if (this.seen.size >= MAX_TRACKED) this.seen.delete(this.seen.keys().next().value as number);
      this.seen.set(task.id, { mono, age: wallAge(task.firstAttemptAt, wall, this.clock.floor) ?? 0 });
    }
    return age;
  }

  /** The task is settled (delivered or dead-lettered). */
  forget(id: number): void {
    this.seen.delete(id);
  }

  get size(): number {
    return this.seen.size;
  }
}
