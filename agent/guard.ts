/**
 * The owner of every callback the agent does not call itself: timers, intervals, stream and
 * driver events, cron jobs. A failure there would otherwise be an uncaught exception that kills
 * the gateway (and, under a supervisor, a crash loop); here it becomes a stable code, a
 * rate-limited log line, an event and a metric, and the agent goes on.
 *
 * The error's code comes from the error itself: a HoldfastError's code, an SQLite or errno code
 * mapped to the catalogue (disk full is STORAGE_FULL, other store and file-system errors are
 * STORE_UNAVAILABLE), anything else INTERNAL_ERROR.
 *
 * Fault injection for the tests: HOLDFAST_INJECT_THROW names sites (comma-separated, or `*`)
 * whose next run throws before doing its work, once per site, so that a test can see each owner
 * catch it with the agent still alive.
 */
import type { Logger } from 'pino';
import { isHoldfastError, type ErrorCode } from './errors.js';
import { LogLimiter } from './log-limit.js';

/** What an owner reports a failure to; each is best effort (the store may be what failed). */
export interface GuardSinks {
  log: Logger;
  /** A recovery_events row (may throw: the store may be down). */
  event?: (site: string, code: ErrorCode, message: string) => void;
  /** holdfast_internal_errors_total{site,code}. */
  count?: (site: string, code: ErrorCode) => void;
}

const STORE_ERRNOS = new Set(['EIO', 'EROFS', 'ENOENT', 'EACCES', 'EPERM', 'ESTALE', 'EBADF', 'ENOTDIR']);
const LOG_INTERVAL_MS = 60_000;

/** The catalogue code for an error thrown inside the agent. */
export function codeOf(e: unknown): ErrorCode {
  if (isHoldfastError(e)) return e.code;
  const code = typeof e === 'object' && e !== null ? String((e as { code?: unknown }).code ?? '') : '';
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return 'STORAGE_FULL';
  if (code.startsWith('SQLITE_') || STORE_ERRNOS.has(code)) return 'STORE_UNAVAILABLE';
  return 'INTERNAL_ERROR';
}

/** Sites named in HOLDFAST_INJECT_THROW, each to fail once. */
function injected(env: string | undefined): Set<string> {
  return new Set((env ?? '').split(',').map((s) => s.trim()).filter(Boolean));
}

export class Guard {
  private readonly limiter = new LogLimiter(LOG_INTERVAL_MS);
  private readonly inject: Set<string>;
  /** Failures caught, by site (for status and tests). */
  readonly caught = new Map<string, number>();

  constructor(private readonly sinks: GuardSinks, injectEnv = process.env.HOLDFAST_INJECT_THROW) {
    this.inject = injected(injectEnv);
  }

  /** Runs `fn` as the owner of `site`; a throw is reported and `undefined` returned. */
  run<T>(site: string, fn: () => T): T | undefined {
    try {
      this.maybeInject(site);
      return fn();
    } catch (e) {
      this.report(site, e);
      return undefined;
    }
  }

  /** The same for a promise-returning `fn`: a rejection is reported, never left unhandled. */
  async runAsync<T>(site: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      this.maybeInject(site);
      return await fn();
    } catch (e) {
      this.report(site, e);
      return undefined;
    }
  }

  /** A callback for setTimeout/setInterval/an emitter that is owned by `site`. */
  wrap<A extends unknown[]>(site: string, fn: (...args: A) => unknown): (...args: A) => void {
    return (...args: A) => {
      const r = this.run(site, () => fn(...args));
      if (r instanceof Promise) r.catch((e: unknown) => this.report(site, e));
    };
  }

  /** Reports a failure caught elsewhere as `site`'s. */
  report(site: string, e: unknown): void {
    const code = codeOf(e);
    const message = e instanceof Error ? e.message : String(e);
    this.caught.set(site, (this.caught.get(site) ?? 0) + 1);
    try {
      this.sinks.count?.(site, code);
    } catch { /* a metric must never be the second failure */ }
    const d = this.limiter.take(`${site}:${code}`);
    if (d.log) this.sinks.log.error({ err: e, code, site, suppressedSinceLast: d.suppressed }, `${site} failed: ${message}`);
    try {
      this.sinks.event?.(site, code, message);
    } catch (e2) {
      if (this.limiter.take(`${site}:event`).log) {
        this.sinks.log.error({ code: codeOf(e2), site }, `${site}: the failure could not be recorded in the store either`);
      }
    }
  }

  private maybeInject(site: string): void {
    if (this.inject.size === 0) return;
    if (this.inject.has(site) || (this.inject.has('*') && !this.caught.has(site))) {
      this.inject.delete(site);
      throw new Error(`injected failure at ${site} (HOLDFAST_INJECT_THROW)`);
    }
  }
}
