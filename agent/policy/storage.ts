/**
 * Storage policy, pure: how full the store is, and what to take out when it is short of space.
 *
 * The budget is what the store may use: the quota (`store.maxBytes`, 0 for none), and never more
 * than it uses now plus the filesystem's free space minus the reserve (`store.minFreeRatio` of
 * the filesystem), since the disk may be shared with other programs. At WARN_RATIO of the budget
 * delivered data is reclaimed (not a loss); at the budget the store is full (STORAGE_FULL) and the
 * configured policy applies until use is back under LOW_WATER of the budget.
 *
 * Space comes back a whole segment file at a time (store/segments.ts), so the plan chooses files,
 * not batches: it never drops a batch whose file would stay (a loss that frees nothing), and it
 * needs memory for the files, not for every stored batch.
 */
import type { SegmentRow } from '../../store/reclaim.js';

export const WARN_RATIO = 0.9;
export const LOW_WATER = 0.85;

export interface SpaceInput {
  /** Database, WAL, shared memory and segment files, bytes. */
  usedBytes: number;
  /** store.maxBytes; 0: none. */
  maxBytes: number;
  /** Free bytes on the filesystem of the data directory (available to the agent). */
  fsFreeBytes: number;
  /** Size of that filesystem. */
  fsTotalBytes: number;
  minFreeRatio: number;
}

export type SpaceLevel = 'ok' | 'warn' | 'full';

export interface SpaceVerdict {
  level: SpaceLevel;
  /** What the store may use now. */
  budgetBytes: number;
  /** What bounds the budget: the quota or the disk. */
  bound: 'quota' | 'disk';
  /** Bytes to free to get back under LOW_WATER of the budget (0 when not short). */
  needBytes: number;
}

export function assessSpace(s: SpaceInput): SpaceVerdict {
  const reserve = Math.ceil(s.minFreeRatio * s.fsTotalBytes);
  const disk = Math.max(0, s.usedBytes + s.fsFreeBytes - reserve);
  const quota = s.maxBytes > 0 ? s.maxBytes : Infinity;
  const budget = Math.min(quota, disk);
  const bound = quota <= disk ? 'quota' : 'disk';
  const level: SpaceLevel = s.usedBytes >= budget ? 'full' : s.usedBytes >= WARN_RATIO * budget ? 'warn' : 'ok';
  const needBytes = level === 'ok' ? 0 : Math.max(0, Math.ceil(s.usedBytes - LOW_WATER * budget));
  return { level, budgetBytes: budget, bound, needBytes };
}

/** Whether the store counts as full: it becomes full at the budget and stays so until it is back under WARN_RATIO. */
export function stillFull(wasFull: boolean, v: SpaceVerdict): boolean {
  return v.level === 'full' || (wasFull && v.level === 'warn');
}

export type FullPolicy = 'drop-oldest' | 'downsample' | 'reject-new';

/** One segment file as the planner sees it (the store sums its batches up: store/reclaim.ts). */
export type SegmentInfo = SegmentRow;

export type DropReason = 'dead_letter' | 'oldest';

export interface PlanInput {
  /** Every segment file (one no batch refers to has batches 0). */
  segments: readonly SegmentInfo[];
  /** The segment being appended to: emptied only by rolling it first. */
  active: number | null;
  policy: FullPolicy;
  needBytes: number;
  /** Full (the policy applies) or only short (warn: delivered data only). */
  full: boolean;
}

/** What becomes of the batches of an emptied file. */
export type SegmentFate = 'unreferenced' | 'reclaim' | 'dead_letter' | 'downsample' | 'oldest';

export interface Plan {
  /** Files to empty, in order, and what happens to their batches: delivered ones are removed (not a loss), dead letters and pending ones dropped (counted), or pending ones merged into summaries. */
  segments: { id: number; fate: SegmentFate }[];
  freedBytes: number;
  /** The active segment is among them: roll it first. */
  rollActive: boolean;
}

const ORDER: Record<SegmentFate, number> = { unreferenced: 0, reclaim: 1, dead_letter: 2, downsample: 3, oldest: 4 };

/** What would become of a file's batches, or null when the policy keeps it. */
export function fateOf(s: SegmentInfo, policy: FullPolicy, full: boolean): SegmentFate | null {
  if (s.batches === 0) return 'unreferenced';
  if (s.pending === 0 && s.failed === 0) return 'reclaim';
  if (!full || policy === 'reject-new') return null;
  if (s.pending === 0) return 'dead_letter';
  // A file of summaries only is dropped, not summarised again: that would free nothing.
  if (policy === 'downsample' && s.rawPending > 0) return 'downsample';
  return 'oldest';
}

/**
 * The files to empty to free `needBytes`: files no batch refers to, then those holding only
 * delivered batches, then only dead letters (and delivered), then files with pending batches:
 * the lowest `keep` (the priority of the uplinks still waiting) first, oldest first within it.
 * Downsampling takes every file with raw batches before it drops a file of summaries.
 */
export function planReclaim(p: PlanInput): Plan {
  const plan: Plan = { segments: [], freedBytes: 0, rollActive: false };
  if (p.needBytes <= 0) return plan;
  const staged = p.segments
    .filter((s) => !(s.id === p.active && s.batches === 0)) // the file being appended to, nothing in it yet
    .map((s) => ({ s, fate: fateOf(s, p.policy, p.full) }))
    .filter((x): x is { s: SegmentInfo; fate: SegmentFate } => x.fate !== null)
    .sort((a, b) => ORDER[a.fate] - ORDER[b.fate] || (a.fate === 'downsample' || a.fate === 'oldest' ? a.s.keep - b.s.keep : 0) || a.s.oldest - b.s.oldest || a.s.id - b.s.id);
  for (const { s, fate } of staged) {
    if (plan.freedBytes >= p.needBytes) break;
    plan.segments.push({ id: s.id, fate });
    plan.freedBytes += s.bytes;
    if (s.id === p.active) plan.rollActive = true;
  }
  return plan;
}

/** A segment file's size for a roll: budget / 16 within [256 KiB, 32 MiB], so a small disk frees space in small steps. */
export function segmentBytesFor(budgetBytes: number, max = 32 * 1024 * 1024): number {
  return Math.round(Math.min(max, Math.max(256 * 1024, budgetBytes / 16)));
}

/** The WAL size that triggers a checkpoint: budget / 32 within [256 KiB, 4 MB] (the WAL file keeps its size). */
export function checkpointBytesFor(budgetBytes: number, max = 4096 * 1000): number {
  return Math.round(Math.min(max, Math.max(256 * 1024, budgetBytes / 32)));
}
