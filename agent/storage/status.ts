/**
 * The storage part of `holdfast status` (the CLI next to a live or a stopped agent): the space
 * the store uses against its budget, whether it is full, what was dropped and why, the spool
 * waiting for import (a store the agent could not write), the quarantine, the last salvage.
 */
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import type { StoreAdmin } from '../../store/admin.js';
import { QUARANTINE_DIR } from '../../store/open-store.js';
import { spoolFiles } from '../../store/spool.js';
import { folderBytes, measureUsage } from '../../store/usage.js';
import { assessSpace } from '../policy/storage.js';

export interface StorageReport {
  usedBytes: number;
  budgetBytes: number;
  bound: 'quota' | 'disk';
  fsFreeBytes: number;
  level: 'ok' | 'warn' | 'full';
  /** STORAGE_FULL open (the agent's event), and since when. */
  full: boolean;
  fullSince: number | null;
  policy: Config['store']['fullPolicy'];
  maxBytes: number;
  /** Readings dropped, by uplink and reason. */
  dropped: { uplink: string; reason: string; readings: number; batches: number }[];
  spool: { dir: string; files: number; bytes: number };
  quarantine: { files: number; bytes: number };
  lastSalvage: { at: number; detail: unknown } | null;
  lastOutage: { since: number; durationMs: number | null; detail: unknown } | null;
}

/** `admin` may be null when the database cannot be opened: then only the files are reported. */
export function storageReport(cfg: Config, admin: StoreAdmin | null): StorageReport | null {
  let u;
  try {
    u = measureUsage(cfg.dataDir);
  } catch {
    return null;
  }
  const s = cfg.store;
  const v = assessSpace({ usedBytes: u.usedBytes, maxBytes: s.maxBytes, fsFreeBytes: u.fsFreeBytes, fsTotalBytes: u.fsTotalBytes, minFreeRatio: s.minFreeRatio });
  const facts = admin?.storageFacts() ?? { fullSince: null, lastSalvage: null, lastOutage: null, dropCounters: [] };
  const dropped = new Map<string, { uplink: string; reason: string; readings: number; batches: number }>();
  for (const c of facts.dropCounters) {
    const m = /^dropped_(readings|batches):(.+):([a-z_]+)$/.exec(c.name);
    if (!m) continue;
    const k = `${m[2]}:${m[3]}`;
    const d = dropped.get(k) ?? { uplink: m[2], reason: m[3], readings: 0, batches: 0 };
    d[m[1] as 'readings' | 'batches'] = c.value;
    dropped.set(k, d);
  }
  const spool = spoolFiles(s.spoolDir);
  return {
    usedBytes: u.usedBytes, budgetBytes: v.budgetBytes, bound: v.bound, fsFreeBytes: u.fsFreeBytes, level: v.level, full: facts.fullSince !== null, fullSince: facts.fullSince,
    policy: s.fullPolicy, maxBytes: s.maxBytes, dropped: [...dropped.values()].sort((a, b) => a.uplink.localeCompare(b.uplink) || a.reason.localeCompare(b.reason)),
    spool: { dir: s.spoolDir, files: spool.length, bytes: folderBytes(s.spoolDir).bytes },
    quarantine: folderBytes(join(cfg.dataDir, QUARANTINE_DIR)),
    lastSalvage: facts.lastSalvage,
    lastOutage: facts.lastOutage,
  };
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

/** The storage block of the human-readable status. */
export function formatStorage(r: StorageReport | null): string[] {
  if (!r) return ['storage: the data directory cannot be read'];
  const out = [`storage: ${mb(r.usedBytes)} of ${mb(r.budgetBytes)} (${r.bound === 'quota' ? 'store.maxBytes' : 'disk'}), ${mb(r.fsFreeBytes)} free on the disk, policy ${r.policy}`];
  if (r.full) out.push(`  STORAGE_FULL since ${new Date(r.fullSince!).toISOString()}: ${r.policy} applies`);
  else if (r.level !== 'ok') out.push(`  above 90 % of the budget: delivered data is being reclaimed`);
  for (const d of r.dropped) if (d.readings > 0 || d.batches > 0) out.push(`  dropped ${String(d.readings).padStart(10)} readings (${d.batches} batches) of ${d.uplink}: ${d.reason}`);
  if (r.spool.files > 0) out.push(`  SPOOL: ${r.spool.files} file(s), ${mb(r.spool.bytes)} in ${r.spool.dir} waiting for the store (STORE_UNAVAILABLE)`);
  if (r.quarantine.files > 0) out.push(`  quarantine: ${r.quarantine.files} file(s), ${mb(r.quarantine.bytes)} (see the salvage report)`);
  if (r.lastSalvage) out.push(`  last salvage ${new Date(r.lastSalvage.at).toISOString()}: ${JSON.stringify(pick(r.lastSalvage.detail, ['reason', 'batches', 'lost']))}`);
  if (r.lastOutage) out.push(`  last store outage ${new Date(r.lastOutage.since).toISOString()} for ${Math.round((r.lastOutage.durationMs ?? 0) / 1000)} s: ${JSON.stringify(pick(r.lastOutage.detail, ['kind', 'errno', 'spooled', 'imported']))}`);
  return out;
}

function pick(o: unknown, keys: string[]): Record<string, unknown> {
  const src = (o ?? {}) as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => k in src).map((k) => [k, src[k]]));
}
