/**
 * Modbus TCP server over simulated devices: `holdfast simulate modbus-tcp`, and the device side
 * of the TCP driver's tests. MBAP framing is frame.ts's (takeTcpFrames / tcpFrame).
 *
 * - unit id -> device; unit 0 and 255 (the "talk to the server itself" ids of the Modbus
 *   Messaging Implementation Guide) reach the first device unless mapped explicitly.
 * - Several connections at once; each connection's requests are answered strictly in order
 *   (a slow answer holds back the ones behind it, as in a single-threaded device), while
 *   connections do not wait for each other.
 * - gatewayMode: behaves like a TCP-to-RTU gateway: an unknown unit id gets exception 0x0B
 *   (gateway target device failed to respond) at once, and units listed in `pathUnavailable`
 *   get 0x0A (gateway path unavailable). Without gatewayMode an unknown unit gets no answer
 *   (counted), which is what many plain devices do and what makes a master time out.
 * - Faults (device.ts): silence (no answer), slowMs, exception (in the device), wrongUnit
 *   (MBAP unit + 1), truncate (half the PDU, MBAP length consistent with it: a TCP stream
 *   cannot lose bytes mid-frame, a buggy gateway can cut a PDU), garbage (random bytes on the
 *   stream: the master's MBAP parser must resynchronise by reconnecting), and disconnect:
 *   every connection is destroyed now and the listening socket is closed for N ms, so new
 *   connections get ECONNREFUSED, then the server listens again on the same port.
 *   corruptCrc has no meaning on TCP and is ignored.
 * - A malformed MBAP header (protocol id != 0, bad length) closes the connection, as devices do.
 */
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { exceptionPdu, takeTcpFrames, tcpFrame } from '../frame.js';
import { EXCEPTION, type SimDevice } from './device.js';

export interface TcpSimOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 1502; 0 = a free port (read `port` after start). */
  port?: number;
  devices: Map<number, SimDevice>;
  gatewayMode?: boolean;
  /** gatewayMode: unit ids answered with 0x0A (gateway path unavailable). */
  pathUnavailable?: Iterable<number>;
  log?: (line: string) => void;
}

export type TcpDropReason = 'other_unit' | 'silence' | 'disconnected' | 'bad_mbap';

export interface TcpStats {
  connections: number;
  requests: number;
  answered: number;
  dropped: Partial<Record<TcpDropReason, number>>;
  injected: Partial<Record<'slow' | 'wrongUnit' | 'truncate' | 'garbage' | 'disconnect' | 'gateway', number>>;
}


export class TcpSimulator {
  readonly stats: TcpStats = { connections: 0, requests: 0, answered: 0, dropped: {}, injected: {} };
  readonly host: string;
  port: number;
  readonly pathUnavailable: Set<number>;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private relistenTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly stop = new AbortController();
  private readonly onDisconnect = (ms: number) => this.disconnect(ms);

  private constructor(private readonly opts: TcpSimOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 1502;
    this.pathUnavailable = new Set(opts.pathUnavailable ?? []);
    for (const d of new Set(opts.devices.values())) d.on('disconnect', this.onDisconnect);
  }

  static async start(opts: TcpSimOptions): Promise<TcpSimulator> {
    const sim = new TcpSimulator(opts);
    await sim.listen();
    return sim;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer((s) => this.accept(s));
      srv.once('error', reject);
      srv.listen(this.port, this.host, () => {
        srv.off('error', reject);
        srv.on('error', (e) => this.opts.log?.(`tcp server: ${e.message}`));
        const addr = srv.address();
        if (addr && typeof addr === 'object') this.port = addr.port;
        this.server = srv;
        resolve();
      });
    });
  }

  /** Closes every connection now and refuses new ones (port closed) for `ms`. */
  disconnect(ms: number): void {
    if (this.closed) return;
    this.stats.injected.disconnect = (this.stats.injected.disconnect ?? 0) + 1;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.server?.close();
    this.server = null;
    clearTimeout(this.relistenTimer);
    this.relistenTimer = setTimeout(() => this.relisten(0), ms);
  }

  private relisten(attempt: number): void {
    if (this.closed || this.server) return;
    this.listen().catch((e: Error) => {
      this.opts.log?.(`tcp relisten on ${this.host}:${this.port} failed (${e.message}); retrying`);
      if (attempt < 50) this.relistenTimer = setTimeout(() => this.relisten(attempt + 1), 100);
    });
  }

  private accept(sock: net.Socket): void {
    this.stats.connections++;
    this.sockets.add(sock);
    sock.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let chain: Promise<void> = Promise.resolve();
    sock.on('error', () => {});
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = takeTcpFrames(buf);
      buf = Buffer.from(r.rest);
      for (const f of r.frames) {
        this.stats.requests++;
        const pdu = Buffer.from(f.pdu);
        chain = chain
          .then(() => this.serve(sock, f.transaction, f.unit, pdu))
          .catch((e: Error) => {
            if (!this.closed) this.opts.log?.(`answer failed: ${e.message}`);
          });
      }
      if (r.error) {
        this.drop('bad_mbap');
        this.opts.log?.(`closing connection: ${r.error}`);
        void chain.then(() => sock.destroy());
      }
    });
  }

  private drop(reason: TcpDropReason): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
  }

  private inject(kind: keyof TcpStats['injected']): void {
    this.stats.injected[kind] = (this.stats.injected[kind] ?? 0) + 1;
  }

  private device(unit: number): SimDevice | undefined {
    const d = this.opts.devices.get(unit);
    if (d || (unit !== 0 && unit !== 255)) return d;
    return this.opts.devices.values().next().value;
  }

  private async serve(sock: net.Socket, transaction: number, unit: number, pdu: Buffer): Promise<void> {
    if (sock.destroyed) return;
    const gw = this.opts.gatewayMode === true;
    if (gw && this.pathUnavailable.has(unit)) return this.send(sock, transaction, unit, exceptionPdu(pdu[0], EXCEPTION.GATEWAY_PATH_UNAVAILABLE), 'gateway');
    const dev = this.device(unit);
    if (!dev) {
      if (gw) return this.send(sock, transaction, unit, exceptionPdu(pdu[0], EXCEPTION.GATEWAY_TARGET_FAILED), 'gateway');
      return this.drop('other_unit');
    }
    if (dev.silent()) return this.drop(dev.faults.silence ? 'silence' : 'disconnected');
    const answer = dev.handle(pdu);
    if (!answer) return this.drop('silence');
    const f = { ...dev.faults };
    if (f.slowMs) {
      this.inject('slow');
      await delay(f.slowMs, undefined, { signal: this.stop.signal });
      if (sock.destroyed) return;
    }
    if (f.garbage) {
      this.inject('garbage');
      sock.write(dev.randomBytes(7 + answer.length));
      this.stats.answered++;
      return;
    }
    let out = answer;
    if (f.truncate) {
      this.inject('truncate');
      out = answer.subarray(0, Math.max(1, Math.ceil(answer.length / 2)));
    }
    if (f.wrongUnit) this.inject('wrongUnit');
    this.send(sock, transaction, f.wrongUnit ? (unit + 1) & 0xff : unit, out);
  }

  private send(sock: net.Socket, transaction: number, unit: number, pdu: Buffer, injected?: 'gateway'): void {
    if (injected) this.inject(injected);
    if (sock.destroyed) return;
    sock.write(tcpFrame(transaction, unit, pdu));
    this.stats.answered++;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.relistenTimer);
    this.stop.abort();
    for (const d of new Set(this.opts.devices.values())) d.off('disconnect', this.onDisconnect);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const srv = this.server;
    this.server = null;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
