/**
 * Per-device posting pace for a lane whose upstream asks for one (IEEE 2030.5 `postRate`: "post
 * this MirrorUsagePoint's readings no more often than every N seconds"). Pure state, explicit
 * clock; the lane does the I/O.
 *
 * A device becomes paced the first time a send for it comes back with `notBefore` (the driver's
 * ack time + the server's postRate). From then on it is served only here, never by the lane's
 * live/retry/backlog paths: those skip its tasks (they stay `pending` in the store) and mark the
 * device waiting. When its time comes the lane reads the device's pending tasks from the store
 * and sends them as ONE message (their readings merged, oldest first, up to a size bound), so a
 * source that produces a batch a second still reaches a server that wants one post every five
 * minutes with every reading, and a backlog drains at one large post per device per postRate.
 * Being the only path for a paced device is what makes this safe: no task of it can be sent by
 * two paths at once.
 */
import { HoldfastError } from '../errors.js';

export interface PaceState {
  /** device -> earliest time of its next post (ms). */
  readonly until: ReadonlyMap<string, number>;
  /** Paced devices with tasks that may be waiting in the store. */
  readonly waiting: ReadonlySet<string>;
}

export const emptyPace = (): PaceState => ({ until: new Map(), waiting: new Set() });

/** The device is served by the pacer (its tasks are skipped by the other paths). */
export function isPaced(s: PaceState, device: string): boolean {
  return s.until.has(device);
}

/** A send for `device` was acknowledged; `notBefore` is the driver's pace (undefined: none asked). */
export function noteAck(s: PaceState, device: string, notBefore: number | undefined, now: number): PaceState {
  if (notBefore === undefined && !s.until.has(device)) return s; // never paced: nothing to keep
  const until = new Map(s.until);
  // Once paced, a device stays with the pacer (one path per device); without a new pace it may
  // post again at once.
  until.set(device, Math.max(now, notBefore ?? now));
  return { until, waiting: s.waiting };
}

/** A task of a paced device was skipped by another path, or a merged send left some behind. */
export function markWaiting(s: PaceState, device: string): PaceState {
  if (s.waiting.has(device)) return s;
  const waiting = new Set(s.waiting);
  waiting.add(device);
  return { until: s.until, waiting };
}

/** The device's store holds nothing more to send for now. */
export function clearWaiting(s: PaceState, device: string): PaceState {
  if (!s.waiting.has(device)) return s;
  const waiting = new Set(s.waiting);
  waiting.delete(device);
  return { until: s.until, waiting };
}

/** Waiting devices whose time has come, longest overdue first. */
export function dueDevices(s: PaceState, now: number): string[] {
  const out: Array<[string, number]> = [];
  for (const d of s.waiting) {
    const at = s.until.get(d) ?? 0;
    if (at <= now) out.push([d, at]);
  }
  return out.sort((a, b) => a[1] - b[1]).map(([d]) => d);
}

/** When the next waiting device comes due (Infinity: none waiting). */
export function nextDueAt(s: PaceState): number {
  let next = Infinity;
  for (const d of s.waiting) next = Math.min(next, s.until.get(d) ?? 0);
  return next;
}

/**
 * Takes tasks, oldest first, while they fit one post: at most `maxReadings` readings (but always
 * the first, however large) and `maxTasks` tasks.
 */
export function takeForPost<T extends { readingCount: number }>(tasks: readonly T[], maxReadings: number, maxTasks: number): T[] {
  const out: T[] = [];
  let n = 0;
  for (const task of tasks) {
    if (out.length >= maxTasks || (out.length > 0 && n + task.readingCount > maxReadings)) break;
    out.push(task);
    n += task.readingCount;
  }
  return out;
}

/** JSON arrays (as UTF-8 bytes) merged into one array, in order: `[a,b]` + `[c]` -> `[a,b,c]`. */
export function mergeJsonArrays(parts: readonly Buffer[]): Buffer {
  if (parts.length === 1) return parts[0];
  const inner: Buffer[] = [];
  for (const p of parts) {
    const s = arrayBody(p);
    if (s.length > 0) inner.push(s);
  }
  const out: Buffer[] = [Buffer.from('[')];
  inner.forEach((s, i) => {
    if (i > 0) out.push(Buffer.from(','));
    out.push(s);
  });
  out.push(Buffer.from(']'));
  return Buffer.concat(out);
}

/**
 * The bytes between a JSON array's brackets (whitespace around them ignored); throws
 * PAYLOAD_UNREADABLE if `b` is not one (the lane dead-letters that task alone: agent/forward/message.ts).
 */
export function arrayBody(b: Buffer): Buffer {
  let i = 0;
  let j = b.length - 1;
  while (i <= j && isSpace(b[i])) i++;
  while (j >= i && isSpace(b[j])) j--;
  if (i > j || b[i] !== 0x5b || b[j] !== 0x5d) {
    // Names the shape, not the content (decrypted readings do not belong in last_error).
    const found = i > j ? (b.length > 0 ? 'it is only whitespace' : 'it is empty') : `it begins with byte 0x${hexByte(b[i])} and ends with 0x${hexByte(b[j])}`;
    throw new HoldfastError('PAYLOAD_UNREADABLE', `stored batch of ${b.length} bytes is not a JSON array: ${found}`);
  }
  i++;
  j--;
  while (i <= j && isSpace(b[i])) i++;
  while (j >= i && isSpace(b[j])) j--;
  return b.subarray(i, j + 1);
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const hexByte = (c: number) => c.toString(16).toUpperCase().padStart(2, '0');
