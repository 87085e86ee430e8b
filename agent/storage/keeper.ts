/**
 * The store's owner while the agent runs: it opens it (salvaging when it must), notices when it
 * fails, keeps the data flowing meanwhile, and brings it back.
 *
 * Failure (any store error from a commit, an outcome, an event, a read; or the data directory,
 * database or segment directory replaced or gone, checked by inode at every commit and every
 * second): STORE_UNAVAILABLE, logged, counted, on the `faults` topic, /readyz false. Then
 *   - the batches at risk are rescued from the failing connection into the spool
 *     (agent/policy/store-health.ts says which; store/rescue.ts does it);
 *   - lanes stop reading the store; new batches go to the spool (store/spool.ts) and, when a link
 *     is up, straight to it as well (relay.ts), their acknowledgements kept in the spool;
 *   - events wait in memory (guarded.ts).
 * Recovery is tried after a jittered, doubling wait: the failed connection is let go, the store
 * opened anew (a new file if the old one is gone or corrupt: store/open-store.ts), written to
 * once, then the whole spool is imported (store/spool-import.ts: exactly once), the events that
 * waited and the drops counted meanwhile are written, the outage is recorded as an event, and
 * the lanes start again from the store.
 */
import type { Logger } from 'pino';
import type { EventClock } from '../../store/events.js';
import type { Guard } from '../guard.js';
import type { Config } from '../config/types.js';
import type { CommitResult, SealedBatch } from '../../store/outbox.js';
import { ackUnwritten, type RescueResult } from '../../store/rescue.js';
import { readSpoolFile, spoolFiles, SpoolWriter } from '../../store/spool.js';
import type { Outcome } from '../../store/tasks.js';
import { classifyStoreError, probeDelayMs, type StoreFailure } from '../policy/store-health.js';
import { LogLimiter } from '../log-limit.js';
import type { Lane } from '../forward/lane.js';
import { GuardedEvents, type KeeperView } from './guarded.js';
import type { DropLedger } from './ledger.js';
import type { StorageMetrics } from './metrics.js';
import { closeQuietly, openSession, storeIdent, type Session } from './session.js';
import { diskHasRoom, importSpool, isStoreError, probeWrite, rescueFrom, reportSalvage } from './recovery.js';

const EMPTY: CommitResult = { committed: 0, readings: 0, duplicates: 0, collisions: [] };
const VERIFY_MS = 1000;

export interface KeeperDeps {
  cfg: Config;
  log: Logger;
  uplinks: readonly string[];
  metrics: StorageMetrics;
  ledger: DropLedger;
  /** A fault or its end, for the MQTT `faults` topic. */
  publish: (m: Record<string, unknown>) => void;
  now?: () => number;
  rand?: () => number;
  /** What the store's events measure intervals by (monotonic). */
  clock?: EventClock;
  /** The owner of the keeper's timers (agent/guard.ts). */
  guard: Guard;
}

export interface StoreState {
  available: boolean;
  /** Since when it is unavailable, and why. */
  since: number | null;
  failure: StoreFailure | null;
  where: string | null;
  attempts: number;
  spool: { bytes: number; files: number };
  lastRescue: RescueResult | null;
  lastSalvage: unknown;
}

export class StoreKeeper implements KeeperView {
  available = false;
  session: Session | null = null;
  readonly events: GuardedEvents;
  readonly spoolWriter: SpoolWriter;
  private lanes: readonly Lane[] = [];
  /** The lanes were told the store is down (storeDown) and wait for storeBack. */
  private lanesDown = false;
  private relay: ((batches: readonly SealedBatch[]) => void) | null = null;
  private failure: StoreFailure | null = null;
  private where: string | null = null;
  private since: number | null = null;
  private attempts = 0;
  private gen = 0;
  /** The device the store was last on: a reopen does not start afresh on another (session.ts checkSameDisk). */
  private dev: number | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private verifyTimer: NodeJS.Timeout | null = null;
  private started = false;
  private stopped = false;
  private lastRescue: RescueResult | null = null;
  private spooled = { batches: 0, readings: 0 };
  /** The highest source cursor in the spool, by device: a source restarted before the import resumes after it. */
  private readonly spoolCursors = new Map<string, number>();
  private readonly logs = new LogLimiter(60_000);
  /** Messages for the faults topic raised before the uplinks exist (at construction): sent once attached. */
  private early: Record<string, unknown>[] | null = [];
  private readonly now: () => number;
  private readonly rand: () => number;

  constructor(private readonly deps: KeeperDeps) {
    this.now = deps.now ?? Date.now;
    this.rand = deps.rand ?? Math.random;
    this.events = new GuardedEvents(this);
    const s = deps.cfg.store;
    this.spoolWriter = new SpoolWriter(s.spoolDir, s.spoolMaxBytes, s.synchronous === 'OFF' ? 0 : s.synchronous === 'FULL' ? 2 : 1, this.now);
    for (const f of spoolFiles(s.spoolDir)) {
      try {
        for (const r of readSpoolFile(f).records) if (r.type === 'cursor') this.noteCursor(r.meta.device, r.meta.cursor);
      } catch (e) {
        deps.log.error({ err: e, code: 'STORE_UNAVAILABLE', file: f }, 'spool file unreadable: its cursors are not known before the import');
      }
    }
    try {
      this.session = openSession(deps.cfg, deps.uplinks, ++this.gen, null, deps.clock);
      this.dev = this.session.dev;
      this.available = true;
      this.reportSalvage(this.session);
    } catch (e) {
      if (!isStoreError(e)) throw e;
      // The agent starts anyway: batches go to the spool until the store can be opened.
      this.enterUnavailable(classifyStoreError(e), 'open', e);
    }
  }

  private noteCursor(device: string, cursor: number): void {
    this.spoolCursors.set(device, Math.max(this.spoolCursors.get(device) ?? 0, cursor));
  }

  /** The highest cursor of a source in the spool (0: none), for a source starting before the spool is imported. */
  spoolCursor(device: string): number {
    return this.spoolCursors.get(device) ?? 0;
  }

  /** The lanes to pause and restart, and where spooled batches are offered for a direct send. */
  attach(lanes: readonly Lane[], relay: (batches: readonly SealedBatch[]) => void): void {
    this.lanes = lanes;
    this.relay = relay;
    if (!this.available) this.lanesOff();
    const early = this.early ?? [];
    this.early = null;
    for (const m of early) this.deps.publish(m);
  }

  private publish(m: Record<string, unknown>): void {
    if (this.early) this.early.push(m);
    else this.deps.publish(m);
  }

  private lanesOff(): void {
    for (const l of this.lanes) l.storeDown();
    this.lanesDown = this.lanes.length > 0;
  }

  start(): void {
    this.started = true;
    if (this.available && spoolFiles(this.deps.cfg.store.spoolDir).length > 0) {
      // Batches spooled by an earlier run: imported before anything else is committed.
      this.available = false;
      this.since = this.now();
      this.recover();
    } else if (!this.available) this.scheduleProbe();
    const tick = () => {
      this.verifyTimer = setTimeout(tick, Math.round(VERIFY_MS * (0.8 + 0.4 * this.rand())));
      this.deps.guard.run('store.verify', () => this.available && this.verify());
    };
    this.verifyTimer = setTimeout(tick, VERIFY_MS);
  }

  state(): StoreState {
    return {
      available: this.available, since: this.since, failure: this.failure, where: this.where, attempts: this.attempts,
      spool: { bytes: this.spoolWriter.bytes, files: spoolFiles(this.deps.cfg.store.spoolDir).length }, lastRescue: this.lastRescue,
      lastSalvage: this.session?.store.salvage ?? null,
    };
  }

  /** The store is still the one opened: the data directory, database and segment directory have the inodes they had. */
  verify(): boolean {
    if (!this.available || !this.session) return false;
    const id = storeIdent(this.deps.cfg.dataDir);
    if (id === this.session.ident) return true;
    const gone = id.startsWith('gone:');
    // A replaced directory is as good as a vanished one: the files the agent holds open are not the ones there.
    const err = Object.assign(new Error(gone ? 'the data directory, or its database or segment directory, is gone' : 'the data directory was replaced under the agent (an inode changed)'), {
      code: gone ? id.slice(5) : 'ENOENT',
    });
    this.fail(err, 'verify');
    return false;
  }

  fail(e: unknown, where: string): void {
    if (!this.available) {
      const l = this.logs.take(`after:${where}`);
      if (l.log) this.deps.log.debug({ err: e, where, suppressedSinceLast: l.suppressed }, 'store error while unavailable');
      return;
    }
    this.enterUnavailable(classifyStoreError(e), where, e);
  }

  private enterUnavailable(f: StoreFailure, where: string, err: unknown): void {
    this.available = false;
    this.attempts = 0;
    this.spooled = { batches: 0, readings: 0 };
    this.raise(f, where, err);
    this.lastRescue = rescueFrom(this.session, f, this.spoolWriter, this.deps.metrics, this.deps.ledger, this.deps.log) ?? this.lastRescue;
    this.scheduleProbe();
  }

  /** STORE_UNAVAILABLE: the error line, the metric, the faults topic; the lanes stop reading the store. */
  private raise(f: StoreFailure, where: string, err: unknown): void {
    this.failure = f;
    this.where = where;
    this.since ??= this.now();
    this.deps.metrics.failures.inc({ kind: f.kind, errno: f.errno });
    this.deps.log.error({ err, code: 'STORE_UNAVAILABLE', kind: f.kind, errno: f.errno, where, spoolDir: this.deps.cfg.store.spoolDir },
      `store unavailable (${f.kind}: ${f.errno}); new batches go to the spool until it works again`);
    this.publish({ type: 'store', code: 'STORE_UNAVAILABLE', state: 'raised', kind: f.kind, errno: f.errno, where, at: this.since });
    this.lanesOff();
  }

  spool(batches: readonly SealedBatch[], cursors: ReadonlyMap<string, number>): CommitResult {
    let ok = false;
    let reason: 'spool_full' | 'spool_error' = 'spool_full';
    try {
      ok = this.spoolWriter.appendBatches(batches, cursors);
    } catch (e) {
      reason = 'spool_error';
      const l = this.logs.take('spool-write');
      if (l.log) this.deps.log.error({ err: e, code: 'STORE_UNAVAILABLE', spoolDir: this.deps.cfg.store.spoolDir, suppressedSinceLast: l.suppressed }, 'cannot write the spool either: batches are dropped and counted');
    }
    const readings = batches.reduce((n, b) => n + b.readingCount, 0);
    if (!ok) {
      if (batches.length > 0) {
        this.deps.metrics.spooled.inc({ result: 'refused' }, batches.length);
        this.deps.ledger.count(this.deps.uplinks.map((uplink) => ({ uplink, reason, batches: batches.length, readings })));
      }
      return EMPTY;
    }
    this.spooled.batches += batches.length;
    this.spooled.readings += readings;
    for (const [device, c] of cursors) this.noteCursor(device, c);
    this.deps.metrics.spooled.inc({ result: 'spooled' }, batches.length);
    if (batches.length > 0) this.relay?.(batches);
    return EMPTY;
  }

  /** A batch sent straight from the spool was acknowledged: recorded in the store, or in the spool while it is down. */
  acked(key: string, uplink: string, requestAt: number, ackAt: number): void {
    this.deps.metrics.spooled.inc({ result: 'sent' });
    const s = this.session;
    if (this.available && s) {
      try {
        const q = s.tasks.get(uplink);
        if (q) {
          q.ackedByKey(key, requestAt, ackAt);
          return;
        }
      } catch (e) {
        this.fail(e, 'acknowledgement');
      }
    }
    try {
      this.spoolWriter.appendAck(key, uplink, requestAt, ackAt);
    } catch {
      // the batch is sent once more after the import, with its key: a consumer can tell
    }
  }

  unwritten(outcomes: readonly Outcome[]): void {
    const acks = outcomes.flatMap((o) => (o.ok ? [{ id: o.id, requestAt: o.requestAt, ackAt: o.ackAt }] : []));
    const s = this.session;
    if (acks.length === 0 || !s) return;
    try {
      ackUnwritten(s.store.db, this.spoolWriter, acks);
    } catch {
      // the old connection no longer reads: those tasks are sent again after recovery, with their keys
    }
  }

  private scheduleProbe(): void {
    // Not before start(): an engine that fails to construct must not be kept alive by a probe.
    if (!this.started || this.stopped || this.probeTimer) return;
    this.probeTimer = setTimeout(this.deps.guard.wrap('store.probe', () => {
      this.probeTimer = null;
      this.recover();
    }, () => {
      this.probeTimer = null;
      this.scheduleProbe();
    }), probeDelayMs(this.attempts, this.rand));
  }

  /** Opens the store anew, imports the spool and resumes; on failure waits longer and tries again. */
  private recover(): void {
    if (this.stopped || this.available) return;
    let next: Session | null = null;
    try {
      // A disk that filled up stays in use only once it has room again (beyond the reserve).
      if (this.failure?.kind === 'full') diskHasRoom(this.deps.cfg);
      // Outcomes still waiting name tasks of the failed store: into the spool by key while it can still name them.
      for (const l of this.lanes) l.flush();
      const old = this.session;
      this.session = null;
      if (old) closeQuietly(old.store);
      next = openSession(this.deps.cfg, this.deps.uplinks, ++this.gen, this.dev, this.deps.clock);
      this.dev = next.dev;
      probeWrite(next, this.deps.cfg.dataDir);
      this.reportSalvage(next);
      const imported = importSpool(next, this.spoolWriter, this.deps.cfg, this.deps.uplinks, this.now(), this.deps.metrics, this.deps.log);
      const replayed = this.events.replay(next.events);
      this.deps.ledger.flush(next.store.admin);
      const at = this.now();
      const outage = this.since === null ? 0 : at - this.since;
      if (this.failure) {
        next.store.admin.recordOutage(this.since ?? at, at, {
          kind: this.failure.kind, errno: this.failure.errno, message: this.failure.message, where: this.where, spooled: this.spooled, imported,
          rescued: this.lastRescue, eventsReplayed: replayed, eventsDropped: this.events.droppedEvents,
        });
      }
      this.session = next;
      this.available = true;
      this.deps.log.info({ code: 'STORE_UNAVAILABLE', outageMs: outage, attempts: this.attempts, imported, eventsReplayed: replayed }, 'store available again; spool imported');
      if (this.failure) this.publish({ type: 'store', code: 'STORE_UNAVAILABLE', state: 'cleared', kind: this.failure.kind, at, durationMs: outage, imported });
      this.failure = null;
      this.where = null;
      this.since = null;
      this.attempts = 0;
      if (this.lanesDown) for (const l of this.lanes) l.storeBack();
      this.lanesDown = false;
    } catch (e) {
      if (next) closeQuietly(next.store);
      // The store opened at start but the spool of an earlier run could not be imported into it.
      if (!this.failure) this.raise(classifyStoreError(e), 'import', e);
      this.attempts++;
      // Once a minute per cause: a new cause (the disk read-only, then not mounted) is said at once.
      const l = this.logs.take(`probe:${classifyStoreError(e).errno}`);
      if (l.log) this.deps.log.warn({ err: e, code: 'STORE_UNAVAILABLE', attempts: this.attempts, suppressedSinceLast: l.suppressed }, `store still unavailable: ${(e as Error).message}`);
      if (!isStoreError(e)) this.deps.log.error({ err: e }, 'unexpected error while reopening the store');
      this.scheduleProbe();
    }
  }

  private reportSalvage(s: Session): void {
    const report = s.store.salvage;
    if (!report) return;
    reportSalvage(report, this.deps.metrics, this.deps.log);
    this.publish({ type: 'store', code: 'STORE_SALVAGED', state: 'raised', at: this.now(), report });
  }

  stop(): void {
    this.stopped = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    if (this.verifyTimer) clearTimeout(this.verifyTimer);
    this.probeTimer = null;
    this.verifyTimer = null;
    try {
      this.spoolWriter.close();
    } catch (e) {
      this.deps.log.error({ err: e, code: 'STORE_UNAVAILABLE' }, 'closing the spool failed');
    }
  }

  /** Closes the store (after the last commit and the lanes' last outcomes). */
  close(): void {
    const s = this.session;
    this.session = null;
    this.available = false;
    if (s) closeQuietly(s.store);
  }
}
