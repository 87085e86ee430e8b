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
import { safeInterval, safeTimeout, type SafeTimer } from '../drivers/timer.js';

/** What an owner reports a failure to; each is best effort (the store may be what failed). */
export interface GuardSinks {
  log: Logger;
  /** A recovery_events row (may throw: the store may be down). */
  event?: (site: string, code: ErrorCode, message: string) => void;
  /** holdfast_internal_errors_total{site,code}. */
  count?: (site: string, code: ErrorCode) => void;
  /** A store or disk error (STORE_UNAVAILABLE, STORAGE_FULL): the storage keeper takes the store out of use. */
  store?: (site: string, e: unknown) => void;
}

const STORE_ERRNOS = new Set(['EIO', 'EROFS', 'ENOENT', 'EACCES', 'EPERM', 'ESTALE', 'EBADF', 'ENOTDIR']);
const STRONG_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO']);
/** Sites whose work is writing the store. */
const STORE_SITES = ['store.', 'ingest.', 'lane.outcome'];
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
  run<T>(site: string, fn: () => T, onFail?: () => void): T | undefined {
    try {
      this.maybeInject(site);
      return fn();
    } catch (e) {
      this.report(site, e);
      onFail?.();
      return undefined;
    }
  }

  /** The same for a promise-returning `fn`: a rejection is reported, never left unhandled. */
  async runAsync<T>(site: string, fn: () => Promise<T>, onFail?: () => void): Promise<T | undefined> {
    try {
      this.maybeInject(site);
      return await fn();
    } catch (e) {
      this.report(site, e);
      this.recover(site, onFail);
      return undefined;
    }
  }

  /**
   * A callback owned by `site` (a timer, an emitter, a promise's handler). `recover` runs after a
   * failure was reported: a loop that re-arms itself at the end of its run re-arms there, so one
   * failure does not end it.
   */
  wrap<A extends unknown[]>(site: string, fn: (...args: A) => unknown, recover?: () => void): (...args: A) => void {
    return (...args: A) => {
      let failed = false;
      const r = this.run(site, () => fn(...args), () => (failed = true));
      if (failed) this.recover(site, recover);
      else if (r instanceof Promise) r.catch((e: unknown) => (this.report(site, e), this.recover(site, recover)));
    };
  }

  /** safeTimeout with `fn` owned by `site`. */
  timeout(site: string, fn: () => unknown, ms: number, recover?: () => void): SafeTimer {
    return safeTimeout(this.wrap(site, fn, recover), ms);
  }

  /** safeInterval with `fn` owned by `site` (the interval goes on after a failure). */
  interval(site: string, fn: () => unknown, ms: number): NodeJS.Timeout {
    return safeInterval(this.wrap(site, fn), ms);
  }

  /** setImmediate with `fn` owned by `site`. */
  immediate(site: string, fn: () => unknown, recover?: () => void): NodeJS.Immediate {
    return setImmediate(this.wrap(site, fn, recover));
  }

  /** A promise nobody awaits, owned by `site`: a rejection is reported, then `recover` runs. */
  settle(site: string, p: Promise<unknown>, recover?: () => void): void {
    p.catch((e: unknown) => {
      this.report(site, e);
      this.recover(site, recover);
    });
  }

  /**
   * A failure the storage keeper must act on: SQLite's own, a full or read-only disk, an I/O
   * error; or any file-system error at a site that writes the store (a missing file there is the
   * data directory gone). An ENOENT elsewhere (a file a driver reads) leaves the store alone.
   */
  private storeFault(site: string, e: unknown, code: ErrorCode): boolean {
    if (code !== 'STORE_UNAVAILABLE' && code !== 'STORAGE_FULL') return false;
    const errno = String((e as { code?: unknown }).code ?? '');
    return errno.startsWith('SQLITE_') || STRONG_ERRNOS.has(errno) || STORE_SITES.some((p) => site.startsWith(p));
  }

  private recover(site: string, recover?: () => void): void {
    if (!recover) return;
    try {
      recover();
    } catch (e) {
      this.report(site, e);
    }
  }

  /** Reports a failure caught elsewhere as `site`'s. */
  report(site: string, e: unknown): void {
    const code = codeOf(e);
    const message = e instanceof Error ? e.message : String(e);
    this.caught.set(site, (this.caught.get(site) ?? 0) + 1);
    try {
      this.sinks.count?.(site, code);
    } catch { /* a metric must never be the second failure */ }
    if (this.storeFault(site, e, code)) {
      try {
        this.sinks.store?.(site, e);
      } catch { /* the keeper never throws; if it did, the report below still stands */ }
    }
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
      // Deliberately uncoded: it stands for a bug no code anticipated, so report() gives it
      // INTERNAL_ERROR (codeOf) like a real one. Only HOLDFAST_INJECT_THROW, a test hook, reaches here.
      throw new Error(`injected failure at ${site} (HOLDFAST_INJECT_THROW)`);
    }
  }
}
