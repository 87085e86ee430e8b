/**
 * Modbus TCP client (modbus-serial). One connection per endpoint (a device, or a TCP-to-RTU
 * gateway serving several unit ids); transactions serialised through the same bounded queue as
 * RTU. A dropped connection is reported as a transport failure and reopened on the next read,
 * no sooner than the caller's backoff allows (the poller decides when to read again).
 */
import { createRequire } from 'node:module';
import type { ModbusRTU as Client } from 'modbus-serial/ModbusRTU.js';
import type { ReadRequest } from './frame.js';
import { SerialQueue } from './queue.js';
import type { ModbusFailure, ReadResult } from './types.js';
import { clampDelay } from '../timer.js';

export interface TcpOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  maxQueue: number;
}

interface Job {
  req: ReadRequest;
  timeoutMs: number;
}

// modbus-serial is CommonJS whose module.exports is the client class itself.
const ModbusRTU = createRequire(import.meta.url)('modbus-serial') as new () => Client;

type ModbusError = Error & { errno?: string; code?: string; modbusCode?: number; name?: string };

function failureOf(e: ModbusError): ModbusFailure {
  if (typeof e.modbusCode === 'number') return { kind: 'exception', exception: e.modbusCode, message: e.message };
  if (e.name === 'TransactionTimedOutError' || e.errno === 'ETIMEDOUT') return { kind: 'timeout', message: e.message || 'timed out' };
  const errno = e.code ?? e.errno ?? 'ECONNRESET';
  return { kind: 'transport', errno, message: e.message || errno };
}

export class TcpClient {
  private client: Client | null = null;
  private readonly queue: SerialQueue<Job, ReadResult>;
  private closed = false;
  stats = { transactions: 0, ok: 0, timeouts: 0, exceptions: 0, transport: 0, connects: 0 };

  constructor(private readonly opts: TcpOptions) {
    this.queue = new SerialQueue<Job, ReadResult>(
      opts.maxQueue,
      (j) => this.transact(j.req, j.timeoutMs),
      () => ({ ok: false, failure: { kind: 'transport', errno: 'EBUSY', message: `queue full (${opts.maxQueue})` } }),
      (_j, e) => ({ ok: false, failure: { kind: 'transport', errno: 'EIO', message: (e as Error).message } }),
    );
  }

  read(req: ReadRequest, timeoutMs: number): Promise<ReadResult> {
    return this.queue.push({ req, timeoutMs });
  }

  private async connect(): Promise<ModbusFailure | null> {
    this.drop();
    const c = new ModbusRTU();
    this.stats.connects++;
    try {
      await c.connectTCP(this.opts.host, { port: this.opts.port, timeout: this.opts.connectTimeoutMs } as Parameters<Client['connectTCP']>[1]);
    } catch (e) {
      try {
        c.close(() => {});
      } catch {
        /* already closed */
      }
      return failureOf(e as ModbusError);
    }
    // modbus-serial emits 'error'/'close' on its port; without listeners an error would throw.
    const port = (c as unknown as { _port?: NodeJS.EventEmitter })._port;
    port?.on('error', () => {});
    // A server that closes the connection is noticed at once: the next read reconnects (and
    // reports ECONNREFUSED if the device is gone) instead of waiting for a timeout.
    port?.on('close', () => {
      if (this.client === c) this.client = null;
    });
    this.client = c;
    return null;
  }

  private drop(): void {
    const c = this.client;
    this.client = null;
    if (c) {
      try {
        c.close(() => {});
      } catch {
        /* already closed */
      }
    }
  }

  private async transact(req: ReadRequest, timeoutMs: number): Promise<ReadResult> {
    if (this.closed) return { ok: false, failure: { kind: 'transport', errno: 'ECANCELED', message: 'closing' } };
    this.stats.transactions++;
    if (!this.client?.isOpen) {
      const f = await this.connect();
      if (f) {
        this.stats.transport++;
        return { ok: false, failure: f };
      }
    }
    const c = this.client!;
    c.setID(req.unit);
    c.setTimeout(clampDelay(timeoutMs));
    try {
      switch (req.fn) {
        case 3:
          return this.ok({ ok: true, registers: (await c.readHoldingRegisters(req.address, req.count)).data });
        case 4:
          return this.ok({ ok: true, registers: (await c.readInputRegisters(req.address, req.count)).data });
        case 1:
          return this.ok({ ok: true, bits: (await c.readCoils(req.address, req.count)).data.slice(0, req.count) });
        default:
          return this.ok({ ok: true, bits: (await c.readDiscreteInputs(req.address, req.count)).data.slice(0, req.count) });
      }
    } catch (e) {
      const f = failureOf(e as ModbusError);
      if (f.kind === 'exception') this.stats.exceptions++;
      else if (f.kind === 'timeout') this.stats.timeouts++;
      else {
        this.stats.transport++;
        this.drop();
      }
      // A timed-out TCP transaction may still be answered later: start clean.
      if (f.kind === 'timeout') this.drop();
      return { ok: false, failure: f };
    }
  }

  private ok(r: ReadResult): ReadResult {
    this.stats.ok++;
    return r;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.drain(() => ({ ok: false, failure: { kind: 'transport', errno: 'ECANCELED', message: 'closing' } }));
    this.drop();
  }
}
