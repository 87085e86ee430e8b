/**
 * Modbus RTU slave(s) on a serial port: `holdfast simulate modbus-rtu`, and the far end of a
 * socat pty pair in tests. Several simulated devices may share the bus (unit id -> device),
 * as on a real RS-485 line; frames for other unit ids are ignored, as a real slave must.
 *
 * Framing. A request ends when its expected length is reached (rtuRequestLength: 8 bytes for
 * functions 1-6, 9 + byte count for 15/16) or, failing that (unknown function, a cut frame,
 * noise), after t3.5 of silence. Length first because a pty (or a USB adapter) delivers bytes
 * in bursts with no real inter-character timing; silence as the fallback so that noise never
 * wedges the parser. Frames with a bad CRC are dropped and counted, never answered.
 *
 * Timing. An answer goes out no earlier than t3.5 after the request's last byte, and no
 * earlier than t3.5 after the previous answer (one talker at a time). A pty has no baud rate,
 * so `emulateLineRate` makes the timing that of a real line: the answer is delayed by the
 * request's own line time (on a wire it would still be arriving), and written paced so that
 * byte i leaves at the moment its stop bit would have been received (start + (i+1) * char
 * time); the answer therefore takes at least lineMs(bytes, baud) end to end. Node timers are
 * whole milliseconds, so the bytes before the last go out in small bursts (a master must frame
 * by expected length as well as by silence, as libmodbus does, like with any USB-RS485
 * adapter); the last byte, which ends the answer, and an unpaced answer go out at their moment
 * to within tens of microseconds (drivers/modbus/wait.ts), never before it. The pty itself
 * adds its own latency on top (test/helpers/socat.ts).
 *
 * Faults (device.ts) applied here: silence, disconnect (silent for the window), slowMs,
 * wrongUnit, truncate (half the frame, CRC not recomputed), garbage, corruptCrc (last byte
 * flipped). `exception` is applied by the device itself.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { serialPort, type SerialStream } from '../../serial/port.js';
import { FN, lineMs, parseRtuRequest, rtuFrame, rtuRequestLength, t35Ms } from '../frame.js';
import { waitUntil } from '../wait.js';
import type { SimDevice } from './device.js';

export type Parity = 'none' | 'even' | 'odd';

export interface RtuSimOptions {
  path: string;
  /** An already open tty descriptor for `path` (the bench's pty master ends); else `path` is opened. */
  fd?: number;
  baudRate: number;
  parity?: Parity;
  dataBits?: 7 | 8;
  stopBits?: 1 | 2;
  devices: Map<number, SimDevice>;
  emulateLineRate?: boolean;
  log?: (line: string) => void;
}

export type RtuDropReason = 'crc' | 'short' | 'other_unit' | 'broadcast' | 'silence' | 'disconnected';

export interface RtuStats {
  /** Frames received (every one, good or not). */
  requests: number;
  /** Frames written back. */
  answered: number;
  dropped: Partial<Record<RtuDropReason, number>>;
  /** Faults injected into answers, by kind. */
  injected: Partial<Record<'slow' | 'wrongUnit' | 'truncate' | 'garbage' | 'corruptCrc', number>>;
}

/** A plain timer of at least `ms` (whole ms; late under load); false if aborted. */
const nap = (ms: number, signal: AbortSignal) => delay(ms, true, { signal }).catch(() => false);

/** Bytes before the last go out on plain timers (late is harmless) while this much is left before the last byte is due. */
const COARSE_MS = 1.5;

export class RtuSimulator {
  readonly stats: RtuStats = { requests: 0, answered: 0, dropped: {}, injected: {} };
  /** Bits on the line per character: start + data + parity + stop. */
  readonly bitsPerChar: number;
  readonly t35: number;
  private buf = Buffer.alloc(0);
  private lastChunkAt = 0;
  private silenceTimer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private lineFreeAt = 0;
  private closed = false;
  private readonly stop = new AbortController();

  private constructor(
    private readonly port: SerialStream,
    private readonly opts: RtuSimOptions,
  ) {
    this.bitsPerChar = 1 + (opts.dataBits ?? 8) + (opts.parity === 'none' ? 0 : 1) + (opts.stopBits ?? 1);
    this.t35 = t35Ms(opts.baudRate, this.bitsPerChar);
    port.on('data', (chunk: Buffer) => this.onData(chunk));
    port.on('error', (e) => opts.log?.(`serial ${opts.path}: ${e.message}`));
  }

  static async open(opts: RtuSimOptions): Promise<RtuSimulator> {
    const port = serialPort({
      path: opts.path,
      fd: opts.fd,
      baudRate: opts.baudRate,
      parity: opts.parity ?? 'even',
      dataBits: opts.dataBits ?? 8,
      stopBits: opts.stopBits ?? 1,
      autoOpen: false,
    });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    return new RtuSimulator(port, opts);
  }

  get path(): string {
    return this.opts.path;
  }

  private drop(reason: RtuDropReason): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
  }

  private inject(kind: keyof RtuStats['injected']): void {
    this.stats.injected[kind] = (this.stats.injected[kind] ?? 0) + 1;
  }

  private onData(chunk: Buffer): void {
    this.lastChunkAt = performance.now();
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    clearTimeout(this.silenceTimer);
    this.cut(false);
    if (this.buf.length > 0) this.silenceTimer = setTimeout(() => this.cut(true), Math.max(1, Math.ceil(this.t35)));
  }

  /** Takes complete frames off the buffer: by expected length, or everything once t3.5 passed. */
  private cut(silenceElapsed: boolean): void {
    while (this.buf.length > 0) {
      const need = rtuRequestLength(this.buf);
      if (need !== undefined && this.buf.length >= need) {
        this.onFrame(this.buf.subarray(0, need), false);
        this.buf = this.buf.subarray(need);
        continue;
      }
      if (!silenceElapsed) return;
      this.onFrame(this.buf, need !== undefined);
      this.buf = Buffer.alloc(0);
    }
  }

  /** `cutShort`: silence ended the frame before its expected length. */
  private onFrame(frame: Buffer, cutShort: boolean): void {
    this.stats.requests++;
    const endedAt = this.lastChunkAt;
    const req = parseRtuRequest(frame);
    if (!req.ok) return this.drop(req.error === 'crc' && !cutShort ? 'crc' : 'short');
    if (req.unit === 0) {
      // Broadcast: writes reach every device; nobody answers (reads are meaningless).
      if (req.fn === FN.WRITE_COIL || req.fn === FN.WRITE_REGISTER || req.fn === FN.WRITE_REGISTERS) {
        for (const d of new Set(this.opts.devices.values())) if (!d.silent()) d.handle(req.pdu);
      }
      return this.drop('broadcast');
    }
    const dev = this.opts.devices.get(req.unit);
    if (!dev) return this.drop('other_unit');
    if (dev.silent()) return this.drop(dev.faults.silence ? 'silence' : 'disconnected');
    const pdu = dev.handle(req.pdu);
    if (!pdu) return this.drop('silence');
    const f = { ...dev.faults };
    const corrupt = dev.corruptThisAnswer();
    const garbage = f.garbage ? dev.randomBytes(Math.max(5, pdu.length + 3)) : undefined;
    this.queue = this.queue.then(() => this.answer(req.unit, pdu, frame.length, endedAt, f, corrupt, garbage)).catch((e: Error) => {
      if (!this.closed) this.opts.log?.(`answer failed: ${e.message}`);
    });
  }

  private async answer(unit: number, pdu: Buffer, requestBytes: number, endedAt: number, f: SimDevice['faults'], corrupt: boolean, garbage?: Buffer): Promise<void> {
    const { baudRate, emulateLineRate } = this.opts;
    let at = Math.max(endedAt, this.lineFreeAt) + this.t35;
    if (emulateLineRate) at += lineMs(requestBytes, baudRate, this.bitsPerChar);
    if (f.slowMs) {
      at += f.slowMs;
      this.inject('slow');
    }
    if (f.wrongUnit) this.inject('wrongUnit');
    let adu = rtuFrame(f.wrongUnit ? (unit + 1) & 0xff : unit, pdu);
    if (corrupt) {
      adu[adu.length - 1] ^= 0xff;
      this.inject('corruptCrc');
    }
    if (f.truncate) {
      adu = adu.subarray(0, Math.ceil(adu.length / 2));
      this.inject('truncate');
    }
    if (garbage) {
      adu = garbage;
      this.inject('garbage');
    }
    if (emulateLineRate) await this.paced(adu, at);
    else if (await waitUntil(at, this.stop.signal)) this.port.write(adu);
    if (this.closed) return;
    await new Promise<void>((r) => this.port.drain(() => r()));
    this.lineFreeAt = performance.now();
    this.stats.answered++;
  }

  /**
   * Writes `adu` as the line would deliver it if its first start bit went out at `start`: byte i
   * no earlier than start + (i + 1) character times. Bytes before the last are written in bursts
   * on plain timers (a late burst changes nothing: the master frames by length, as over a USB
   * adapter); the last byte is written at its moment to within tens of microseconds
   * (drivers/modbus/wait.ts), as it decides when the master may speak again.
   */
  private async paced(adu: Buffer, start: number): Promise<void> {
    const charMs = lineMs(1, this.opts.baudRate, this.bitsPerChar);
    const end = start + adu.length * charMs;
    const signal = this.stop.signal;
    let sent = 0;
    while (sent < adu.length && !this.closed) {
      const now = performance.now();
      const due = now >= end ? adu.length : Math.max(0, Math.min(adu.length - 1, Math.floor((now - start) / charMs)));
      if (due > sent) {
        this.port.write(adu.subarray(sent, due));
        sent = due;
      }
      if (sent === adu.length) return;
      const next = start + (sent + 1) * charMs;
      const ok = next < end - COARSE_MS ? await nap(Math.max(1, Math.ceil(next - now)), signal) : await waitUntil(end, signal);
      if (!ok) return;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.silenceTimer);
    this.stop.abort();
    await this.queue;
    if (!this.port.isOpen) return;
    await new Promise<void>((r) => this.port.close(() => r()));
  }
}
