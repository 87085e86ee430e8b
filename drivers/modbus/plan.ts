/**
 * Read planning: which Modbus requests fetch a set of points with the fewest transactions.
 *
 * On a 9600 baud RS-485 line every request costs a turnaround (t3.5 silences, the device's
 * response latency, often 20-50 ms) on top of its bytes, so one read of 40 registers beats ten
 * reads of 4. The planner groups points by kind (each kind is a separate function code and
 * address space), sorts them by address, and sweeps greedily: a point joins the current request
 * when it starts no more than `gap` unmapped registers after the request's end and the request
 * stays within maxRegisters (125, the Modbus limit for function 03/04) or maxBits (2000 for
 * 01/02). For points that must each be read whole, extending the current request as far as it
 * can go is optimal: any plan needs a new request where the greedy one starts one.
 *
 * The default gap is 0: many devices answer exception 02 (illegal data address) to a read that
 * spans unmapped registers, so bridging holes is opt-in per device map (coalesceGap).
 *
 * A point longer than the maximum is refused by device-map validation; if one arrives here anyway
 * it becomes a request of its own (count > max) rather than a loop or a throw, and the device
 * will refuse it. Output order is fixed: kinds holding, input, coil, discrete; then address;
 * ties by length (longest first) then name, so the same points always give the same plan.
 */
import { MAX_READ_BITS, MAX_READ_REGISTERS } from './frame.js';
import { registerCount } from './decode.js';
import type { PointDef, ReadPlanItem, RegisterKind } from './types.js';

export const KIND_ORDER: readonly RegisterKind[] = ['holding', 'input', 'coil', 'discrete'];

export function isBitKind(kind: RegisterKind): boolean {
  return kind === 'coil' || kind === 'discrete';
}

/** Registers (or bits, for coils and discrete inputs) a point occupies; at least 1. */
export function pointSpan(p: PointDef): number {
  return isBitKind(p.kind) ? 1 : Math.max(1, registerCount(p));
}

export interface PlanOptions {
  /** Registers per request (default 125 = MAX_READ_REGISTERS). */
  maxRegisters?: number;
  /** Bits per request (default 2000 = MAX_READ_BITS). */
  maxBits?: number;
  /** Unmapped registers (or bits) a request may bridge (default 0: adjacent only). */
  gap?: number;
}

function positiveInt(v: number, what: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`planReads: ${what} must be an integer >= ${min} (got ${v})`);
  return v;
}

function byAddress(a: PointDef, b: PointDef): number {
  if (a.address !== b.address) return a.address - b.address;
  const s = pointSpan(b) - pointSpan(a);
  if (s !== 0) return s;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Coalesces points into as few reads as the limits allow. Pure and deterministic. */
export function planReads(points: readonly PointDef[], opts: PlanOptions = {}): ReadPlanItem[] {
  const maxRegisters = positiveInt(opts.maxRegisters ?? MAX_READ_REGISTERS, 'maxRegisters', 1);
  const maxBits = positiveInt(opts.maxBits ?? MAX_READ_BITS, 'maxBits', 1);
  const gap = positiveInt(opts.gap ?? 0, 'gap', 0);
  const out: ReadPlanItem[] = [];
  for (const kind of KIND_ORDER) {
    const list = points.filter((p) => p.kind === kind).sort(byAddress);
    const max = isBitKind(kind) ? maxBits : maxRegisters;
    let cur: ReadPlanItem | undefined;
    let curEnd = 0;
    for (const p of list) {
      const end = p.address + pointSpan(p);
      if (cur && p.address <= curEnd + gap && Math.max(curEnd, end) - cur.address <= max) {
        cur.points.push(p);
        curEnd = Math.max(curEnd, end);
        cur.count = curEnd - cur.address;
      } else {
        cur = { kind, address: p.address, count: end - p.address, points: [p] };
        out.push(cur);
        curEnd = end;
      }
    }
  }
  return out;
}

/** Points that share one poll period. */
export interface PeriodGroup {
  periodMs: number;
  points: PointDef[];
}

/**
 * Groups points by their effective poll period (pollMs, else defaultPollMs), fastest first.
 * A group also gets the scale-factor points its points name, even when those are polled at
 * another period: a value is only meaningful with the scale factor read alongside it (SunSpec
 * allows a scale factor to change at run time), and in SunSpec maps the scale factor sits next
 * to its values, so it usually costs no extra request. Points keep their input order.
 */
export function splitByPeriod(points: readonly PointDef[], defaultPollMs: number): PeriodGroup[] {
  const byName = new Map<string, PointDef>();
  for (const p of points) if (!byName.has(p.name)) byName.set(p.name, p);
  const members = new Map<number, Set<PointDef>>();
  for (const p of points) {
    const period = p.pollMs ?? defaultPollMs;
    let set = members.get(period);
    if (!set) members.set(period, (set = new Set()));
    set.add(p);
  }
  const groups: PeriodGroup[] = [];
  for (const [periodMs, set] of [...members].sort((a, b) => a[0] - b[0])) {
    for (const p of [...set]) {
      const sf = p.scaleFactor === undefined ? undefined : byName.get(p.scaleFactor);
      if (sf) set.add(sf);
    }
    groups.push({ periodMs, points: points.filter((p) => set.has(p)) });
  }
  return groups;
}
