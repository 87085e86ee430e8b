/**
 * The broker's side of the measurement: a TCP proxy in front of Mosquitto that every gateway
 * connects through. It counts, per second since `t0`:
 *   - connects: TCP connections opened by gateways (each is one CONNECT attempt of the driver,
 *     refused or not);
 *   - publishes: PUBLISH packets to a `.../telemetry` topic the gateways sent (parsed from the
 *     client-to-broker byte stream: fixed header, remaining length, topic), retransmissions included.
 * While the gate is closed (the outage) a connection is accepted and closed at once, which the
 * driver sees as "connection closed before CONNACK" (a soft link failure, as ECONNREFUSED is).
 * The gate is opened only once the broker and the bench's subscriber are back, so no publish
 * can slip past the subscriber.
 */
import net from 'node:net';

export interface Series {
  connects: number[];
  publishes: number[];
}

/** Counts PUBLISH packets to a telemetry topic in one direction of one connection. */
class PacketCounter {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onPublish: () => void) {}

  feed(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let off = 0;
    for (;;) {
      if (this.buf.length - off < 2) break;
      let len = 0;
      let mul = 1;
      let i = off + 1;
      let complete = false;
      for (; i < this.buf.length && i < off + 5; i++) {
        const b = this.buf[i];
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || this.buf.length - i < len) break;
      if (this.buf[off] >> 4 === 3 && len >= 2) {
        const tlen = this.buf.readUInt16BE(i);
        const topic = this.buf.toString('utf8', i + 2, i + 2 + tlen);
        if (topic.endsWith('/telemetry')) this.onPublish();
      }
      off = i + len;
    }
    this.buf = off >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
  }
}

export class CountingProxy {
  open = false;
  private t0 = Date.now();
  series: Series = { connects: [], publishes: [] };
  /** Every connection's time, ms since reset(): the test reads how a fleet's attempts spread. */
  connectTimes: number[] = [];
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly upstreamPort: number) {
    this.server = net.createServer((c) => this.accept(c));
  }

  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as net.AddressInfo).port)));
  }

  /** Starts a new series: second 0 is now. */
  reset(): void {
    this.t0 = Date.now();
    this.series = { connects: [], publishes: [] };
    this.connectTimes = [];
  }

  /** Seconds since reset(), as a float. */
  elapsed(): number {
    return (Date.now() - this.t0) / 1000;
  }

  private bump(what: keyof Series): void {
    const s = Math.floor(this.elapsed());
    const arr = this.series[what];
    while (arr.length <= s) arr.push(0);
    arr[s]++;
  }

  private accept(c: net.Socket): void {
    this.bump('connects');
    this.connectTimes.push(Date.now() - this.t0);
    c.on('error', () => {});
    if (!this.open) {
      c.destroy();
      return;
    }
    this.sockets.add(c);
    const up = net.connect({ host: '127.0.0.1', port: this.upstreamPort });
    up.on('error', () => c.destroy());
    c.on('close', () => (this.sockets.delete(c), up.destroy()));
    up.on('close', () => c.destroy());
    const counter = new PacketCounter(() => this.bump('publishes'));
    c.on('data', (d: Buffer) => {
      counter.feed(d);
      if (!up.write(d)) c.pause();
    });
    up.on('drain', () => c.resume());
    up.on('data', (d: Buffer) => {
      if (!c.write(d)) up.pause();
    });
    c.on('drain', () => up.resume());
  }

  /** The outage: close the gate and every open connection. */
  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}
