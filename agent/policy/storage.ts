/**
 * Storage policy, pure: how full the store is, and what to take out when it is short of space.
 *
 * The budget is what the store may use: the quota (`store.maxBytes`, 0 for none), and never more
 * than it uses now plus the filesystem's free space minus the reserve (`store.minFreeRatio` of
 * the filesystem), since the disk may be shared with other programs. At WARN_RATIO of the budget
 * delivered data is reclaimed (not a loss); at the budget the store is full (STORAGE_FULL) and the
 * configured policy applies until use is back under LOW_WATER of the budget.
 *
 * Space comes back a whole segment file at a time (store/segments.ts), so the plan walks the
 * victims in policy order, counts which files they empty, stops when the emptied files free
 * what is needed, and then leaves out every victim whose file would not be emptied: dropping it
 * would lose data and free nothing.
 */

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
  const reserve = s.minFreeRatio * s.fsTotalBytes;
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
export type TaskStatus = 'pending' | 'failed' | 'delivered';

/** A stored batch as the planner sees it. */
export interface Candidate {
  payloadId: number;
  /** Its segment file, or null when its body is in its row. */
  segment: number | null;
  /** Bytes it takes (body and record header). */
  bytes: number;
  createdAt: number;
  readings: number;
  downsampled: boolean;
  tasks: readonly { uplink: string; status: TaskStatus }[];
}

export type DropReason = 'dead_letter' | 'oldest';

export interface PlanInput {
  /** Every stored batch (any order). */
  candidates: readonly Candidate[];
  /** Segment files and their sizes (every file, referenced or not). */
  segments: ReadonlyMap<number, number>;
  /** The segment being appended to: freed only by rolling it first. */
  active: number | null;
  priorities: ReadonlyMap<string, number>;
  policy: FullPolicy;
  needBytes: number;
  /** Full (policy applies) or only short (warn: delivered data only). */
  full: boolean;
}

export interface Plan {
  /** Batches delivered everywhere: removed, not a loss. */
  reclaim: number[];
  /** Batches dropped, with why (counted per uplink that still wanted them). */
  drop: { payloadId: number; reason: DropReason }[];
  /** Batches to merge into summaries (policy downsample). */
  downsample: number[];
  /** Files emptied by the plan, and their bytes. */
  freedSegments: number[];
  freedBytes: number;
  /** The active segment is among the emptied: roll it first. */
  rollActive: boolean;
}

type Stage = 'reclaim' | 'dead_letter' | 'oldest' | 'downsample';

/** A pending batch is kept as long as the highest-priority uplink still waiting for it asks. */
function keep(c: Candidate, priorities: ReadonlyMap<string, number>): number {
  let k = -Infinity;
  for (const t of c.tasks) if (t.status === 'pending') k = Math.max(k, priorities.get(t.uplink) ?? 0);
  return k;
}

function stageOf(c: Candidate, policy: FullPolicy, full: boolean): Stage | null {
  const pending = c.tasks.some((t) => t.status === 'pending');
  const failed = c.tasks.some((t) => t.status === 'failed');
  if (!pending && !failed) return 'reclaim';
  if (!full || policy === 'reject-new') return null;
  if (!pending) return 'dead_letter';
  if (policy === 'downsample' && !c.downsampled) return 'downsample';
  return 'oldest';
}

const ORDER: Record<Stage, number> = { reclaim: 0, dead_letter: 1, downsample: 2, oldest: 3 };

/** What to take out to free `needBytes` (see the header for the order and the whole-file rule). */
export function planReclaim(p: PlanInput): Plan {
  const plan: Plan = { reclaim: [], drop: [], downsample: [], freedSegments: [], freedBytes: 0, rollActive: false };
  if (p.needBytes <= 0) return plan;
  const live = new Map<number, number>();
  for (const c of p.candidates) if (c.segment !== null) live.set(c.segment, (live.get(c.segment) ?? 0) + 1);
  const staged = p.candidates
    .map((c) => ({ c, stage: stageOf(c, p.policy, p.full), keep: keep(c, p.priorities) }))
    .filter((x): x is { c: Candidate; stage: Stage; keep: number } => x.stage !== null)
    // Oldest first within a stage; pending batches by the priority that keeps them, lowest first.
    .sort((a, b) => ORDER[a.stage] - ORDER[b.stage] || (a.stage === 'oldest' || a.stage === 'downsample' ? a.keep - b.keep : 0) || a.c.createdAt - b.c.createdAt || a.c.payloadId - b.c.payloadId);
  const taken: typeof staged = [];
  const freed = new Set<number>();
  let bytes = 0;
  for (const x of staged) {
    if (bytes >= p.needBytes) break;
    taken.push(x);
    const seg = x.c.segment;
    if (seg === null) {
      bytes += x.c.bytes; // room in the database file, reused by later rows
      continue;
    }
    const left = (live.get(seg) ?? 0) - 1;
    live.set(seg, left);
    // A downsampled batch's summary goes into the active segment: emptying that one gains little.
    if (left === 0 && !(x.stage === 'downsample' && seg === p.active)) {
      freed.add(seg);
      bytes += p.segments.get(seg) ?? 0;
    }
  }
  for (const x of taken) {
    if (x.c.segment !== null && !freed.has(x.c.segment) && x.stage !== 'reclaim') continue; // a loss that frees nothing
    if (x.stage === 'reclaim') plan.reclaim.push(x.c.payloadId);
    else if (x.stage === 'downsample') plan.downsample.push(x.c.payloadId);
    else plan.drop.push({ payloadId: x.c.payloadId, reason: x.stage });
  }
  plan.freedSegments = [...freed].sort((a, b) => a - b);
  plan.freedBytes = plan.freedSegments.reduce((n, s) => n + (p.segments.get(s) ?? 0), 0);
  plan.rollActive = p.active !== null && freed.has(p.active);
  return plan;
}

/**
 * Segment files no stored batch refers to (left by a crash or a purge): freed first, at no cost.
 */
export function unreferencedSegments(candidates: readonly Candidate[], segments: ReadonlyMap<number, number>, active: number | null): number[] {
  const used = new Set<number>();
  for (const c of candidates) if (c.segment !== null) used.add(c.segment);
  return [...segments.keys()].filter((s) => !used.has(s) && s !== active).sort((a, b) => a - b);
}

/** A segment file's size for a roll: budget / 16 within [256 KiB, 32 MiB], so a small disk frees space in small steps. */
export function segmentBytesFor(budgetBytes: number, max = 32 * 1024 * 1024): number {
  return Math.round(Math.min(max, Math.max(256 * 1024, budgetBytes / 16)));
}

/** The WAL size that triggers a checkpoint: budget / 32 within [256 KiB, 4 MB] (the WAL file keeps its size). */
export function checkpointBytesFor(budgetBytes: number, max = 4096 * 1000): number {
  return Math.round(Math.min(max, Math.max(256 * 1024, budgetBytes / 32)));
}
