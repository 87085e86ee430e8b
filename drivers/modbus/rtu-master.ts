/**
 * Modbus RTU master on a serial port (npm serialport). One instance per bus; transactions are
 * strictly serialised through a bounded queue, and the line is left silent for t3.5 (1.75 ms
 * above 19200 baud) before every request, counted from the last byte seen or sent.
 *
 * Why not modbus-serial's RTU port: it hides each malformed frame behind a generic error and
 * resynchronises by its own heuristics; a gateway that must tell a bad bus from a bad device
 * needs every refused frame counted by kind (crc, wrong unit, wrong function, byte count,
 * truncated, garbage) and a deterministic resynchronisation: after any malformed frame the
 * master waits for the line to fall silent, discards what it holds, and goes on. modbus-serial
 * is used for Modbus TCP (drivers/modbus/tcp-client.ts).
 *
 * RS-485 direction control: USB adapters switch the driver in hardware; on-board UARTs need the
 * kernel's RS-485 mode (TIOCSRS485), which node serialport cannot request, so it is set where the
 * board's device tree enables it at boot (`linux,rs485-enabled-at-boot-time`); the board profile
 * says which ports have it (hardware/profiles).
 */
import { openErrno, serialPort, type SerialStream } from '../serial/port.js';
import { parseRtuResponse, registers, bits, rtuRequest, rtuResponseLength, t35Ms, type FrameError, type ReadRequest } from './frame.js';
import type { ReadResult } from './types.js';
import { SerialQueue } from './queue.js';
import { waitUntil } from './wait.js';
import { clampDelay } from '../timer.js';

export interface RtuOptions {
  path: string;
  baudRate: number;
  parity: 'none' | 'even' | 'odd';
  dataBits: 7 | 8;
  stopBits: 1 | 2;
  /** Bound of queued transactions; beyond it read() refuses at once. */
  maxQueue: number;
  /** Silence that ends a frame that is shorter than expected (at least t3.5; USB adapters need more). */
  frameGapMs: number;
}

export interface RtuStats {
  transactions: number;
  ok: number;
  timeouts: number;
  exceptions: number;
  /** Writes that failed (port closed, adapter gone). */
  transport: number;
  malformed: Record<FrameError, number>;
  strayBytes: number;
}

/** What a read gets when close() ends it. */
const closing = (): ReadResult => ({ ok: false, failure: { kind: 'transport', errno: 'ECANCELED', message: 'bus closing' } });

/** A write neither done nor ended by the port closing after this long is given up (see write()). */
const WRITE_BACKSTOP_MS = 1000;

interface Job {
  req: ReadRequest;
  timeoutMs: number;
}

export class RtuMaster {
  private port: SerialStream | null = null;
  private readonly queue: SerialQueue<Job, ReadResult>;
  private rx: Buffer[] = [];
  private rxLen = 0;
  private lastActivity = 0;
  private onBytes: (() => void) | null = null;
  /** Ends the collect() in progress (close() while a request waits for its answer). */
  private abortCollect: (() => void) | null = null;
  private closed = false;
  private reopenAt = 0;
  readonly t35: number;
  readonly stats: RtuStats = {
    transactions: 0, ok: 0, timeouts: 0, exceptions: 0, transport: 0, strayBytes: 0,
    malformed: { crc: 0, wrong_unit: 0, wrong_function: 0, byte_count: 0, truncated: 0, garbage: 0 },
  };

  constructor(private readonly opts: RtuOptions) {
    this.queue = new SerialQueue<Job, ReadResult>(
      opts.maxQueue,
      (j) => this.transact(j.req, j.timeoutMs),
      () => ({ ok: false, failure: { kind: 'transport', errno: 'EBUSY', message: `bus queue full (${opts.maxQueue})` } }),
      (_j, e) => ({ ok: false, failure: { kind: 'transport', errno: 'EIO', message: (e as Error).message } }),
    );
    this.t35 = t35Ms(opts.baudRate, opts.parity === 'none' && opts.stopBits === 1 ? 10 : 11);
  }

  /** Opens the port; a failure is returned, not thrown. */
  async open(): Promise<{ ok: true } | { ok: false; errno: string; message: string }> {
    const port = serialPort({
      path: this.opts.path, baudRate: this.opts.baudRate, parity: this.opts.parity, dataBits: this.opts.dataBits, stopBits: this.opts.stopBits,
    });
    const err = await new Promise<Error | null>((res) => port.open((e) => res(e ?? null)));
    if (err) return { ok: false, errno: openErrno(err), message: err.message };
    port.on('data', (d: Buffer) => {
      this.lastActivity = performance.now();
      this.rx.push(d);
      this.rxLen += d.length;
      this.onBytes?.();
    });
    port.on('error', () => {});
    port.on('close', () => {
      this.port = null;
    });
    this.port = port;
    return { ok: true };
  }

  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  /** Queues one read; resolves with registers/bits or the failure (never rejects). */
  read(req: ReadRequest, timeoutMs: number): Promise<ReadResult> {
    return this.queue.push({ req, timeoutMs });
  }

  get refusedQueueFull(): number {
    return this.queue.refused;
  }

  private take(): Buffer {
    const b = this.rx.length === 1 ? this.rx[0] : Buffer.concat(this.rx, this.rxLen);
    this.rx = [];
    this.rxLen = 0;
    return b;
  }

  /**
   * Waits until the line has been silent for t3.5 since the last byte seen or sent (only the
   * remainder, to within tens of microseconds: wait.ts), discarding (and counting) stray bytes.
   */
  private async silence(): Promise<void> {
    // A byte arriving during the wait moves lastActivity: wait again from it.
    while (performance.now() < this.lastActivity + this.t35) await waitUntil(this.lastActivity + this.t35);
    if (this.rxLen > 0) {
      this.stats.strayBytes += this.rxLen;
      this.stats.malformed.garbage++;
      this.take();
    }
  }

  private async transact(req: ReadRequest, timeoutMs: number): Promise<ReadResult> {
    const notOpen = (): ReadResult => ({ ok: false, failure: { kind: 'transport', errno: 'EIO', message: 'serial port not open' } });
    if (this.closed) return notOpen();
    if (!this.port) {
      // The port went away after start-up (adapter unplugged): reopen it, at most every few seconds.
      if (performance.now() < this.reopenAt) return notOpen();
      const r = await this.open();
      if (!r.ok) {
        this.reopenAt = performance.now() + 2000 + Math.random() * 1000;
        return { ok: false, failure: { kind: 'transport', errno: r.errno, message: r.message } };
      }
    }
    await this.silence();
    // The port may have closed while we waited for the silence (shutdown, adapter unplugged).
    const port = this.port;
    if (!port || !port.isOpen || this.closed) return notOpen();
    this.stats.transactions++;
    const frame = rtuRequest(req);
    const expected = rtuResponseLength(req);
    const wrote = await this.write(port, frame, timeoutMs);
    if (wrote) {
      this.stats.transport++;
      return { ok: false, failure: { kind: 'transport', errno: (wrote as Error & { code?: string }).code ?? 'EIO', message: wrote.message } };
    }
    this.lastActivity = performance.now();
    // close() came while the request was being written, or while its answer was awaited.
    const buf = this.closed ? null : await this.collect(expected, timeoutMs);
    if (buf === null) return closing();
    if (buf.length === 0) {
      this.stats.timeouts++;
      return { ok: false, failure: { kind: 'timeout', message: `no answer from unit ${req.unit} within ${timeoutMs} ms` } };
    }
    const r = parseRtuResponse(req, buf);
    if (r.ok) {
      this.stats.ok++;
      return req.fn === 3 || req.fn === 4 ? { ok: true, registers: registers(r.data) } : { ok: true, bits: bits(r.data, req.count) };
    }
    if ('exception' in r) {
      this.stats.exceptions++;
      return { ok: false, failure: { kind: 'exception', exception: r.exception, message: `exception ${r.exception} from unit ${req.unit}` } };
    }
    this.stats.malformed[r.error]++;
    return { ok: false, failure: { kind: r.error === 'crc' ? 'crc' : 'framing', message: `${r.error}: ${r.detail}` } };
  }

  /**
   * Writes and drains a frame. serialport waits for an 'open' that never comes when the port
   * closes mid-write, so the write races the port's 'close' and a backstop: a vanished adapter
   * becomes a transport failure, never a wedged bus. The backstop is not the request timeout:
   * tcdrain runs on libuv's thread pool (and the write waits for room in the tty), and on a
   * loaded machine (or a pty whose far end, socat, waits to be scheduled) they can take longer
   * than a short request timeout while the bytes do go out; failing them at that timeout would
   * report a serial-port fault (ETIMEDOUT) that is only load, and leave the answer to arrive as
   * stray bytes.
   */
  private write(port: SerialStream, frame: Buffer, timeoutMs: number): Promise<Error | null> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (e: Error | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        port.off('close', onClose);
        resolve(e);
      };
      const onClose = () => finish(Object.assign(new Error('serial port closed during write'), { code: 'EIO' }));
      const backstop = Math.max(timeoutMs, WRITE_BACKSTOP_MS);
      const timer = setTimeout(() => finish(Object.assign(new Error(`write not drained within ${backstop} ms`), { code: 'ETIMEDOUT' })), clampDelay(backstop));
      port.once('close', onClose);
      try {
        port.write(frame, (e) => (e ? finish(e) : port.drain((e2) => finish(e2 ?? null))));
      } catch (e) {
        finish(e as Error);
      }
    });
  }

  /**
   * Collects one response: complete at the expected length (or 5 bytes for an exception),
   * ended early by frameGapMs of silence after the first byte, empty at the timeout, or null
   * when close() ends it.
   */
  private collect(expected: number, timeoutMs: number): Promise<Buffer | null> {
    return new Promise((resolve) => {
      let gap: NodeJS.Timeout | null = null;
      const stop = () => {
        clearTimeout(overall);
        if (gap) clearTimeout(gap);
        this.onBytes = null;
        this.abortCollect = null;
      };
      const done = () => {
        stop();
        resolve(this.take());
      };
      const check = () => {
        if (this.rx.length > 1) this.rx = [Buffer.concat(this.rx, this.rxLen)];
        const head = this.rx[0];
        const isException = head !== undefined && head.length >= 2 ? (head[1] & 0x80) !== 0 : false;
        const want = isException ? 5 : expected;
        if (this.rxLen >= want) return done();
        if (gap) clearTimeout(gap);
        gap = setTimeout(done, clampDelay(Math.max(this.opts.frameGapMs, this.t35)));
      };
      const overall = setTimeout(() => {
        if (this.rxLen > 0) done();
        else {
          stop();
          resolve(Buffer.alloc(0));
        }
      }, clampDelay(timeoutMs));
      this.abortCollect = () => {
        stop();
        resolve(null);
      };
      this.onBytes = check;
      if (this.rxLen > 0) check();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abortCollect?.();
    this.queue.drain(closing);
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((res) => port.close(() => res()));
  }
}
