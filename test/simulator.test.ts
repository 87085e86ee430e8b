/**
 * The Modbus simulators (drivers/modbus/simulator/) against clients built only on frame.ts, over real
 * sockets and a real socat pty pair: what a driver will meet must be what the simulator says.
 * TCP: reads, the loss-check counter, exceptions 01/02/03 and forced ones, writes, in-order
 * answers, silence/slow, the disconnect fault (close, refuse, accept again), gateway mode and the
 * SunSpec chain. RTU: length framing, bad CRC dropped and counted, other units ignored,
 * corruptCrc/wrongUnit/truncate as parseRtuResponse sees them, silence, and the line-rate
 * emulation (lower bound only: a loaded machine may only be slower).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { SerialPort } from 'serialport';
import { crc16, lineMs, parsePdu, parseRtuResponse, readPdu, registers, rtuRequest, rtuResponseLength, takeTcpFrames, tcpFrame, type ReadRequest } from '../drivers/modbus/frame.js';
import { createDevice, COUNTER, METER } from '../drivers/modbus/simulator/profiles.js';
import { SUNSPEC } from '../drivers/modbus/simulator/sunspec.js';
import type { SimDevice } from '../drivers/modbus/simulator/device.js';
import { TcpSimulator } from '../drivers/modbus/simulator/tcp.js';
import { RtuSimulator } from '../drivers/modbus/simulator/rtu.js';
import { waitFor } from './helpers/mosquitto.js';
import { ptyPair } from './helpers/socat.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A raw Modbus TCP client: MBAP by hand, answers matched by transaction id. */
class RawTcp {
  private buf = Buffer.alloc(0);
  private tid = 0;
  private waiting = new Map<number, (f: { unit: number; pdu: Buffer }) => void>();
  closed = false;
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      const r = takeTcpFrames(Buffer.concat([this.buf, d]));
      this.buf = Buffer.from(r.rest);
      for (const f of r.frames) this.waiting.get(f.transaction)?.({ unit: f.unit, pdu: Buffer.from(f.pdu) });
    });
    sock.on('close', () => (this.closed = true));
    sock.on('error', () => {});
  }
  static connect(port: number): Promise<RawTcp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawTcp(s)));
      s.once('error', reject);
    });
  }
  /** Sends a PDU; resolves with the answer, or 'timeout'. */
  send(unit: number, pdu: Buffer, timeoutMs = 1000): Promise<{ unit: number; pdu: Buffer } | 'timeout'> {
    const tid = ++this.tid;
    this.sock.write(tcpFrame(tid, unit, pdu));
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), timeoutMs);
      this.waiting.set(tid, (f) => (clearTimeout(timer), resolve(f)));
    });
  }
  async read(unit: number, fn: ReadRequest['fn'], address: number, count: number) {
    const a = await this.send(unit, readPdu({ fn, address, count }));
    if (a === 'timeout') return a;
    return parsePdu({ fn, address, count }, a.pdu);
  }
  close() {
    this.sock.destroy();
  }
}

const regs = (r: Awaited<ReturnType<RawTcp['read']>>) => (r !== 'timeout' && r.ok ? registers(r.data) : r);
const exc = (r: Awaited<ReturnType<RawTcp['read']>>) => (r !== 'timeout' && !r.ok && 'exception' in r ? r.exception : r);

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

async function tcpSim(t: TapTest, devices: Map<number, SimDevice>, extra: { gatewayMode?: boolean; pathUnavailable?: number[] } = {}) {
  const sim = await TcpSimulator.start({ port: 0, devices, ...extra });
  const c = await RawTcp.connect(sim.port);
  t.teardown(async () => (c.close(), await sim.close()));
  return { sim, c };
}

t.test('TCP: reads, counter, writes, exceptions', async (t) => {
  const counter = createDevice('counter', 1);
  let clock = 0;
  const meter = createDevice('meter', 2, { now: () => clock });
  clock = 5_000;
  const { sim, c } = await tcpSim(t, new Map([[1, counter], [2, meter]]));
  t.same(regs(await c.read(1, 3, 0, 2)), [0, 1], 'first read of the counter: 1');
  for (let i = 2; i <= 5; i++) t.same(regs(await c.read(1, 3, 0, 4)), [0, i, 0, 0], `read ${i}: ${i}`);
  t.same(regs(await c.read(1, 3, COUNTER.SCRATCH, 2)), [0, 0], 'a read not covering the counter');
  t.same(regs(await c.read(1, 3, 1, 1)), [6], 'a read covering only the low word counts');
  const m = await c.read(2, 4, 0, METER.INPUT_COUNT);
  t.ok(m !== 'timeout' && m.ok, 'meter input registers');
  if (m !== 'timeout' && m.ok) {
    for (const a of [METER.V_L1, METER.V_L2, METER.V_L3]) t.ok(Math.abs(m.data.readFloatBE(a * 2) - 230) < 5, `voltage @${a} ~230 V`);
    t.ok(Math.abs(m.data.readFloatBE(METER.FREQUENCY * 2) - 50) < 0.1, 'frequency ~50 Hz');
    t.equal(m.data.readUInt32BE(METER.ENERGY_WH * 2), METER.ENERGY_START_WH + 9, 'energy after 5 s of ~6.5 kW');
  }
  // writes
  const w6 = await c.send(1, Buffer.from([6, 0, COUNTER.SCRATCH, 0x12, 0x34]));
  t.same(w6 !== 'timeout' && [...w6.pdu], [6, 0, 2, 0x12, 0x34], 'fn 6 echoes');
  const w16 = await c.send(1, Buffer.from([16, 0, 3, 0, 2, 4, 0xbe, 0xef, 0, 7]));
  t.same(w16 !== 'timeout' && [...w16.pdu], [16, 0, 3, 0, 2], 'fn 16 answers address and count');
  t.same(regs(await c.read(1, 3, COUNTER.SCRATCH, 3)), [0x1234, 0xbeef, 7], 'written values read back');
  await c.send(1, Buffer.from([5, 0, 0, 0, 0]));
  const coils = await c.read(1, 1, 0, 16);
  t.same(coils !== 'timeout' && coils.ok && [...coils.data], [0b1100_0010, 0b1010_0101], 'fn 5 cleared coil 0; fn 1 packs LSB first');
  const disc = await c.read(1, 2, 0, 3);
  t.same(disc !== 'timeout' && disc.ok && [...disc.data], [0b100], 'fn 2 reads discrete inputs');
  // exceptions
  const f43 = await c.send(1, Buffer.from([0x2b, 0x0e, 1, 0]));
  t.same(f43 !== 'timeout' && [...f43.pdu], [0xab, 1], '01 illegal function');
  t.equal(exc(await c.read(1, 3, 100, 1)), 2, '02 for an unmapped register');
  t.equal(exc(await c.read(1, 3, 8, 4)), 2, '02 for a read running past the mapped range');
  t.equal(exc(await c.read(1, 4, 0, 1)), 2, '02 for input registers the counter does not map');
  t.equal(exc(await c.read(1, 3, 0, 0)), 3, '03 for count 0');
  t.equal(exc(await c.read(1, 3, 0, 126)), 3, '03 for count 126');
  t.equal(exc(await c.read(1, 1, 0, 2001)), 3, '03 for 2001 bits');
  counter.setFaults({ exception: { address: 1, code: 4 } });
  t.equal(exc(await c.read(1, 3, 0, 2)), 4, 'forced exception for reads covering its address');
  t.same(regs(await c.read(1, 3, 2, 1)), [0x1234], 'other reads unaffected');
  counter.setFaults({ exception: null });
  t.same(regs(await c.read(1, 3, 0, 2)), [0, 7], 'fault cleared; the forced exception did not count as a read');
  t.equal(sim.stats.dropped.other_unit, undefined);
  t.equal(await c.read(9, 3, 0, 1), 'timeout', 'no gateway mode: an unknown unit gets no answer');
});

t.test('TCP: silence, slow answers in order, garbage/truncate/wrongUnit', async (t) => {
  const d = createDevice('counter', 1);
  const { sim, c } = await tcpSim(t, new Map([[1, d]]));
  d.setFaults({ silence: true });
  t.equal(await c.read(1, 3, 0, 2), 'timeout', 'silence: no answer');
  t.equal(sim.stats.dropped.silence, 1);
  d.setFaults({ silence: null, slowMs: 250 });
  const t0 = performance.now();
  const [a, b] = await Promise.all([c.read(1, 3, 0, 2), c.read(1, 3, 0, 2)]);
  t.ok(performance.now() - t0 >= 490, 'two slow answers, one after the other');
  t.same([regs(a), regs(b)], [[0, 1], [0, 2]], 'answered in request order');
  d.setFaults({ slowMs: null, wrongUnit: true });
  const wu = await c.send(1, readPdu({ fn: 3, address: 0, count: 1 }));
  t.equal(wu !== 'timeout' && wu.unit, 2, 'wrongUnit: MBAP unit + 1');
  d.setFaults({ wrongUnit: null, truncate: true });
  const tr = await c.read(1, 3, 0, 2);
  t.ok(tr !== 'timeout' && !tr.ok && 'error' in tr, 'truncate: parsePdu refuses the cut PDU');
  d.setFaults({ truncate: null, garbage: true });
  t.equal(await c.read(1, 3, 0, 2), 'timeout', 'garbage: no frame for this transaction');
});

t.test('TCP: disconnect closes every connection, refuses, then accepts again', async (t) => {
  const d = createDevice('counter', 1);
  const { sim, c } = await tcpSim(t, new Map([[1, d]]));
  const c2 = await RawTcp.connect(sim.port);
  t.teardown(() => c2.close());
  d.setFaults({ disconnect: 600 });
  await waitFor(() => c.closed && c2.closed, 2000, 'both connections closed');
  await t.rejects(RawTcp.connect(sim.port), { code: 'ECONNREFUSED' }, 'new connections refused');
  let c3: RawTcp | undefined;
  await waitFor(async () => !!(c3 = await RawTcp.connect(sim.port).catch(() => undefined)), 3000, 'listening again');
  t.same(regs(await c3!.read(1, 3, 0, 2)), [0, 1], 'served again on the same port');
  c3!.close();
});

t.test('TCP: gateway mode and unit 0/255', async (t) => {
  const { c } = await tcpSim(t, new Map([[1, createDevice('counter', 1)], [3, createDevice('sunspec-inverter', 3)]]), { gatewayMode: true, pathUnavailable: [7] });
  t.equal(exc(await c.read(9, 3, 0, 1)), 0x0b, '0x0B for an unknown unit');
  t.equal(exc(await c.read(7, 3, 0, 1)), 0x0a, '0x0A when configured');
  t.same(regs(await c.read(0, 3, 0, 2)), [0, 1], 'unit 0 reaches the first device');
  t.same(regs(await c.read(255, 3, 0, 2)), [0, 2], 'unit 255 too');
  // SunSpec: walk the model chain like a scanner does
  t.same(regs(await c.read(3, 3, SUNSPEC.BASE, 2)), [0x5375, 0x6e53], "'SunS' at 40000");
  const chain: [number, number][] = [];
  for (let a = SUNSPEC.BASE + 2; chain.length < 10; ) {
    const [id, len] = regs(await c.read(3, 3, a, 2)) as number[];
    chain.push([id, len]);
    if (id === 0xffff) break;
    a += 2 + len;
  }
  t.same(chain, [[1, 66], [103, 50], [701, 153], [0xffff, 0]], 'models 1, 103, 701 and the end marker');
  const common = await c.read(3, 3, SUNSPEC.COMMON + 2, 32);
  const text = common !== 'timeout' && common.ok ? common.data.toString('latin1').replace(/\0+/g, '|') : '';
  t.equal(text, 'Holdfast|SIM-INV|', 'Mn and Md');
  t.equal(exc(await c.read(3, 3, SUNSPEC.BASE + SUNSPEC.SIZE - 1, 2)), 2, 'nothing mapped past the end marker');
});

/** A master on the other end of the pty: write a frame, collect what comes back. */
async function rtuMaster(path: string) {
  const port = new SerialPort({ path, baudRate: 9600, parity: 'none', autoOpen: false });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  let rx = Buffer.alloc(0);
  let firstAt = 0;
  let lastAt = 0;
  port.on('data', (d: Buffer) => {
    lastAt = performance.now();
    if (rx.length === 0) firstAt = lastAt;
    rx = Buffer.concat([rx, d]);
  });
  return {
    /** Writes `frame` and waits for `expect` bytes (or `waitMs`); times are from the write. */
    async transact(frame: Buffer, expect: number, waitMs = 400) {
      rx = Buffer.alloc(0);
      const t0 = performance.now();
      port.write(frame);
      await waitFor(() => rx.length >= expect, waitMs, 'answer').catch(() => {});
      await sleep(20); // anything extra?
      return { rx, first: firstAt - t0, last: lastAt - t0 };
    },
    close: () => new Promise<void>((r) => port.close(() => r())),
  };
}

t.test('RTU over a socat pty pair', async (t) => {
  const pty = await ptyPair();
  const counter = createDevice('counter', 1);
  const sim = await RtuSimulator.open({ path: pty.a, baudRate: 9600, parity: 'none', devices: new Map([[1, counter], [2, createDevice('meter', 2)]]) });
  const m = await rtuMaster(pty.b);
  t.teardown(async () => (await m.close(), await sim.close(), await pty.close()));
  const req = (unit: number, address: number, count: number): ReadRequest => ({ unit, fn: 3, address, count });
  const r1 = req(1, 0, 2);

  let a = await m.transact(rtuRequest(r1), rtuResponseLength(r1));
  t.same(parseRtuResponse(r1, a.rx), { ok: true, data: Buffer.from([0, 0, 0, 1]) }, 'a read framed and answered');
  const r2 = req(2, 0, 4);
  a = await m.transact(Buffer.concat([rtuRequest(r1), rtuRequest({ ...r2, fn: 4 })]), rtuResponseLength(r1) + rtuResponseLength(r2));
  t.equal(a.rx.length, rtuResponseLength(r1) + rtuResponseLength(r2), 'two back-to-back requests framed by length, both answered');
  t.ok(parseRtuResponse(r1, a.rx.subarray(0, 9)).ok && parseRtuResponse({ ...r2, fn: 4 }, a.rx.subarray(9)).ok, 'in order, each a valid frame');

  const bad = rtuRequest(r1);
  bad[bad.length - 1] ^= 0x55;
  a = await m.transact(bad, 1, 300);
  t.equal(a.rx.length, 0, 'a wrong-CRC request gets no answer');
  t.equal(sim.stats.dropped.crc, 1, 'and is counted');
  a = await m.transact(rtuRequest(req(5, 0, 2)), 1, 300);
  t.equal(a.rx.length, 0, 'a request for another unit is ignored');
  t.equal(sim.stats.dropped.other_unit, 1, 'and counted');
  a = await m.transact(rtuRequest(r1), 9);
  t.same(parseRtuResponse(r1, a.rx), { ok: true, data: Buffer.from([0, 0, 0, 3]) }, 'still in step afterwards');

  counter.setFaults({ corruptCrc: { every: 2 } });
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push((await m.transact(rtuRequest(r1), 9)).rx);
  t.same(seen.map((b) => { const p = parseRtuResponse(r1, b); return p.ok || ('error' in p && p.error); }), [true, 'crc', true, 'crc'], 'corruptCrc every 2nd answer fails parseRtuResponse');
  t.ok(seen.every((b) => b.length === 9), 'corrupt answers keep their length');
  counter.setFaults({ corruptCrc: 1 });
  t.match(parseRtuResponse(r1, (await m.transact(rtuRequest(r1), 9)).rx), { ok: false, error: 'crc' }, 'corruptCrc probability 1');
  counter.setFaults({ corruptCrc: null, wrongUnit: true });
  t.match(parseRtuResponse(r1, (await m.transact(rtuRequest(r1), 9)).rx), { ok: false, error: 'wrong_unit' }, 'wrongUnit');
  counter.setFaults({ wrongUnit: null, truncate: true });
  a = await m.transact(rtuRequest(r1), 9, 300);
  t.equal(a.rx.length, 5, 'truncate: half the frame');
  t.not(crc16(a.rx, 0, 3), a.rx.readUInt16LE(3), 'and no valid CRC');
  counter.setFaults({ truncate: null, silence: true });
  t.equal((await m.transact(rtuRequest(r1), 1, 300)).rx.length, 0, 'silence: no byte at all');
  t.equal(sim.stats.dropped.silence, 1);
  counter.clearFaults();
  t.ok(parseRtuResponse(r1, (await m.transact(rtuRequest(r1), 9)).rx).ok, 'answers again');
});

t.test('RTU line-rate emulation: a 10-register read takes at least its line time', async (t) => {
  const pty = await ptyPair();
  const sim = await RtuSimulator.open({ path: pty.a, baudRate: 9600, parity: 'none', devices: new Map([[1, createDevice('counter', 1)]]), emulateLineRate: true });
  const m = await rtuMaster(pty.b);
  t.teardown(async () => (await m.close(), await sim.close(), await pty.close()));
  const r: ReadRequest = { unit: 1, fn: 3, address: 0, count: 10 };
  const want = lineMs(8, 9600, sim.bitsPerChar) + sim.t35 + lineMs(rtuResponseLength(r), 9600, sim.bitsPerChar);
  for (let i = 0; i < 3; i++) {
    const a = await m.transact(rtuRequest(r), rtuResponseLength(r), 1000);
    t.ok(parseRtuResponse(r, a.rx).ok, 'valid answer');
    t.ok(a.last >= want - 0.01, `last byte after ${a.last.toFixed(1)} ms >= request + t3.5 + response line time ${want.toFixed(1)} ms`);
    t.ok(a.first >= lineMs(8, 9600, sim.bitsPerChar) + sim.t35 + lineMs(1, 9600, sim.bitsPerChar) - 0.01, `first byte after ${a.first.toFixed(1)} ms`);
  }
});
