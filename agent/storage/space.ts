/**
 * Space: measures the store against its budget (agent/policy/storage.ts) every second or so and
 * after every large burst of commits, and acts on it:
 *
 *   - short of space (90 % of the budget): delivered data is reclaimed at once, whole segment
 *     files at a time, not only at the nightly purge;
 *   - full (at the budget: the quota, or the filesystem's free space down to its reserve):
 *     STORAGE_FULL (log, event, metric, `faults` topic, status) and `store.fullPolicy` until the
 *     store is back under the mark: drop-oldest and downsample empty files (store/reclaim.ts),
 *     reject-new refuses new batches (admit()). Every dropped reading is counted (ledger.ts).
 *
 * Ingest, polling and forwarding go on throughout; a pass empties at most FILES_PER_PASS files,
 * so it never holds the event loop long.
 */
import { createHash } from 'node:crypto';
import type { Guard } from '../guard.js';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { PayloadCodec } from '../../store/codec.js';
import type { SealedBatch } from '../../store/outbox.js';
import { emptySegment, pendingOfSegment, segmentBusy, segmentRows, unlinkSegment, type SummaryBatch } from '../../store/reclaim.js';
import { measureUsage, type Usage } from '../../store/usage.js';
import { newBatchKey } from '../ingest.js';
import type { Reading } from '../reading.js';
import { downsample, type SummaryReading } from '../policy/downsample.js';
import { assessSpace, planReclaim, stillFull, type SpaceVerdict } from '../policy/storage.js';
import { LogLimiter } from '../log-limit.js';
import type { Admission } from './guarded.js';
import type { StoreKeeper } from './keeper.js';
import type { DropLedger } from './ledger.js';
import type { StorageMetrics } from './metrics.js';

const CHECK_MS = 1000;
const FILES_PER_PASS = 8;
const WARN_LOG_MS = 600_000;

export interface SpaceDeps {
  cfg: Config;
  log: Logger;
  /** The owner of the space check's timer (agent/guard.ts). */
  guard: Guard;
  keeper: StoreKeeper;
  codec: PayloadCodec;
  ledger: DropLedger;
  metrics: StorageMetrics;
  uplinks: readonly string[];
  priorities: Readonly<Record<string, number>>;
  publish: (m: Record<string, unknown>) => void;
  /** Batches were dropped: the lanes forget what they read ahead. */
  dropped: () => void;
  /** Tasks and batch keys on their way upstream now: their files are left for a later pass. */
  busy: () => { taskIds: number[]; keys: string[] };
  now?: () => number;
  rand?: () => number;
}

export interface SpaceState {
  usedBytes: number;
  budgetBytes: number;
  fsFreeBytes: number;
  bound: 'quota' | 'disk';
  level: SpaceVerdict['level'];
  full: boolean;
  since: number | null;
  policy: Config['store']['fullPolicy'];
}

export class SpaceManager implements Admission {
  private full = false;
  private fullSince: number | null = null;
  private warned = false;
  private last: (SpaceState & { at: number }) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sinceCheck = 0;
  private readonly now: () => number;
  private readonly rand: () => number;
  /** Reclaiming delivered data is routine on a small disk: said once in a while, not at every pass. */
  private readonly warnLog: LogLimiter;

  constructor(private readonly deps: SpaceDeps) {
    this.now = deps.now ?? Date.now;
    this.rand = deps.rand ?? Math.random;
    this.warnLog = new LogLimiter(WARN_LOG_MS, this.now);
  }

  start(): void {
    const tick = () => {
      this.timer = setTimeout(tick, Math.round(CHECK_MS * (0.8 + 0.4 * this.rand())));
      this.deps.guard.run('store.space', () => this.check());
    };
    this.timer = setTimeout(tick, Math.round(CHECK_MS * this.rand()));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  state(): SpaceState | null {
    return this.last;
  }

  /** reject-new at a full store: the batches are refused and counted; otherwise all are admitted. */
  admit(batches: readonly SealedBatch[]): readonly SealedBatch[] {
    if (!this.full || this.deps.cfg.store.fullPolicy !== 'reject-new' || batches.length === 0) return batches;
    const readings = batches.reduce((n, b) => n + b.readingCount, 0);
    this.deps.ledger.count(this.deps.uplinks.map((uplink) => ({ uplink, reason: 'rejected' as const, batches: batches.length, readings })));
    return [];
  }

  committed(bytes: number): void {
    this.sinceCheck += bytes;
    const budget = this.last?.budgetBytes ?? Infinity;
    // A burst larger than a fortieth of the budget is checked at once rather than at the next tick.
    if (this.sinceCheck > budget / 40) this.check();
  }

  /** Measures and acts. Never throws: a store error takes the store out of use (keeper). */
  check(): void {
    const k = this.deps.keeper;
    const s = k.session;
    if (!k.available || !s || !k.verify()) return;
    this.sinceCheck = 0;
    const c = this.deps.cfg.store;
    let u: Usage;
    try {
      u = measureUsage(this.deps.cfg.dataDir);
    } catch (e) {
      k.fail(e, 'space check');
      return;
    }
    const v = assessSpace({ usedBytes: u.usedBytes, maxBytes: c.maxBytes, fsFreeBytes: u.fsFreeBytes, fsTotalBytes: u.fsTotalBytes, minFreeRatio: c.minFreeRatio });
    const full = stillFull(this.full, v);
    this.transition(full, v, u);
    this.last = { usedBytes: u.usedBytes, budgetBytes: v.budgetBytes, fsFreeBytes: u.fsFreeBytes, bound: v.bound, level: v.level, full, since: this.fullSince, policy: c.fullPolicy, at: this.now() };
    try {
      if (v.needBytes > 0) this.reclaim(v, u, full);
      this.deps.ledger.flush(s.store.admin);
    } catch (e) {
      k.fail(e, 'reclaim');
    }
  }

  private transition(full: boolean, v: SpaceVerdict, u: Usage): void {
    const detail = { usedBytes: u.usedBytes, budgetBytes: v.budgetBytes, bound: v.bound, fsFreeBytes: u.fsFreeBytes, policy: this.deps.cfg.store.fullPolicy };
    const ev = this.deps.keeper.events;
    const at = this.now();
    if (full && !this.full) {
      this.fullSince = at;
      this.deps.log.error({ code: 'STORAGE_FULL', ...detail }, `store full (${v.bound === 'quota' ? 'store.maxBytes' : 'filesystem free space'}): ${this.deps.cfg.store.fullPolicy} applies`);
      ev.open({ scope: 'store', subject: 'space', kind: 'storage_full', code: 'STORAGE_FULL', faultClass: 'local', at, detail });
      this.deps.publish({ type: 'store', code: 'STORAGE_FULL', state: 'raised', at, ...detail });
    } else if (!full && this.full) {
      const ms = ev.close('store', 'space', 'storage_full', at);
      this.deps.ledger.reportAll();
      this.deps.log.info({ code: 'STORAGE_FULL', durationMs: ms ?? (this.fullSince === null ? 0 : at - this.fullSince), ...detail }, 'store no longer full');
      this.deps.publish({ type: 'store', code: 'STORAGE_FULL', state: 'cleared', at, ...detail });
      this.fullSince = null;
    }
    const warn = v.level !== 'ok';
    if (warn && !this.warned && !full) {
      const l = this.warnLog.take('warn');
      if (l.log) this.deps.log.warn({ code: 'STORAGE_FULL', suppressedSinceLast: l.suppressed, ...detail }, 'store above 90 % of its budget: reclaiming delivered data');
    }
    this.warned = warn;
    this.full = full;
  }

  /** Empties the files the plan chooses (at most FILES_PER_PASS). Throws a store error. */
  private reclaim(v: SpaceVerdict, u: Usage, full: boolean): void {
    const s = this.deps.keeper.session!;
    const w = s.store.writer;
    if (!w) return;
    const plan = planReclaim({
      segments: segmentRows(s.store.db, this.deps.priorities, u.segmentFiles), active: w.active, policy: this.deps.cfg.store.fullPolicy, needBytes: v.needBytes, full,
    });
    if (plan.segments.length === 0) return;
    if (plan.rollActive) w.rollNow();
    let freed = 0;
    let dropped = false;
    let reclaimed = 0;
    const busy = this.deps.busy();
    let merged = 0;
    for (const { id, fate } of plan.segments.slice(0, FILES_PER_PASS)) {
      // Downsampling decodes a whole file: one a pass, the next a second later.
      if (fate === 'downsample' && merged++ > 0) break;
      if (fate === 'unreferenced') {
        freed += unlinkSegment(w, id);
        continue;
      }
      // A batch in flight would be counted as dropped and arrive anyway: its file waits for a later pass.
      if (fate !== 'reclaim' && segmentBusy(s.store.db, id, busy.taskIds, busy.keys)) continue;
      const summaries = fate === 'downsample' ? this.summaries(id) : [];
      // The reason is for the pending batches; dead letters are always counted as dead_letter.
      const r = emptySegment(s.store.db, w, id, fate === 'downsample' ? 'downsampled' : 'oldest', this.now(), summaries);
      freed += r.freedBytes;
      reclaimed += r.reclaimedBatches;
      if (r.dropped.length > 0) {
        dropped = true;
        this.deps.ledger.stored(r.dropped, { segment: id, policy: this.deps.cfg.store.fullPolicy });
      }
    }
    if (reclaimed > 0) this.deps.metrics.reclaimed.inc(reclaimed);
    // Routine when only delivered data went; the drops have their own lines (ledger.ts).
    this.deps.log[dropped ? 'info' : 'debug']({ code: 'STORAGE_FULL', files: plan.segments.length, freedBytes: freed, reclaimedBatches: reclaimed, need: v.needBytes }, 'space reclaimed');
    if (dropped) this.deps.dropped();
  }

  /**
   * The summaries that replace the pending batches of segment `seg` (policy downsample): per
   * device and set of uplinks still waiting, readings merged a batch at a time (so memory holds
   * one batch and the summaries), cut into batches of batch.maxReadings.
   */
  private summaries(seg: number): SummaryBatch[] {
    const s = this.deps.keeper.session!;
    const groups = new Map<string, { device: string; uplinks: string[]; createdAt: number; acc: SummaryReading[] }>();
    for (const p of pendingOfSegment(s.store.db, s.store.writer!, seg)) {
      let readings: Reading[];
      try {
        readings = JSON.parse(this.deps.codec.decode(p.payload, p.key).toString('utf8')) as Reading[];
      } catch (e) {
        // An unreadable batch cannot be merged: it goes with its file and is counted as dropped.
        this.deps.log.warn({ code: 'PAYLOAD_UNREADABLE', key: p.key, err: String(e) }, 'batch not downsampled: unreadable');
        continue;
      }
      const uplinks = [...p.uplinks].sort();
      const k = `${p.device}\u0000${uplinks.join('\u0000')}`;
      const g = groups.get(k) ?? { device: p.device, uplinks, createdAt: p.createdAt, acc: [] };
      g.createdAt = Math.min(g.createdAt, p.createdAt);
      g.acc = downsample([...g.acc, ...readings], this.deps.cfg.store.downsampleMs);
      groups.set(k, g);
    }
    const out: SummaryBatch[] = [];
    const max = this.deps.cfg.batch.maxReadings;
    for (const g of groups.values()) {
      for (let i = 0; i < g.acc.length; i += max) {
        const chunk = g.acc.slice(i, i + max);
        const json = JSON.stringify(chunk);
        const key = newBatchKey(this.now());
        out.push({
          uplinks: g.uplinks,
          batch: {
            key, hash: createHash('sha256').update(json).digest(), device: g.device, readingCount: chunk.length,
            firstTs: chunk[0].ts, lastTs: chunk[chunk.length - 1].ts, createdAt: g.createdAt, payload: this.deps.codec.encode(json, key), downsampled: true,
          },
        });
      }
    }
    return out;
  }
}
