/**
 * One simulated Modbus device: four register banks, the set of addresses it actually maps, a
 * PDU handler, and the faults a test (or a fault script, see faults.ts) has switched on.
 *
 * Why the shape:
 * - The handler works on PDUs (function code onwards), so the same device answers over RTU
 *   (rtu.ts) and TCP (tcp.ts); each transport adds its own framing with drivers/modbus/frame.ts.
 * - Real devices answer exception 02 for any register they do not implement, which is exactly
 *   what a coalescing poller trips over; so a device has *mapped ranges* and a read must lie
 *   wholly inside them. Checks follow the order of the Modbus Application Protocol spec
 *   (V1.1b3, 6.x): function (01), then quantity (03), then address (02).
 * - Faults live here because they belong to the device (a fault script names a unit), but
 *   only `exception` changes the PDU: the rest (silence, slowMs, corruptCrc, wrongUnit,
 *   truncate, garbage, disconnect) are applied by the transport, which reads `faults`.
 *   `silence` and an active `disconnect` make handle() return null (nothing processed, so a
 *   counter does not move: the device is "off"). corruptCrc/garbage draw from a seeded PRNG so
 *   a run is reproducible.
 * - Profiles (profiles.ts, sunspec.ts) fill the banks with the encoding helpers at the end of
 *   this file and hook reads (`onRead`) to move values (a counter that counts reads, a meter
 *   that drifts with time).
 */
import { EventEmitter } from 'node:events';
import { FN, MAX_READ_BITS, MAX_READ_REGISTERS, exceptionPdu } from '../frame.js';
import type { RegisterKind } from '../types.js';

export const EXCEPTION = {
  ILLEGAL_FUNCTION: 0x01,
  ILLEGAL_DATA_ADDRESS: 0x02,
  ILLEGAL_DATA_VALUE: 0x03,
  DEVICE_FAILURE: 0x04,
  GATEWAY_PATH_UNAVAILABLE: 0x0a,
  GATEWAY_TARGET_FAILED: 0x0b,
} as const;

/** Faults in force on a device. Absent = off. */
export interface Faults {
  /** No answer at all (the request is not processed). */
  silence?: boolean;
  /** Answer only after this many ms (the transport keeps answering in order). */
  slowMs?: number;
  /** RTU only: flip a CRC byte with this probability (0..1), or on every Nth answer. */
  corruptCrc?: number | { every: number };
  /** Answer reads (functions 1-4) covering `address` (any read if absent) with exception `code`. */
  exception?: { address?: number; code: number };
  /** Action, not a state: TCP closes every connection and refuses new ones for this many ms; RTU stays silent as long. */
  disconnect?: number;
  /** Answer with another unit id (unit + 1). */
  wrongUnit?: boolean;
  /** Cut the answer short (RTU: half the frame, CRC not recomputed; TCP: half the PDU in a consistent MBAP). */
  truncate?: boolean;
  /** Emit random bytes instead of the answer. */
  garbage?: boolean;
}

/** A patch of faults: a key set to null (or undefined) switches that fault off. */
export type FaultPatch = { [K in keyof Faults]?: Faults[K] | null };

export interface DeviceOptions {
  /** Seed of the PRNG behind corruptCrc and garbage (default 1). */
  seed?: number;
  /** Clock (ms) for drifting values and disconnect windows; default Date.now. */
  now?: () => number;
}

const BANK_SIZE = 65536;
const KINDS: RegisterKind[] = ['holding', 'input', 'coil', 'discrete'];

export class SimDevice extends EventEmitter {
  readonly holding = new Uint16Array(BANK_SIZE);
  readonly input = new Uint16Array(BANK_SIZE);
  /** Packed bit arrays, LSB first, like the wire. */
  readonly coils = new Uint8Array(BANK_SIZE / 8);
  readonly discrete = new Uint8Array(BANK_SIZE / 8);
  faults: Faults = {};
  /** End of the current disconnect window (clock ms); 0 when none. */
  disconnectedUntil = 0;
  /** Called before a read is served (after it passed every check): profiles move values here. */
  onRead?: (kind: RegisterKind, address: number, count: number) => void;
  readonly now: () => number;
  private readonly mapped = new Map<RegisterKind, [number, number][]>(KINDS.map((k) => [k, []]));
  private rng: number;
  private answers = 0;

  constructor(
    readonly profile: string,
    opts: DeviceOptions = {},
  ) {
    super();
    this.rng = (opts.seed ?? 1) >>> 0 || 1;
    this.now = opts.now ?? Date.now;
  }

  /** Declares [address, address + count) of `kind` implemented. */
  map(kind: RegisterKind, address: number, count: number): this {
    const ranges = [...this.mapped.get(kind)!, [address, address + count] as [number, number]].sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const r of ranges) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    this.mapped.set(kind, merged);
    return this;
  }

  /** True when every address of [address, address + count) is mapped. */
  isMapped(kind: RegisterKind, address: number, count: number): boolean {
    return this.mapped.get(kind)!.some(([s, e]) => address >= s && address + count <= e);
  }

  mappedRanges(kind: RegisterKind): readonly [number, number][] {
    return this.mapped.get(kind)!;
  }

  getBit(kind: 'coil' | 'discrete', address: number): boolean {
    const a = kind === 'coil' ? this.coils : this.discrete;
    return ((a[address >> 3] >> (address & 7)) & 1) === 1;
  }

  setBit(kind: 'coil' | 'discrete', address: number, on: boolean): void {
    const a = kind === 'coil' ? this.coils : this.discrete;
    if (on) a[address >> 3] |= 1 << (address & 7);
    else a[address >> 3] &= ~(1 << (address & 7));
  }

  /** Merges a patch into the faults in force; `disconnect: N` opens an N ms window and emits 'disconnect'. */
  setFaults(patch: FaultPatch): void {
    for (const [k, v] of Object.entries(patch) as [keyof Faults, unknown][]) {
      if (k === 'disconnect') continue;
      if (k === 'corruptCrc') this.answers = 0; // "every Nth" counts from when it is set
      if (v === null || v === undefined) delete this.faults[k];
      else (this.faults as Record<string, unknown>)[k] = v;
    }
    if (typeof patch.disconnect === 'number' && patch.disconnect > 0) {
      this.disconnectedUntil = this.now() + patch.disconnect;
      this.emit('disconnect', patch.disconnect);
    }
  }

  clearFaults(): void {
    this.faults = {};
    this.disconnectedUntil = 0;
  }

  /** Silent right now (silence fault, or inside a disconnect window). */
  silent(): boolean {
    return this.faults.silence === true || this.now() < this.disconnectedUntil;
  }

  /** Decides (and counts) whether this answer gets its CRC corrupted. */
  corruptThisAnswer(): boolean {
    const c = this.faults.corruptCrc;
    this.answers++;
    if (c === undefined) return false;
    if (typeof c === 'number') return this.random() < c;
    return c.every > 0 && this.answers % c.every === 0;
  }

  /** Uniform in [0, 1) from a seeded mulberry32. */
  random(): number {
    let x = (this.rng = (this.rng + 0x6d2b79f5) >>> 0);
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }

  randomBytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.random() * 256);
    return b;
  }

  /**
   * Answers one request PDU with a response PDU (normal or exception), or null when the device
   * says nothing (silent). Never throws on malformed input.
   */
  handle(pdu: Buffer): Buffer | null {
    if (pdu.length === 0 || this.silent()) return null;
    const fn = pdu[0];
    const exc = (code: number) => exceptionPdu(fn, code);
    switch (fn) {
      case FN.READ_COILS:
      case FN.READ_DISCRETE:
      case FN.READ_HOLDING:
      case FN.READ_INPUT: {
        if (pdu.length !== 5) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        const address = pdu.readUInt16BE(1);
        const count = pdu.readUInt16BE(3);
        const bitsRead = fn === FN.READ_COILS || fn === FN.READ_DISCRETE;
        if (count < 1 || count > (bitsRead ? MAX_READ_BITS : MAX_READ_REGISTERS)) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        const kind: RegisterKind = fn === FN.READ_COILS ? 'coil' : fn === FN.READ_DISCRETE ? 'discrete' : fn === FN.READ_HOLDING ? 'holding' : 'input';
        if (!this.isMapped(kind, address, count)) return exc(EXCEPTION.ILLEGAL_DATA_ADDRESS);
        const forced = this.faults.exception;
        if (forced && (forced.address === undefined || (forced.address >= address && forced.address < address + count))) return exc(forced.code);
        this.onRead?.(kind, address, count);
        if (bitsRead) {
          const out = Buffer.alloc(2 + Math.ceil(count / 8));
          out[0] = fn;
          out[1] = out.length - 2;
          for (let i = 0; i < count; i++) if (this.getBit(kind as 'coil' | 'discrete', address + i)) out[2 + (i >> 3)] |= 1 << (i & 7);
          return out;
        }
        const bank = kind === 'holding' ? this.holding : this.input;
        const out = Buffer.alloc(2 + count * 2);
        out[0] = fn;
        out[1] = count * 2;
        for (let i = 0; i < count; i++) out.writeUInt16BE(bank[address + i], 2 + i * 2);
        return out;
      }
      case FN.WRITE_COIL: {
        if (pdu.length !== 5) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        const value = pdu.readUInt16BE(3);
        if (value !== 0xff00 && value !== 0x0000) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        const address = pdu.readUInt16BE(1);
        if (!this.isMapped('coil', address, 1)) return exc(EXCEPTION.ILLEGAL_DATA_ADDRESS);
        this.setBit('coil', address, value === 0xff00);
        return Buffer.from(pdu);
      }
      case FN.WRITE_REGISTER: {
        if (pdu.length !== 5) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        const address = pdu.readUInt16BE(1);
        if (!this.isMapped('holding', address, 1)) return exc(EXCEPTION.ILLEGAL_DATA_ADDRESS);
        this.holding[address] = pdu.readUInt16BE(3);
        return Buffer.from(pdu);
      }
      case FN.WRITE_REGISTERS: {
        if (pdu.length < 6) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        const address = pdu.readUInt16BE(1);
        const count = pdu.readUInt16BE(3);
        // 123 registers: the most a 256-byte RTU frame can carry in a write request.
        if (count < 1 || count > 123 || pdu[5] !== count * 2 || pdu.length !== 6 + count * 2) return exc(EXCEPTION.ILLEGAL_DATA_VALUE);
        if (!this.isMapped('holding', address, count)) return exc(EXCEPTION.ILLEGAL_DATA_ADDRESS);
        for (let i = 0; i < count; i++) this.holding[address + i] = pdu.readUInt16BE(6 + i * 2);
        return Buffer.from(pdu.subarray(0, 5));
      }
      default:
        return exc(EXCEPTION.ILLEGAL_FUNCTION);
    }
  }
}

// --- register bank helpers for profiles (big-endian words, big-endian bytes) -----------------

export function setU32(bank: Uint16Array, address: number, v: number): void {
  bank[address] = (v >>> 16) & 0xffff;
  bank[address + 1] = v & 0xffff;
}

export function setU64(bank: Uint16Array, address: number, v: bigint): void {
  for (let i = 0; i < 4; i++) bank[address + i] = Number((v >> BigInt(48 - 16 * i)) & 0xffffn);
}

const f32 = Buffer.alloc(4);
export function setF32(bank: Uint16Array, address: number, v: number): void {
  f32.writeFloatBE(v);
  bank[address] = f32.readUInt16BE(0);
  bank[address + 1] = f32.readUInt16BE(2);
}

/** Two characters per register, first in the high byte, NUL padded (SunSpec `string`). */
export function setString(bank: Uint16Array, address: number, registers: number, text: string): void {
  const b = Buffer.alloc(registers * 2);
  b.write(text.slice(0, registers * 2), 'latin1');
  for (let i = 0; i < registers; i++) bank[address + i] = b.readUInt16BE(i * 2);
}

/** A slow sine: amplitude a, period p seconds, phase in turns. */
export const wave = (t: number, a: number, p: number, phase = 0) => a * Math.sin(2 * Math.PI * (t / p + phase));
