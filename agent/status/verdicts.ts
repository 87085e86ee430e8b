/**
 * The verdict lines: what a technician reads first, from the console's `status` and from
 * `holdfast status` alike (one implementation, so the two can never disagree). Each line names
 * the part at fault and carries the number that proves it:
 *
 *   STORE UNAVAILABLE, spooling (3 file(s) waiting)
 *   DISK 93% of quota, dropping oldest
 *   WIRING FAULT bus rs485-1: 1.9 V (window 2.5-5.0 V)
 *   DEVICE meter3 not answering (MODBUS_TIMEOUT x12)
 *   UPLINK mqtt DOWN since 12:03 (ECONNREFUSED), 18,240 readings buffered
 *   HOT 81 C, drain throttled
 *   OK
 *
 * Pure: facts in, lines out. The facts come from the live engine's GatewayView
 * (agent/status/facts.ts) or, in the CLI next to a stopped agent, from the store's own status.
 * Worst first by RANK, a table: what loses data now comes before what only delays it.
 */

export interface FieldFaultFact {
  scope: string;
  bus: string;
  device?: string;
  code: string;
  faultClass: string;
  detail: { volts?: number; min?: number; max?: number; timeouts?: number; rate?: number; errno?: string; devices?: number } | null;
}

export interface UplinkFact {
  name: string;
  connected: boolean;
  breaker: string;
  /** Since when the open outage runs (epoch ms), and its code; null when none is open. */
  downSince: number | null;
  code: string | null;
  pendingReadings: number;
}

export interface VerdictFacts {
  store: { available: boolean; spoolFiles: number };
  /** Space against the budget; null when it is unknown. */
  space: { usedBytes: number; budgetBytes: number; bound: 'quota' | 'disk'; full: boolean; policy: string } | null;
  thermal: { tempC: number | null; throttled: boolean };
  uplinks: UplinkFact[];
  faults: FieldFaultFact[];
}

export type VerdictKind = 'store' | 'disk' | 'wiring' | 'device' | 'uplink' | 'hot' | 'ok';

/** Worst first, and why. */
export const RANK: readonly { kind: VerdictKind; why: string }[] = Object.freeze([
  { kind: 'store', why: 'the database cannot be written: everything goes to the spool' },
  { kind: 'disk', why: 'at the quota data is being dropped by policy' },
  { kind: 'wiring', why: 'a whole bus is not read: nothing of its devices is acquired' },
  { kind: 'device', why: 'one device is not read' },
  { kind: 'uplink', why: 'data is kept and delivered later: delayed, not lost' },
  { kind: 'hot', why: 'everything still works, slower' },
]);

export interface VerdictLine {
  kind: VerdictKind;
  text: string;
}

/** Disk usage at or above this share of the budget is a verdict even before STORAGE_FULL. */
export const DISK_WARN_RATIO = 0.9;

const POLICY_WORDS: Record<string, string> = { 'drop-oldest': 'dropping oldest', downsample: 'downsampling old readings', 'reject-new': 'refusing new data' };

/** 18240 -> "18,240" (a dumb terminal has no locale). */
export function thousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function hhmm(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function fieldLine(f: FieldFaultFact): VerdictLine {
  const d = f.detail ?? {};
  if (f.code === 'RS485_VOLTAGE_LOW' || f.code === 'RS485_VOLTAGE_HIGH') {
    const v = d.volts === undefined ? '?' : d.volts.toFixed(1);
    const w = d.min !== undefined && d.max !== undefined ? ` (window ${d.min.toFixed(1)}-${d.max.toFixed(1)} V)` : '';
    return { kind: 'wiring', text: `WIRING FAULT bus ${f.bus}: ${v} V${w}` };
  }
  if (f.faultClass === 'physical') {
    const why = f.code === 'MODBUS_CRC' && d.rate !== undefined ? `${Math.round(d.rate * 100)}% CRC/framing errors` : `every device silent (${f.code})`;
    return { kind: 'wiring', text: `WIRING FAULT bus ${f.bus}: ${why}` };
  }
  const who = f.device ? `DEVICE ${f.device}` : `BUS ${f.bus}`;
  if (f.code === 'MODBUS_TIMEOUT') return { kind: 'device', text: `${who} not answering (MODBUS_TIMEOUT x${d.timeouts ?? '?'})` };
  return { kind: 'device', text: `${who} ${f.faultClass} fault (${f.code}${d.errno ? ` ${d.errno}` : ''})` };
}

function uplinkLine(u: UplinkFact): VerdictLine | null {
  const buffered = `${thousands(u.pendingReadings)} readings buffered`;
  if (u.downSince !== null || !u.connected) {
    const since = u.downSince !== null ? ` since ${hhmm(u.downSince)}` : '';
    const code = u.code ? ` (${u.code})` : '';
    return { kind: 'uplink', text: `UPLINK ${u.name} DOWN${since}${code}, ${buffered}` };
  }
  if (u.breaker !== 'closed') return { kind: 'uplink', text: `UPLINK ${u.name} breaker ${u.breaker}, ${buffered}` };
  return null;
}

/** Every verdict, worst first; `OK` alone when there is none. */
export function verdictLines(f: VerdictFacts): VerdictLine[] {
  const out: VerdictLine[] = [];
  if (!f.store.available) out.push({ kind: 'store', text: `STORE UNAVAILABLE, spooling (${f.store.spoolFiles} file(s) waiting)` });
  const s = f.space;
  if (s && s.budgetBytes > 0) {
    const pct = Math.round((100 * s.usedBytes) / s.budgetBytes);
    const of = s.bound === 'quota' ? 'quota' : 'disk budget';
    if (s.full) out.push({ kind: 'disk', text: `DISK ${pct}% of ${of}, ${POLICY_WORDS[s.policy] ?? s.policy}` });
    else if (s.usedBytes >= DISK_WARN_RATIO * s.budgetBytes) out.push({ kind: 'disk', text: `DISK ${pct}% of ${of}, reclaiming delivered data` });
  }
  for (const x of f.faults) out.push(fieldLine(x));
  for (const u of f.uplinks) {
    const l = uplinkLine(u);
    if (l) out.push(l);
  }
  if (f.thermal.throttled) out.push({ kind: 'hot', text: `HOT ${f.thermal.tempC === null ? '?' : Math.round(f.thermal.tempC)} C, drain throttled` });
  const order = (k: VerdictKind) => RANK.findIndex((r) => r.kind === k);
  // Array.prototype.sort is stable: within a kind, the order of the facts stays.
  out.sort((a, b) => order(a.kind) - order(b.kind));
  return out.length > 0 ? out : [{ kind: 'ok', text: 'OK' }];
}

/** The lines only. */
export function verdicts(f: VerdictFacts): string[] {
  return verdictLines(f).map((l) => l.text);
}
