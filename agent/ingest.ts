/**
 * acquire -> batch -> store. Readings are grouped per device into batches (closed when full or
 * old), each batch is serialised, hashed, compressed and encrypted once, and sealed batches are
 * committed together every commitIntervalMs (group commit) with the sources' cursors.
 *
 * The queue between sources and the store is bounded (store.maxQueuedReadings): when it is full
 * offer() refuses, the refusal is counted (INGEST_QUEUE_FULL), and the source keeps its cursor so
 * nothing is skipped. Readings that are queued but not committed are the only ones a crash can
 * lose; the source cursor is committed with them, so a restarted source resumes exactly there.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { BatchConfig, StoreConfig } from './config/types.js';
import type { DeepReadonly } from './config/types.js';
import type { Reading } from './reading.js';
import { systemClock, type Clock } from './clock.js';
import { flagUnsynced, rebaseReadings } from './policy/clock.js';
import { Guard } from './guard.js';
import type { PayloadCodec } from '../store/codec.js';
import type { CommitResult, Outbox, SealedBatch } from '../store/outbox.js';

interface OpenBatch {
  readings: Reading[];
  /** Monotonic: a step of the wall clock neither closes a batch early nor keeps it open. */
  openedAt: number;
  cursor: number | undefined;
  /** Readings flagged as stamped by an unsynchronised clock (docs/clocks.md). */
  unsynced: number;
}

interface Sealed extends SealedBatch {
  cursor: number | undefined;
}

export interface IngestStats {
  committedBatches: number;
  committedReadings: number;
  refusedReadings: number;
  collisions: number;
  queued: number;
  /** Readings stamped by an unsynchronised wall clock (flagged clock=unsynced). */
  unsyncedReadings: number;
  /** Of those, re-based here before they were sealed, once the clock was good. */
  rebasedReadings: number;
}

/**
 * The 64 characters of base64url in ASCII order, so that keys compare as text in the order of
 * their bits (base64url's own order, A-Z a-z 0-9 - _, does not: '0' sorts before 'z').
 */
const SORTED_B64 = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';
const TIME_BITS = 42;

/**
 * A fresh idempotency key, 24 URL-safe characters (base64url's characters, in ASCII order) of
 * 144 bits: a 42-bit millisecond timestamp, then 102 random bits.
 *   - Unique: keys of different milliseconds differ by construction; n keys made in the same
 *     millisecond hold two equal ones with a probability of about n^2 / 2^103.
 *   - High-entropy: 102 unpredictable bits (UUIDv7 has 74).
 *     The timestamp adds none; it tells when the batch was sealed, which its readings tell anyway.
 *   - Time-ordered: a new key lands at the right end of the batch_key unique index instead of in
 *     a random leaf, so a commit touches one leaf of it, not one per batch. 42 bits of
 *     milliseconds run until 2109 and then wrap; a wrap, or a clock that steps back (a board
 *     without an RTC before NTP), costs that locality for a while, never uniqueness. (A 48-bit
 *     timestamp would start every key with the same character for the next 139 years, and with
 *     '-' at that, which command lines take for an option.)
 */
export function newBatchKey(now = Date.now()): string {
  const b = randomBytes(18);
  const t = ((Math.trunc(now) % 2 ** TIME_BITS) + 2 ** TIME_BITS) % 2 ** TIME_BITS;
  b.writeUIntBE(t * 64 + (b[5] & 63), 0, 6); // 42 bits of time, then the key's first 6 random bits
  let out = '';
  for (let i = 0; i < 18; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += SORTED_B64[n >>> 18] + SORTED_B64[(n >>> 12) & 63] + SORTED_B64[(n >>> 6) & 63] + SORTED_B64[n & 63];
  }
  return out;
}

/** The millisecond timestamp (modulo 2^42) a key from newBatchKey() carries: its first 7 characters. */
export function batchKeyTime(key: string): number {
  let t = 0;
  for (let i = 0; i < TIME_BITS / 6; i++) t = t * 64 + SORTED_B64.indexOf(key[i]);
  return t;
}

export class Ingest {
  private readonly open = new Map<string, OpenBatch>();
  private sealed: Sealed[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  readonly stats: IngestStats = { committedBatches: 0, committedReadings: 0, refusedReadings: 0, collisions: 0, queued: 0, unsyncedReadings: 0, rebasedReadings: 0 };

  constructor(
    private readonly outbox: Pick<Outbox, 'commit'>,
    private readonly codec: PayloadCodec,
    private readonly batch: DeepReadonly<BatchConfig>,
    private readonly store: DeepReadonly<StoreConfig>,
    private readonly log: Logger,
    private readonly onCommit: (r: CommitResult) => void,
    private readonly clock: Clock = systemClock(),
    /** Owns the commit timer: a failed commit keeps its batches for the next tick. */
    private readonly guard: Guard = new Guard({ log }),
  ) {}

  start(): void {
    this.timer ??= this.guard.interval('ingest.commit', () => this.tick(), this.store.commitIntervalMs);
  }

  /**
   * Queues one poll's readings of a device. `cursor` is the source position after them (e.g. the
   * simulated counter); it is committed with them.
   */
  offer(device: string, readings: Reading[], cursor?: number): boolean {
    if (this.queued + readings.length > this.store.maxQueuedReadings) {
      if (this.stats.refusedReadings === 0 || this.stats.refusedReadings % 10000 < readings.length) {
        this.log.warn({ code: 'INGEST_QUEUE_FULL', device, queued: this.queued }, 'ingest queue full; source told to slow down');
      }
      this.stats.refusedReadings += readings.length;
      return false;
    }
    const now = this.clock.mono();
    const floor = this.clock.floor;
    const flagged = readings.some((r) => r.ts < floor) ? flagUnsynced(readings, this.clock.wall(), now, floor) : 0;
    this.stats.unsyncedReadings += flagged;
    let b = this.open.get(device);
    if (b && b.readings.length + readings.length > this.batch.maxReadings) {
      this.seal(device, b);
      b = undefined;
    }
    if (!b) {
      b = { readings: [], openedAt: now, cursor: undefined, unsynced: 0 };
      this.open.set(device, b);
    }
    for (const r of readings) b.readings.push(r);
    b.unsynced += flagged;
    b.cursor = cursor ?? b.cursor;
    this.queued += readings.length;
    this.stats.queued = this.queued;
    if (b.readings.length >= this.batch.maxReadings) this.seal(device, b);
    return true;
  }

  private seal(device: string, b: OpenBatch): void {
    this.open.delete(device);
    if (b.readings.length === 0) return;
    const wall = this.clock.wall();
    if (b.unsynced > 0 && wall >= this.clock.floor) {
      // The clock is good now: re-based in memory, before anything is stored.
      const n = rebaseReadings(b.readings, wall - this.clock.mono());
      b.unsynced -= n;
      this.stats.rebasedReadings += n;
    }
    const json = JSON.stringify(b.readings);
    const key = newBatchKey(wall);
    let first = Infinity;
    let last = -Infinity;
    for (const r of b.readings) {
      if (r.ts < first) first = r.ts;
      if (r.ts > last) last = r.ts;
    }
    this.sealed.push({
      key,
      hash: createHash('sha256').update(json).digest(),
      device,
      readingCount: b.readings.length,
      firstTs: first,
      lastTs: last,
      createdAt: wall,
      payload: this.codec.encode(json, key),
      cursor: b.cursor,
      clock: b.unsynced > 0 ? { boot: this.clock.boot, unsynced: b.unsynced } : undefined,
    });
  }

  /** Seals batches that reached maxAgeMs and commits everything sealed. */
  tick(force = false): CommitResult | null {
    const now = this.clock.mono();
    for (const [device, b] of this.open) {
      if (force || now - b.openedAt >= this.batch.maxAgeMs) this.seal(device, b);
    }
    if (this.sealed.length === 0) return null;
    const batch = this.sealed;
    const cursors = new Map<string, number>();
    for (const s of batch) if (s.cursor !== undefined) cursors.set(s.device, Math.max(s.cursor, cursors.get(s.device) ?? 0));
    const r = this.outbox.commit(batch, cursors);
    this.sealed = [];
    let n = 0;
    for (const s of batch) n += s.readingCount;
    this.queued -= n;
    this.stats.queued = this.queued;
    this.stats.committedBatches += r.committed;
    this.stats.committedReadings += r.readings;
    if (r.collisions.length > 0) {
      this.stats.collisions += r.collisions.length;
      this.log.error({ code: 'IDEMPOTENCY_KEY_COLLISION', keys: r.collisions }, 'batch refused: key exists with a different payload');
    }
    this.onCommit(r);
    return r;
  }

  /** Commits whatever is queued and stops the timer (graceful shutdown). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tick(true);
  }
}
