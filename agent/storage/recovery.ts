/**
 * The keeper's steps around a failure (keeper.ts): the rescue from the failing store; then, to
 * bring it back, a full disk must have room first, the reopened store must take a real write,
 * the spool is imported file by file (each in one transaction, deleted after its commit:
 * store/spool-import.ts), and the outage is recorded with its length and numbers. The reopen
 * steps throw on a store error, and the keeper tries again later.
 */
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { segmentDir } from '../../store/segments.js';
import { importSpoolFile } from '../../store/spool-import.js';
import { spoolFiles, type SpoolWriter } from '../../store/spool.js';
import { measureUsage } from '../../store/usage.js';
import { rescue, type RescueResult } from '../../store/rescue.js';
import type { SalvageReport } from '../../store/salvage.js';
import { rescueScope, type StoreFailure } from '../policy/store-health.js';
import type { DropLedger } from './ledger.js';
import type { StorageMetrics } from './metrics.js';
import type { Session } from './session.js';

/**
 * Copies what the failing store may lose into the spool while its connection still reads
 * (agent/policy/store-health.ts says what); what cannot be read is counted as `store_lost`.
 * Never throws; null when nothing was to be rescued or the rescue itself failed.
 */
export function rescueFrom(s: Session | null, f: StoreFailure, spool: SpoolWriter, metrics: StorageMetrics, ledger: DropLedger, log: Logger): RescueResult | null {
  const scope = rescueScope(f.kind);
  if (!s || scope === 'none') return null;
  try {
    const r = rescue(s.store.db, s.store.writer, spool, scope === 'all-readable' ? 0 : (s.store.writer?.durableId ?? 0), []);
    metrics.spooled.inc({ result: 'rescued' }, r.batches);
    ledger.count(r.lost.map((l) => ({ uplink: l.uplink, reason: 'store_lost' as const, batches: l.batches, readings: l.readings })), { kind: f.kind });
    const lost = r.lost.reduce((n, l) => n + l.readings, 0);
    log.warn({ code: 'STORE_UNAVAILABLE', rescued: r.batches, readings: r.readings, acks: r.acks, lost: r.lost, firstError: r.firstError },
      `rescued ${r.batches} batch(es) from the failed store into the spool${lost > 0 ? `; ${lost} reading(s) could not be read and are lost` : ''}`);
    return r;
  } catch (e) {
    log.error({ err: e, code: 'STORE_UNAVAILABLE' }, 'rescue from the failed store failed; what it held may come back when it does');
    return null;
  }
}

/** A salvage at open: metrics and an error line (the keeper puts it on the faults topic). */
export function reportSalvage(r: SalvageReport, metrics: StorageMetrics, log: Logger): void {
  metrics.salvaged.inc({ source: 'database' }, r.batches.fromDatabase);
  metrics.salvaged.inc({ source: 'segments' }, r.batches.fromSegments);
  log.error({ code: 'STORE_SALVAGED', ...r },
    `database ${r.reason}: quarantined in ${r.quarantine}; ${r.batches.total} batch(es) (${r.readings} readings) salvaged, ${r.lost.bodiesMissing} lost, ${r.tasks.unknownState} task(s) of unknown state will be sent again`);
}

/** Throws ENOSPC while the filesystem of the data directory has no room beyond its reserve (store.minFreeRatio). */
export function diskHasRoom(cfg: Config): void {
  const u = measureUsage(cfg.dataDir);
  const reserve = Math.ceil(cfg.store.minFreeRatio * u.fsTotalBytes);
  if (u.fsFreeBytes > reserve) return;
  throw Object.assign(new Error(`the disk is still full: ${u.fsFreeBytes} bytes free, ${reserve} kept in reserve (store.minFreeRatio)`), { code: 'ENOSPC' });
}

/** One real write to the reopened store and its segment directory, so a read-only disk is not taken for a working one. */
export function probeWrite(s: Session, dataDir: string): void {
  s.store.admin.countReopen();
  const f = join(segmentDir(dataDir), '.probe');
  writeFileSync(f, 'probe', { mode: 0o600 });
  unlinkSync(f);
}

export interface Imported {
  files: number;
  batches: number;
  readings: number;
  duplicates: number;
  repaired: number;
  acks: number;
}

/** Imports every spool file, oldest first, each in one transaction, and deletes it after its commit. */
export function importSpool(s: Session, spool: SpoolWriter, cfg: Config, uplinks: readonly string[], now: number, metrics: StorageMetrics, log: Logger): Imported {
  spool.close();
  const sum: Imported = { files: 0, batches: 0, readings: 0, duplicates: 0, repaired: 0, acks: 0 };
  for (const f of spoolFiles(cfg.store.spoolDir)) {
    const r = importSpoolFile(s.store.db, s.store.writer, f, uplinks, now);
    spool.remove(f);
    sum.files++;
    sum.batches += r.batches;
    sum.readings += r.readings;
    sum.duplicates += r.duplicates;
    sum.repaired += r.repaired;
    sum.acks += r.acks;
    metrics.spooled.inc({ result: 'imported' }, r.batches);
    metrics.spooled.inc({ result: 'duplicate' }, r.duplicates);
    if (r.badBytes > 0) log.warn({ code: 'STORE_UNAVAILABLE', file: f, badBytes: r.badBytes, badRecords: r.badRecords }, 'spool file had unreadable bytes');
  }
  return sum;
}

/** Errors that are about the store's disk or files (as opposed to a refusal such as SCHEMA_TOO_NEW or an insecure directory). */
export function isStoreError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (code === 'SCHEMA_TOO_NEW' || code === 'DATA_DIR_INSECURE') return false;
  return code === 'STORE_UNAVAILABLE' || (typeof code === 'string' && (/^SQLITE_/.test(code) || /^E[A-Z]+$/.test(code)));
}
