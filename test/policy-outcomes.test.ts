/**
 * agent/forward/outcomes.ts failureOutcome(): what a failed attempt means for one task, table-driven with
 * an explicit clock and a fixed random source.
 */
import t from 'tap';
import { failureOutcome } from '../agent/forward/outcomes.js';
import type { Failure } from '../agent/policy/classify.js';
import type { RetryConfig } from '../agent/config/types.js';
import type { TaskMeta } from '../store/tasks.js';

const retry: RetryConfig = { strategy: 'FIXED', baseMs: 1000, maxMs: 60_000, reconnectMaxMs: 60_000, jitter: 0, maxAttempts: 5, maxAgeMs: 3_600_000, hardFailureHoldMs: 60_000 };
const task = (retryCount: number, firstAttemptAt: number | null = 0): TaskMeta =>
  ({ id: 7, payloadId: 3, key: 'k', device: 'd', readingCount: 10, retryCount, firstAttemptAt, createdAt: 0 });
const f = (scope: Failure['scope'], r: Failure['retry'], retryAfterMs?: number): Failure =>
  ({ code: scope === 'payload' ? 'HTTP_400' : 'ETIMEDOUT', message: 'm', scope, retry: r, faultClass: 'network', retryAfterMs });

const NOW = 10_000;
const cases: Array<{ name: string; task: TaskMeta; f: Failure; held?: number; ageMs?: number; status: 'pending' | 'failed'; code: string; next?: number; nextMin?: number; dead?: string }> = [
  { name: 'soft link failure: retried after the backoff', task: task(0), f: f('link', 'soft'), status: 'pending', code: 'ETIMEDOUT', next: NOW + 1000 },
  { name: 'the server\'s hint wins when longer (jittered above it)', task: task(0), f: f('link', 'soft', 5000), status: 'pending', code: 'ETIMEDOUT', nextMin: NOW + 5000 },
  { name: 'hard link failure: retried when the hold ends', task: task(0), f: f('link', 'hard'), held: NOW + 42_000, status: 'pending', code: 'ETIMEDOUT', next: NOW + 42_000 },
  { name: 'hard link failure, hold over: retried at once', task: task(0), f: f('link', 'hard'), held: NOW - 1, status: 'pending', code: 'ETIMEDOUT', next: NOW },
  { name: 'hard payload failure: dead-lettered with its code', task: task(0), f: f('payload', 'hard'), status: 'failed', code: 'HTTP_400', dead: 'HTTP_400' },
  { name: 'soft payload failure: retried', task: task(1), f: f('payload', 'soft'), status: 'pending', code: 'HTTP_400', next: NOW + 1000 },
  { name: 'the last allowed attempt: RETRY_LIMIT_EXCEEDED', task: task(4), f: f('link', 'soft'), status: 'failed', code: 'RETRY_LIMIT_EXCEEDED', dead: 'RETRY_LIMIT_EXCEEDED' },
  { name: 'too old: RETRY_LIMIT_EXCEEDED', task: task(1, NOW - 3_600_000), f: f('link', 'soft'), status: 'failed', code: 'RETRY_LIMIT_EXCEEDED', dead: 'RETRY_LIMIT_EXCEEDED' },
  { name: 'a first attempt has its age from now', task: task(0, null), f: f('link', 'soft'), status: 'pending', code: 'ETIMEDOUT', next: NOW + 1000 },
  // The lane judges the age (agent/policy/clock.ts judgeAge): a first attempt stamped in 1970 by an
  // unsynchronised clock is not 56 years old.
  { name: 'the judged age decides, not first_attempt_at', task: task(1, -1_700_000_000_000), ageMs: 5000, f: f('link', 'soft'), status: 'pending', code: 'ETIMEDOUT', next: NOW + 1000 },
  { name: 'a judged age at maxAgeMs: RETRY_LIMIT_EXCEEDED', task: task(1, NOW), ageMs: 3_600_000, f: f('link', 'soft'), status: 'failed', code: 'RETRY_LIMIT_EXCEEDED', dead: 'RETRY_LIMIT_EXCEEDED' },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const ageMs = c.ageMs ?? (c.task.firstAttemptAt === null ? 0 : NOW - c.task.firstAttemptAt);
    const v = failureOutcome(c.task, NOW, c.f, { wallNow: NOW, ageMs, holdLeftMs: Math.max(0, (c.held ?? 0) - NOW) }, retry, () => 0.5);
    const o = v.outcome;
    t.equal(o.ok, false);
    if (o.ok) return;
    t.equal(o.id, 7);
    t.equal(o.status, c.status);
    t.equal(o.code, c.code);
    t.equal(o.requestAt, NOW);
    t.equal(o.retryClass, c.f.retry);
    if (c.nextMin !== undefined) t.ok(o.nextAttemptAt > c.nextMin && o.nextAttemptAt < c.nextMin + 5000, `after the hint: ${o.nextAttemptAt - NOW} ms`);
    else if (c.next !== undefined) t.equal(o.nextAttemptAt, c.next);
    else t.equal(o.nextAttemptAt, 0, 'a dead letter is never due');
    t.equal(v.deadLetter?.code, c.dead);
    if (c.dead === 'RETRY_LIMIT_EXCEEDED') t.match(o.message, /^ETIMEDOUT: /, 'the last error is kept in the message');
  });
}
