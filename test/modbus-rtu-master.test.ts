/**
 * The RTU master (drivers/modbus/rtu-master.ts) on one end of a real socat pty pair, against
 * (a) the RTU simulator (drivers/modbus/simulator) and (b) a hostile responder written here: a raw
 * serialport on the other end that frames the master's 8-byte requests itself, knows the truth
 * of every answer it gives, and measures the line (overlaps, the silence before each request).
 *
 * What is pinned:
 * - Every malformed answer is refused, counted under its kind in stats.malformed, and the read
 *   resolves with a failure (never throws); the very next transaction succeeds with exactly the
 *   right counter value (no desynchronisation). The kinds are those of parseRtuResponse, which
 *   checks the CRC first (modbus-frame.test.ts: "a lost byte fails the CRC"): a frame cut short
 *   or a burst of random bytes of frame length is a 'crc' refusal; 'truncated' is a burst under
 *   5 bytes or a CRC-valid frame with fewer data bytes than its byte count; bytes that arrive
 *   outside a transaction are discarded before the next request and counted in strayBytes
 *   (and once per burst in malformed.garbage).
 * - A seeded fuzz run (HOLDFAST_FUZZ_SEED, HOLDFAST_FUZZ_N): the responder answers each request
 *   with a random choice of {correct, random bytes 0..300, a valid frame for another unit, a
 *   valid frame with 1-3 flipped bits, nothing, a correct answer in random chunks with small
 *   delays}; no exception escapes, every ok result carries exactly the responder's registers,
 *   each transaction is counted exactly once, and the counts per kind match the choices.
 *   On a loaded machine socat may deliver a burst late: a chunked answer can then be cut by
 *   frameGapMs and its tail land in the next transaction (a failure, never wrong data); such
 *   transactions are marked "tainted" and only checked for exactness and accounting.
 * - Strict serialisation (50 concurrent reads never overlap on the wire, results in order), the
 *   bounded queue (full: EBUSY at once, nothing on the wire), and t3.5 of silence before every
 *   request (lower bound only: a loaded machine may only be slower).
 * - close() during a transaction, and a port whose far end goes away: every read settles as a
 *   transport failure, nothing escapes as an unhandled rejection, every transaction is counted
 *   in exactly one outcome (the paths at risk are listed at those tests).
 */
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { SerialPort } from 'serialport';
import { rtuFrame, parseRtuRequest, t35Ms, type FrameError, type ReadRequest } from '../drivers/modbus/frame.js';
import { RtuMaster, type RtuOptions, type RtuStats } from '../drivers/modbus/rtu-master.js';
import type { ReadResult } from '../drivers/modbus/types.js';
import { simulate } from '../agent/cli/simulate.js';
import { waitFor } from './helpers/mosquitto.js';
import { mulberry32 } from './helpers/rand.js';
import { ptyPair, type PtyPair } from './helpers/socat.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const KINDS: FrameError[] = ['crc', 'wrong_unit', 'wrong_function', 'byte_count', 'truncated', 'garbage'];

// ---------------------------------------------------------------------------------------------
// Stats bookkeeping

type Flat = { transactions: number; ok: number; timeouts: number; exceptions: number; strayBytes: number } & Record<FrameError, number>;

function flat(s: RtuStats): Flat {
  return { transactions: s.transactions, ok: s.ok, timeouts: s.timeouts, exceptions: s.exceptions, strayBytes: s.strayBytes, ...s.malformed };
}

function delta(a: Flat, b: Flat): Flat {
  const out = {} as Flat;
  for (const k of Object.keys(a) as (keyof Flat)[]) out[k] = b[k] - a[k];
  return out;
}

/** Only the non-zero entries of a delta (for readable assertions). */
function nz(d: Flat): Partial<Flat> {
  return Object.fromEntries(Object.entries(d).filter(([, v]) => v !== 0)) as Partial<Flat>;
}

const sumMalformed = (s: RtuStats) => KINDS.reduce((n, k) => n + s.malformed[k], 0);

// ---------------------------------------------------------------------------------------------
// Registers and frames

const u32 = (v: number) => [(v >>> 16) & 0xffff, v & 0xffff];
const regBytes = (regs: number[]) => Buffer.from(regs.flatMap((r) => [(r >> 8) & 0xff, r & 0xff]));
/** A normal read response: unit, fn, byte count, data, CRC. */
const respFrame = (unit: number, fn: number, regs: number[], byteCount = regs.length * 2) =>
  rtuFrame(unit, Buffer.concat([Buffer.from([fn, byteCount & 0xff]), regBytes(regs)]));

// ---------------------------------------------------------------------------------------------
// The hostile responder

interface SeenRequest {
  index: number;
  unit: number;
  fn: number;
  address: number;
  count: number;
  /** performance.now() when the request's first byte arrived. */
  at: number;
  /** Silence between the last byte of the previous answer and this request (null: the previous request got no answer). */
  gapMs: number | null;
  /** The responder was still answering an earlier request when this one arrived. */
  overlapped: boolean;
}

type AnswerFn = (req: SeenRequest, r: Responder) => Promise<void> | void;

class Responder {
  readonly requests: SeenRequest[] = [];
  readonly badRequests: Buffer[] = [];
  overlaps = 0;
  /** The counter at holding 0-1: +1 for every request served that covers it (like the counter profile). */
  counter = 0;
  answer: AnswerFn = (req, r) => r.send(r.good(req));
  private buf = Buffer.alloc(0);
  private firstByteAt = 0;
  private pending = 0;
  private chain: Promise<void> = Promise.resolve();
  /**
   * When the last byte of the last answer was handed to the pty: taken just before the write
   * call, so no earlier than the byte can have reached the master (a safe lower bound).
   */
  private lastByteAt: number | null = null;
  readonly errors: unknown[] = [];

  private constructor(readonly port: SerialPort) {
    port.on('data', (d: Buffer) => this.onData(d));
    port.on('error', (e) => this.errors.push(e));
  }

  static async open(path: string, baudRate = 9600): Promise<Responder> {
    const port = new SerialPort({ path, baudRate, parity: 'none', dataBits: 8, stopBits: 1, autoOpen: false });
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    return new Responder(port);
  }

  private onData(d: Buffer): void {
    const now = performance.now();
    if (this.buf.length === 0) this.firstByteAt = now;
    this.buf = Buffer.concat([this.buf, d]);
    // The master only sends read requests (fn 1-4): 8 bytes each.
    while (this.buf.length >= 8) {
      const frame = Buffer.from(this.buf.subarray(0, 8));
      this.buf = this.buf.subarray(8);
      const at = this.firstByteAt;
      this.firstByteAt = now;
      const p = parseRtuRequest(frame);
      if (!p.ok || p.pdu.length !== 5) {
        this.badRequests.push(frame);
        continue;
      }
      const overlapped = this.pending > 0;
      if (overlapped) this.overlaps++;
      this.pending++;
      const req: SeenRequest = {
        index: this.requests.length, unit: p.unit, fn: p.fn, address: p.pdu.readUInt16BE(1), count: p.pdu.readUInt16BE(3),
        at, gapMs: this.lastByteAt === null ? null : at - this.lastByteAt, overlapped,
      };
      this.lastByteAt = null;
      this.requests.push(req);
      this.chain = this.chain
        .then(() => this.answer(req, this))
        .catch((e: unknown) => void this.errors.push(e))
        .finally(() => void this.pending--);
    }
  }

  /** The registers a correct answer to `req` carries (holding 0-1: the counter, moved here). */
  regs(req: Pick<SeenRequest, 'address' | 'count'>): number[] {
    const covers = req.address <= 1 && req.address + req.count > 0;
    if (covers) this.counter = (this.counter + 1) >>> 0;
    const c = u32(this.counter);
    return Array.from({ length: req.count }, (_, k) => {
      const a = req.address + k;
      return a < 2 ? c[a] : (0x1000 + a * 257) & 0xffff;
    });
  }

  good(req: SeenRequest): Buffer {
    return respFrame(req.unit, req.fn, this.regs(req));
  }

  /**
   * Writes bytes; resolves once the write syscall is done (the bytes are in the pty). No
   * tcdrain: on a loaded machine it waits for socat to be scheduled, and the responder must not
   * look busy after its last byte is out.
   */
  async send(b: Buffer): Promise<void> {
    if (b.length === 0) return;
    this.lastByteAt = performance.now();
    await new Promise<void>((res, rej) => this.port.write(b, (e) => (e ? rej(e) : res())));
  }

  /** Resolves when every request so far has been answered. */
  async idle(): Promise<void> {
    let c: Promise<void>;
    do {
      c = this.chain;
      await c;
    } while (c !== this.chain);
  }

  async close(): Promise<void> {
    await this.idle();
    if (this.port.isOpen) await new Promise<void>((r) => this.port.close(() => r()));
  }
}

// ---------------------------------------------------------------------------------------------
// Harness

const MASTER: RtuOptions = { path: '', baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1, maxQueue: 64, frameGapMs: 10 };

async function openMaster(path: string, o: Partial<RtuOptions> = {}): Promise<RtuMaster> {
  const m = new RtuMaster({ ...MASTER, path, ...o });
  const r = await m.open();
  if (!r.ok) throw new Error(`master open ${path}: ${r.errno} ${r.message}`);
  return m;
}

/** The part of a tap Test the helpers use. */
interface TestLike {
  teardown(fn: () => unknown): void;
  fail(message: string): unknown;
}

interface Rig {
  pty: PtyPair;
  master: RtuMaster;
  resp: Responder;
}

async function rig(t: TestLike, o: Partial<RtuOptions> = {}): Promise<Rig> {
  const pty = await ptyPair();
  const resp = await Responder.open(pty.a, o.baudRate ?? 9600);
  const master = await openMaster(pty.b, o);
  t.teardown(async () => {
    await master.close();
    await resp.close();
    await pty.close();
  });
  return { pty, master, resp };
}

/** master.read(), with a synchronous throw or a rejection recorded as a failed assertion. */
async function safeRead(t: TestLike, m: RtuMaster, req: ReadRequest, timeoutMs: number): Promise<ReadResult> {
  try {
    return await m.read(req, timeoutMs);
  } catch (e) {
    t.fail(`read threw: ${(e as Error)?.stack ?? String(e)}`);
    return { ok: false, failure: { kind: 'transport', message: 'THREW' } };
  }
}

const COUNTER_REQ: ReadRequest = { unit: 1, fn: 3, address: 0, count: 2 };
const TEN_REQ: ReadRequest = { unit: 1, fn: 3, address: 0, count: 10 };

// ---------------------------------------------------------------------------------------------
// (a) against the RTU simulator

t.test('(a) the RTU simulator: exact values, each simulator fault refused and counted, the next read exact', async (t) => {
  const pty = await ptyPair();
  const sim = await simulate({ mode: 'modbus-rtu', serial: pty.a, baud: 9600, parity: 'none', units: '1:counter,2:meter', print: () => {} });
  const master = await openMaster(pty.b, { frameGapMs: 20 });
  t.teardown(async () => {
    await master.close();
    await sim.close();
    await pty.close();
  });
  const counterDev = sim.devices.get(1)!;
  let served = 0; // reads of unit 1's counter the simulator served (its counter value)

  const expectCounter = async (what: string) => {
    const before = flat(master.stats);
    const r = await safeRead(t, master, COUNTER_REQ, 300);
    served++;
    t.same(r, { ok: true, registers: u32(served) }, `${what}: counter is exactly ${served}`);
    t.same(nz(delta(before, flat(master.stats))), { transactions: 1, ok: 1 }, `${what}: one ok transaction`);
  };

  for (let i = 0; i < 5; i++) await expectCounter(`plain read ${i + 1}`);

  const meterRegs = await safeRead(t, master, { unit: 2, fn: 3, address: 0, count: 4 }, 300);
  t.same(meterRegs, { ok: true, registers: [2, 100, 1, 15] }, 'meter holding 0-3: unit id, CT ratio, PT ratio, demand period');
  const meterIn = await safeRead(t, master, { unit: 2, fn: 4, address: 0, count: 24 }, 300);
  t.ok(meterIn.ok && meterIn.registers!.length === 24, 'meter input 0-23');
  if (meterIn.ok && meterIn.registers) {
    const v = Buffer.from(regBytes(meterIn.registers.slice(0, 2))).readFloatBE(0);
    t.ok(Math.abs(v - 230) < 5, `meter voltage L1 ${v.toFixed(2)} V`);
  }
  const ten = await safeRead(t, master, TEN_REQ, 300);
  served++;
  t.same(ten.ok && ten.registers!.slice(0, 2), u32(served), 'a 10-register read of the counter device (counter + scratch)');

  const cases: { fault: Parameters<typeof counterDev.setFaults>[0]; kind: FrameError | 'timeout' | 'exception'; failure: string; why: string }[] = [
    { fault: { corruptCrc: { every: 1 } }, kind: 'crc', failure: 'crc', why: 'corruptCrc: last CRC byte flipped' },
    { fault: { wrongUnit: true }, kind: 'wrong_unit', failure: 'framing', why: 'wrongUnit: a valid frame from unit 2' },
    { fault: { truncate: true }, kind: 'crc', failure: 'crc', why: 'truncate: half the frame (5 of 9 bytes), CRC not recomputed: the lost bytes fail the CRC' },
    { fault: { garbage: true }, kind: 'crc', failure: 'crc', why: 'garbage: 9 random bytes, as long as the answer: they fail the CRC' },
    { fault: { exception: { code: 4 } }, kind: 'exception', failure: 'exception', why: 'forced exception 04' },
    { fault: { silence: true }, kind: 'timeout', failure: 'timeout', why: 'silence: no answer' },
  ];
  for (const c of cases) {
    counterDev.setFaults(c.fault);
    const before = flat(master.stats);
    const r = await safeRead(t, master, COUNTER_REQ, 200);
    // the transport's faults are applied after the device served the read (its counter moved);
    // silence and a forced exception stop the read before it is served
    if (!c.fault.silence && !c.fault.exception) served++;
    const d = delta(before, flat(master.stats));
    t.equal(r.ok, false, `${c.why}: the read fails`);
    if (!r.ok) t.equal(r.failure.kind, c.failure, `${c.why}: failure kind ${c.failure}`);
    const field = c.kind === 'timeout' ? 'timeouts' : c.kind === 'exception' ? 'exceptions' : c.kind;
    t.same(nz(delta(before, flat(master.stats))), { transactions: 1, [field]: 1 }, `${c.why}: counted once, as ${field} (got ${JSON.stringify(nz(d))})`);
    counterDev.clearFaults();
    await expectCounter(`after ${Object.keys(c.fault)[0]}`);
  }
  t.equal(master.stats.strayBytes, 0, 'nothing stray: every answer was taken whole');
  t.match(sim.rtu!.stats.injected, { corruptCrc: 1, wrongUnit: 1, truncate: 1, garbage: 1 }, 'the simulator injected each fault once');
});

// ---------------------------------------------------------------------------------------------
// (b) malformed answers from the hostile responder, one at a time

t.test('(b) every malformed answer is refused under its kind, the read fails, the next read is exact', async (t) => {
  const { master, resp } = await rig(t, { frameGapMs: 10 });
  const rand = mulberry32(0xbad5eed);
  const randomBytes = (n: number, avoidFirst: number[]) => {
    const b = Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    while (avoidFirst.includes(b[0])) b[0] = Math.floor(rand() * 256);
    if (n > 1) while (b[1] === 3 || b[1] === 0x83) b[1] = Math.floor(rand() * 256);
    return b;
  };

  interface Case {
    name: string;
    req: ReadRequest;
    /** What the responder sends instead of the answer (it has served the read: the counter moved). */
    bytes: (req: SeenRequest, r: Responder) => Buffer;
    kind: FrameError;
    failure: 'crc' | 'framing';
  }
  const cases: Case[] = [
    {
      name: 'wrong CRC (last byte flipped)', req: COUNTER_REQ, kind: 'crc', failure: 'crc',
      bytes: (q, r) => {
        const f = r.good(q);
        f[f.length - 1] ^= 0xff;
        return f;
      },
    },
    { name: 'wrong unit id (valid frame from unit 2)', req: COUNTER_REQ, kind: 'wrong_unit', failure: 'framing', bytes: (q, r) => respFrame(2, q.fn, r.regs(q)) },
    { name: 'truncated: 3 bytes', req: COUNTER_REQ, kind: 'truncated', failure: 'framing', bytes: (q, r) => r.good(q).subarray(0, 3) },
    {
      name: 'truncated: CRC-valid frame, byte count 4 but 2 data bytes', req: COUNTER_REQ, kind: 'truncated', failure: 'framing',
      bytes: (q, r) => rtuFrame(q.unit, Buffer.concat([Buffer.from([q.fn, 4]), regBytes(r.regs(q)).subarray(0, 2)])),
    },
    { name: 'truncated: first 13 of 25 bytes (lost bytes fail the CRC)', req: TEN_REQ, kind: 'crc', failure: 'crc', bytes: (q, r) => r.good(q).subarray(0, 13) },
    { name: 'wrong byte count (2 for 4 data bytes, CRC valid)', req: COUNTER_REQ, kind: 'byte_count', failure: 'framing', bytes: (q, r) => respFrame(q.unit, q.fn, r.regs(q), 2) },
    { name: 'wrong byte count (22 bytes for a 10-register read)', req: TEN_REQ, kind: 'byte_count', failure: 'framing', bytes: (q, r) => respFrame(q.unit, q.fn, [...r.regs(q), 0]) },
    { name: 'wrong function (fn 4 for fn 3, CRC valid)', req: COUNTER_REQ, kind: 'wrong_function', failure: 'framing', bytes: (q, r) => respFrame(q.unit, 4, r.regs(q)) },
    { name: 'wrong function (exception 0x84 for fn 3)', req: COUNTER_REQ, kind: 'wrong_function', failure: 'framing', bytes: (q, r) => (r.regs(q), rtuFrame(q.unit, Buffer.from([0x84, 2]))) },
    { name: 'garbage: 9 random bytes (answer length)', req: COUNTER_REQ, kind: 'crc', failure: 'crc', bytes: (q, r) => (r.regs(q), randomBytes(9, [1])) },
    { name: 'garbage: 200 random bytes', req: COUNTER_REQ, kind: 'crc', failure: 'crc', bytes: (q, r) => (r.regs(q), randomBytes(200, [1])) },
    { name: 'garbage: 6 bytes 01 83 55 AA 12 34 (the head of an exception frame)', req: COUNTER_REQ, kind: 'crc', failure: 'crc', bytes: (q, r) => (r.regs(q), Buffer.from([1, 0x83, 0x55, 0xaa, 0x12, 0x34])) },
    { name: 'garbage: 2 random bytes', req: COUNTER_REQ, kind: 'truncated', failure: 'framing', bytes: (q, r) => (r.regs(q), randomBytes(2, [1])) },
  ];

  for (const c of cases) {
    resp.answer = (q, r) => r.send(c.bytes(q, r));
    const before = flat(master.stats);
    const r = await safeRead(t, master, c.req, 200);
    const d = delta(before, flat(master.stats));
    t.equal(r.ok, false, `${c.name}: the read fails`);
    if (!r.ok) t.equal(r.failure.kind, c.failure, `${c.name}: failure kind ${c.failure} (${r.failure.message})`);
    t.same(nz(d), { transactions: 1, [c.kind]: 1 }, `${c.name}: counted once in malformed.${c.kind}`);
    await resp.idle();
    resp.answer = (q, r) => r.send(r.good(q));
    const next = await safeRead(t, master, COUNTER_REQ, 200);
    t.same(next, { ok: true, registers: u32(resp.requests.length) }, `${c.name}: the next read is exact (counter ${resp.requests.length})`);
  }

  // Extra bytes after a valid frame, in the same burst: the master frames by length and then
  // takes what it holds; either the burst (as delimited by silence) fails its CRC, or the frame
  // is taken and the extra bytes are stray (counted before the next request). Never wrong data.
  {
    resp.answer = (q, r) => r.send(Buffer.concat([r.good(q), Buffer.from([0x01, 0x03, 0x99])]));
    const before = flat(master.stats);
    const r = await safeRead(t, master, COUNTER_REQ, 200);
    await resp.idle();
    await sleep(30); // if the pty split the burst, its tail is in before the next request
    resp.answer = (q, r) => r.send(r.good(q));
    const next = await safeRead(t, master, COUNTER_REQ, 200);
    const d = delta(before, flat(master.stats));
    if (r.ok) {
      t.same(r.registers, u32(resp.requests.length - 1), 'extra bytes in the same burst: the frame taken whole, exact');
      t.same(nz(d), { transactions: 2, ok: 2, garbage: 1, strayBytes: 3 }, 'extra bytes in the same burst: 3 stray bytes counted once');
    } else {
      t.equal(r.failure.kind, 'crc', 'extra bytes in the same burst: the burst fails its CRC');
      t.same(nz(d), { transactions: 2, ok: 1, crc: 1 }, 'extra bytes in the same burst: counted once in malformed.crc');
    }
    t.same(next, { ok: true, registers: u32(resp.requests.length) }, 'extra bytes in the same burst: the next read is exact');
  }

  // Bytes after a complete transaction (the tail of an over-long answer, or an unsolicited
  // burst): sent once the master has taken the answer, so the order on the wire is certain.
  // They are stray: discarded before the next request, counted in strayBytes and once per burst
  // in malformed.garbage; the next read is exact.
  for (const [name, extra] of [
    ['extra bytes after a valid frame, in a later burst', Buffer.from([0x01, 0x03, 0x04, 0x00])],
    ['unsolicited garbage between transactions', randomBytes(37, [])],
  ] as const) {
    const before = flat(master.stats);
    const r = await safeRead(t, master, COUNTER_REQ, 200);
    t.same(r, { ok: true, registers: u32(resp.requests.length) }, `${name}: the read before it is exact`);
    await resp.send(extra);
    await sleep(30); // on the master's side before its next request (socat may be slow to be scheduled)
    const next = await safeRead(t, master, COUNTER_REQ, 200);
    t.same(next, { ok: true, registers: u32(resp.requests.length) }, `${name}: the next read is exact`);
    t.same(nz(delta(before, flat(master.stats))), { transactions: 2, ok: 2, garbage: 1, strayBytes: extra.length }, `${name}: ${extra.length} stray bytes, one garbage burst`);
  }

  t.same(resp.badRequests, [], 'every request on the wire was a valid 8-byte read');
  t.equal(resp.overlaps, 0, 'no request while the responder was answering');
  t.same(resp.errors, [], 'responder: no serial errors');
});

// ---------------------------------------------------------------------------------------------
// Fuzz

type Choice = 'correct' | 'random' | 'other_unit' | 'flipped' | 'nothing' | 'chunked';
const CHOICES: Choice[] = ['correct', 'random', 'other_unit', 'flipped', 'nothing', 'chunked'];

t.test('fuzz: a hostile responder; no exception escapes, every ok is exact, the counts add up', async (t) => {
  const seed = Number(process.env.HOLDFAST_FUZZ_SEED) || (Date.now() ^ (process.pid << 8)) >>> 0;
  const N = Math.max(300, Number(process.env.HOLDFAST_FUZZ_N) || 360);
  const TIMEOUT = 80;
  t.comment(`fuzz seed ${seed} (HOLDFAST_FUZZ_SEED=${seed} to replay the same requests and choices), ${N} transactions`);
  const { master, resp } = await rig(t, { frameGapMs: 10, baudRate: 19200 });
  const rq = mulberry32(seed); // the master's requests
  const ra = mulberry32(seed ^ 0x5eed5eed); // the responder's choices

  /** Registers of the correct answer to request j: they differ per request, so a stale frame is caught. */
  const truth = (j: number, fn: number, a: number) => ((Math.imul(j + 1, 0x9e3779b1) ^ Math.imul(a + 1, 0x85ebca6b) ^ (fn << 13)) >>> 7) & 0xffff;
  const plans: { choice: Choice; regs: number[]; bytes: number }[] = [];

  resp.answer = async (q, r) => {
    const regs = Array.from({ length: q.count }, (_, k) => truth(q.index, q.fn, q.address + k));
    const good = respFrame(q.unit, q.fn, regs);
    const choice = CHOICES[Math.floor(ra() * CHOICES.length)];
    let out: Buffer;
    switch (choice) {
      case 'correct':
      case 'chunked':
        out = good;
        break;
      case 'random':
        out = Buffer.from(Array.from({ length: Math.floor(ra() * 301) }, () => Math.floor(ra() * 256)));
        break;
      case 'other_unit': {
        let u = 1 + Math.floor(ra() * 247);
        if (u === q.unit) u = (u % 247) + 1;
        out = respFrame(u, q.fn, regs);
        break;
      }
      case 'flipped': {
        out = Buffer.from(good);
        const pos = new Set<number>();
        const nbits = 1 + Math.floor(ra() * 3);
        while (pos.size < nbits) pos.add(Math.floor(ra() * out.length * 8));
        for (const p of pos) out[p >> 3] ^= 1 << (p & 7);
        break;
      }
      case 'nothing':
        out = Buffer.alloc(0);
        break;
    }
    plans[q.index] = { choice, regs, bytes: out.length };
    if (choice !== 'chunked') return r.send(out);
    // 2..6 chunks, 0..3 ms apart
    const cuts = new Set<number>();
    const n = 1 + Math.floor(ra() * 5);
    while (cuts.size < n) cuts.add(1 + Math.floor(ra() * (good.length - 1)));
    const points = [0, ...[...cuts].sort((x, y) => x - y), good.length];
    for (let i = 0; i + 1 < points.length; i++) {
      if (i > 0) await sleep(Math.floor(ra() * 4));
      await r.send(good.subarray(points[i], points[i + 1]));
    }
  };

  const results: { choice: Choice; outcome: string; tainted: boolean; late: boolean; bytes: number }[] = [];
  const problems: string[] = [];
  const late: string[] = [];
  let strayBursts = 0;
  let okCount = 0;
  let exact = 0;
  let tainted = false;
  for (let i = 0; i < N; i++) {
    const fn = rq() < 0.5 ? 3 : 4;
    const count = 1 + Math.floor(rq() * 125);
    const req: ReadRequest = { unit: 1 + Math.floor(rq() * 247), fn, address: Math.floor(rq() * (65536 - count)), count };
    const before = flat(master.stats);
    const t0 = performance.now();
    const r = await safeRead(t, master, req, TIMEOUT);
    const d = delta(before, flat(master.stats));
    // The read may resolve before the request reached the responder (stale bytes taken as the answer).
    await waitFor(() => resp.requests.length > i, 5000, `request ${i} at the responder`);
    await resp.idle();
    const q = resp.requests[i];
    const plan = plans[i];
    if (q.unit !== req.unit || q.fn !== req.fn || q.address !== req.address || q.count !== req.count) problems.push(`#${i}: the request on the wire differs from the read`);
    // Exactly one outcome per transaction; a stray burst discarded before the request adds one malformed.garbage.
    const stray = d.strayBytes > 0 ? 1 : 0;
    strayBursts += stray;
    const outcomes = d.ok + d.timeouts + d.exceptions + KINDS.reduce((n, k) => n + d[k], 0) - stray;
    if (d.transactions !== 1 || outcomes !== 1) problems.push(`#${i} (${plan.choice}): stats moved ${JSON.stringify(nz(d))}`);
    const outcome = r.ok ? 'ok' : d.timeouts ? 'timeout' : d.exceptions ? 'exception' : (KINDS.find((k) => d[k] > (k === 'garbage' ? stray : 0)) ?? '?');
    const isLate = outcome === 'timeout' && plan.bytes > 0;
    results.push({ choice: plan.choice, outcome, tainted, late: isLate, bytes: plan.bytes });
    if (r.ok) {
      okCount++;
      if (r.registers !== undefined && r.registers.length === plan.regs.length && r.registers.every((v, k) => v === plan.regs[k])) exact++;
      else problems.push(`#${i} (${plan.choice}${tainted ? ', tainted' : ''}): ok with WRONG registers`);
    } else {
      const kindOk = r.failure.kind === (outcome === 'timeout' ? 'timeout' : outcome === 'exception' ? 'exception' : outcome === 'crc' ? 'crc' : 'framing');
      if (!kindOk) problems.push(`#${i}: failure kind ${r.failure.kind} for stats ${JSON.stringify(nz(d))}`);
    }
    // What each choice must give. A chunked answer may be cut by a pause longer than frameGapMs
    // (a loaded machine, or socat not scheduled in time): then its tail can land in the next
    // transaction, and a transaction that takes stale bytes leaves its own answer to the one
    // after: "tainted" until a transaction ends clean (ok, or a timeout: nothing on the line).
    // An answer that was sent but not in within the timeout: the machine stalled (socat or this
    // process not scheduled for TIMEOUT ms). Excused, counted (it must stay rare), and it taints
    // the next transaction, where the late bytes may land.
    if (isLate) late.push(`#${i} (${plan.choice}, ${plan.bytes} bytes; request in ${(q.at - t0).toFixed(1)} ms after the read started)`);
    if (!tainted && !isLate) {
      const want: Record<Choice, (o: string) => boolean> = {
        correct: (o) => o === 'ok',
        random: (o) => (plan.bytes === 0 ? o === 'timeout' : o !== 'ok' && o !== 'timeout'),
        other_unit: (o) => o === 'wrong_unit',
        flipped: (o) => o === 'crc', // CRC-16/MODBUS detects every 1-3 bit error in frames this short
        nothing: (o) => o === 'timeout',
        chunked: (o) => o !== 'timeout',
      };
      if (!want[plan.choice](outcome)) problems.push(`#${i} (${plan.choice}, ${plan.bytes} bytes): outcome ${outcome} ${JSON.stringify(nz(d))}`);
    }
    tainted = isLate || (outcome !== 'ok' && outcome !== 'timeout' && (tainted || plan.choice === 'chunked'));
  }
  const s = master.stats;
  const summary: Record<string, Record<string, number>> = {};
  for (const x of results) (summary[x.choice] ??= {})[x.outcome + (x.tainted ? ' (tainted)' : '')] = (summary[x.choice][x.outcome + (x.tainted ? ' (tainted)' : '')] ?? 0) + 1;
  t.comment(`seed ${seed}: outcomes by choice ${JSON.stringify(summary)}`);
  t.comment(`seed ${seed}: stats ${JSON.stringify(s)}`);
  if (late.length > 0) t.comment(`late answers (excused): ${late.join('; ')}`);
  t.same(problems, [], `seed ${seed}: every transaction gave what its answer must give`);
  t.ok(late.length <= N / 50, `answers sent but not in within ${TIMEOUT} ms stay rare: ${late.length} (a loaded machine)`);
  t.equal(resp.requests.length, N, `the responder saw exactly ${N} requests`);
  t.equal(s.transactions, N, 'stats.transactions');
  t.equal(exact, okCount, `every ok result (${okCount}) carried exactly the responder's registers`);
  t.equal(s.ok + s.timeouts + s.exceptions + sumMalformed(s), N + strayBursts,
    `ok ${s.ok} + timeouts ${s.timeouts} + exceptions ${s.exceptions} + malformed ${sumMalformed(s)} == transactions ${N} + stray bursts ${strayBursts} (a stray burst is one malformed.garbage outside any transaction)`);
  t.equal(s.malformed.garbage, strayBursts, 'malformed.garbage counts the stray bursts (the response parser never says garbage)');
  // The counts add up, by choice, over the transactions not disturbed by a stall (most of them).
  const clean = results.filter((x) => !x.tainted && !x.late);
  const count = (c: Choice | ((x: (typeof results)[number]) => boolean), o?: string) =>
    clean.filter((x) => (typeof c === 'function' ? c(x) : x.choice === c) && (o === undefined || x.outcome === o)).length;
  t.ok(clean.length >= N * 0.9, `${clean.length} of ${N} transactions undisturbed`);
  t.ok(CHOICES.every((c) => count(c) > 0), 'every choice drawn');
  t.equal(count(() => true, 'timeout'), count('nothing') + count((x) => x.choice === 'random' && x.bytes === 0), 'timeouts == "nothing" + empty random answers');
  t.equal(count(() => true, 'wrong_unit'), count('other_unit'), 'malformed.wrong_unit == frames for another unit');
  t.equal(count('flipped', 'crc'), count('flipped'), 'every flipped frame is a malformed.crc');
  t.equal(count(() => true, 'ok'), count('correct') + count('chunked', 'ok'), 'ok == correct answers + the chunked answers reassembled');
  t.ok(count('chunked', 'ok') > 0, `chunked answers reassembled: ${count('chunked', 'ok')} of ${count('chunked')} untainted`);
  t.same(resp.badRequests, [], 'every request on the wire was a valid read');
  t.same(resp.errors, [], 'responder: no serial errors');
});

// ---------------------------------------------------------------------------------------------
// Serialisation, the bounded queue, t3.5

t.test('strict serialisation: 50 concurrent reads never overlap on the wire, results in order', async (t) => {
  const { master, resp } = await rig(t);
  const rand = mulberry32(50);
  resp.answer = async (q, r) => {
    await sleep(Math.floor(rand() * 4)); // a device that takes 0..3 ms to answer
    await r.send(r.good(q));
  };
  const order: number[] = [];
  const reads = Array.from({ length: 50 }, (_, i) => safeRead(t, master, i % 2 ? COUNTER_REQ : TEN_REQ, 500).then((r) => (order.push(i), r)));
  const results = await Promise.all(reads);
  t.equal(resp.requests.length, 50, '50 requests on the wire');
  t.equal(resp.overlaps, 0, 'none arrived while the previous one was being answered');
  t.same(order, Array.from({ length: 50 }, (_, i) => i), 'results resolve in call order');
  t.same(results.map((r) => (r.ok ? r.registers!.slice(0, 2) : null)), Array.from({ length: 50 }, (_, i) => u32(i + 1)), 'the counter reads 1..50 in call order');
  t.same(resp.requests.map((q) => q.count), Array.from({ length: 50 }, (_, i) => (i % 2 ? 2 : 10)), 'the requests went out in call order');
  t.equal(master.stats.ok, 50);
});

t.test('a full queue refuses at once with EBUSY; nothing refused reaches the wire', async (t) => {
  const MAXQ = 4;
  const { master, resp } = await rig(t, { maxQueue: MAXQ });
  resp.answer = async (q, r) => {
    await sleep(30);
    await r.send(r.good(q));
  };
  const t0 = performance.now();
  const done: { i: number; ms: number; r: ReadResult }[] = [];
  const reads = Array.from({ length: 10 }, (_, i) => safeRead(t, master, COUNTER_REQ, 500).then((r) => void done.push({ i, ms: performance.now() - t0, r })));
  await Promise.all(reads);
  const refused = done.filter((d) => !d.r.ok);
  const accepted = done.filter((d) => d.r.ok).sort((a, b) => a.i - b.i);
  t.equal(accepted.length, MAXQ + 1, `maxQueue ${MAXQ} waiting + 1 on the wire accepted`);
  t.same(refused.map((d) => d.i), [5, 6, 7, 8, 9], 'the reads beyond the bound are refused');
  for (const d of refused) t.match(d.r, { ok: false, failure: { kind: 'transport', errno: 'EBUSY' } }, `read ${d.i}: EBUSY`);
  t.ok(refused.every((d) => d.ms < 25), `refused at once (${refused.map((d) => d.ms.toFixed(1)).join(', ')} ms; the first answer takes >= 30 ms)`);
  t.same(done.slice(0, refused.length).map((d) => d.i), [5, 6, 7, 8, 9], 'every refusal resolved before the first accepted read');
  t.same(accepted.map((d) => (d.r.ok ? d.r.registers : null)), [1, 2, 3, 4, 5].map(u32), 'the accepted reads are exact and in order');
  t.equal(master.refusedQueueFull, 5, 'refusedQueueFull');
  t.equal(master.stats.transactions, 5, 'refusals are not transactions');
  t.equal(resp.requests.length, 5, 'only the accepted requests reached the wire');
  const again = await safeRead(t, master, COUNTER_REQ, 500);
  t.same(again, { ok: true, registers: u32(6) }, 'once drained, the queue accepts again');
});

t.test('t3.5 of silence before every request (lower bound), at each line setting', async (t) => {
  const TOL = 0.25; // ms: performance.now() rounding and float noise; the responder's clock is the master's
  for (const line of [
    { baudRate: 9600, parity: 'none', stopBits: 1, bits: 10 },
    { baudRate: 9600, parity: 'even', stopBits: 1, bits: 11 },
    { baudRate: 9600, parity: 'none', stopBits: 2, bits: 11 },
    { baudRate: 19200, parity: 'none', stopBits: 1, bits: 10 },
    { baudRate: 115200, parity: 'none', stopBits: 1, bits: 10 },
  ] as const) {
    const label = `${line.baudRate} 8${line.parity[0].toUpperCase()}${line.stopBits}`;
    await t.test(label, async (t) => {
      const { master, resp } = await rig(t, { baudRate: line.baudRate, parity: line.parity, stopBits: line.stopBits, frameGapMs: 20 });
      const t35 = t35Ms(line.baudRate, line.bits);
      t.equal(master.t35, t35, `master t3.5 = ${t35.toFixed(3)} ms (${line.bits}-bit characters)`);
      // Answer at once, in the data handler's turn: the master must still wait t3.5 after the last byte.
      resp.answer = (q, r) => r.send(r.good(q));
      for (let i = 0; i < 20; i++) await safeRead(t, master, i % 2 ? COUNTER_REQ : TEN_REQ, 300);
      await Promise.all(Array.from({ length: 20 }, () => safeRead(t, master, TEN_REQ, 300)));
      // An answer in two bursts: the silence counts from the last one.
      resp.answer = async (q, r) => {
        const f = r.good(q);
        await r.send(f.subarray(0, 4));
        await sleep(1);
        await r.send(f.subarray(4));
      };
      for (let i = 0; i < 10; i++) await safeRead(t, master, TEN_REQ, 300);
      const gaps = resp.requests.map((q) => q.gapMs).filter((g): g is number => g !== null);
      // (a burst pause longer than frameGapMs on a loaded machine may cut an answer: not the point here)
      t.ok(master.stats.ok >= 40 && gaps.length >= 40, `gaps measured before ${gaps.length} of 50 requests (${master.stats.ok} ok)`);
      const min = Math.min(...gaps);
      const short = gaps.filter((g) => g < t35 - TOL);
      t.same(short.map((g) => g.toFixed(3)), [], `every gap >= t3.5 ${t35.toFixed(3)} - ${TOL} ms (min ${min.toFixed(3)} ms, median ${[...gaps].sort((a, b) => a - b)[gaps.length >> 1].toFixed(3)} ms)`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// close(), and a port that goes away: every read resolves (never hangs, never throws)
//
// The paths at risk:
// - close() while a transaction awaits silence(): the port is gone when the await returns, and
//   a write to it would throw where nothing catches it (unhandled: the agent would exit).
// - close() (or the port closing by itself) while the write or drain is pending: serialport's
//   write() and drain() on a port that is not open wait for an 'open' event that never comes,
//   so the read would never resolve and every later read would queue behind it.
// - a failed write counts a transaction, so it must count an outcome too (`transport`).

const HUNG = Symbol('hung');
/** p, or HUNG if it has not settled within ms. */
function within<T>(p: Promise<T>, ms: number): Promise<T | typeof HUNG> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(HUNG), ms);
    void p.then((v) => (clearTimeout(timer), resolve(v)), () => (clearTimeout(timer), resolve(HUNG)));
  });
}

/** Collects unhandled rejections while a test runs (what would crash the agent: it installs no handler). */
function catchEscapes(t: TestLike): unknown[] {
  const escaped: unknown[] = [];
  const on = (e: unknown) => void escaped.push(e);
  process.on('unhandledRejection', on);
  t.teardown(() => void process.off('unhandledRejection', on));
  return escaped;
}

for (const [when, wait] of [
  ['in the same tick as read() (the transaction is at its t3.5 wait)', null],
  ['once the request is being written (write issued, drain pending)', () => new Promise<void>((r) => setImmediate(r))],
] as const) {
  t.test(`close() ${when}: the read resolves with a failure, nothing escapes, close() resolves`, async (t) => {
    const escaped = catchEscapes(t);
    const { master, resp } = await rig(t);
    resp.answer = () => {}; // a silent device: the read could only end by its timeout (100 ms)
    const p = master.read(COUNTER_REQ, 100);
    if (wait) await wait();
    const closed = within(master.close(), 2000);
    const r = await within(p, 2000);
    t.not(r, HUNG, 'the read settles (within 2 s; its timeout is 100 ms)');
    if (r !== HUNG) t.match(r, { ok: false, failure: { kind: 'transport' } }, 'as a transport failure');
    t.not(await closed, HUNG, 'close() resolves');
    await sleep(50);
    t.same(escaped.map((e) => String((e as Error)?.message ?? e)), [], 'no unhandled rejection (the agent has no handler: it would exit)');
    const after = await within(master.read(COUNTER_REQ, 100), 1000);
    t.match(after, { ok: false, failure: { kind: 'transport' } }, 'a read after close() is refused at once (not queued behind a wedged one)');
  });
}

t.test('the far end goes away (socat killed): every read resolves as a transport failure, counted once', async (t) => {
  const escaped = catchEscapes(t);
  // Which path a read takes depends on when the master's poller notices the hang-up: the port
  // already closed ("not open", no transaction), the write failing (EIO), or the port closing
  // while the write or drain is pending. A few attempts cover the paths.
  const seen: string[] = [];
  const unbalanced: string[] = [];
  let hung = 0;
  let writeFailures = 0;
  for (let k = 0; k < 10 && writeFailures < 3; k++) {
    const pty = await ptyPair();
    const master = await openMaster(pty.b);
    await pty.close();
    const r = await within(master.read(COUNTER_REQ, 100), 1500);
    if (r === HUNG) hung++;
    else if (!r.ok) {
      seen.push(`${r.failure.kind} ${r.failure.errno ?? ''}: ${r.failure.message}`);
      if (r.failure.message !== 'serial port not open') writeFailures++;
    } else seen.push('ok?!');
    const s = master.stats;
    // A transaction must end in exactly one outcome counter (`transport` included).
    const transport = (s as RtuStats & { transport?: number }).transport ?? 0;
    if (r !== HUNG && s.ok + s.timeouts + s.exceptions + sumMalformed(s) + transport !== s.transactions) unbalanced.push(`attempt ${k}: ${JSON.stringify(s)}`);
    await within(master.close(), 1500);
  }
  t.comment(`outcomes: ${JSON.stringify(seen)}; hung: ${hung}`);
  t.equal(hung, 0, 'no read hangs (a hung read wedges the bus queue for good)');
  t.ok(seen.every((x) => x.startsWith('transport')), 'every read is a transport failure');
  t.same(unbalanced, [], 'every transaction counted in exactly one outcome: ok + timeouts + exceptions + malformed (+ transport) == transactions');
  t.same(escaped.map((e) => String((e as Error)?.message ?? e)), [], 'no unhandled rejection');
});

t.test('a port that cannot be opened: the real errno, not EIO', async (t) => {
  const missing = await new RtuMaster({ ...MASTER, path: '/dev/holdfast-no-such-port' }).open();
  t.match(missing, { ok: false, errno: 'ENOENT' }, 'a missing port is ENOENT');
  t.match(missing.ok ? '' : missing.message, /No such file or directory/);
  const dir = await new RtuMaster({ ...MASTER, path: '/' }).open();
  t.equal(dir.ok, false, 'a directory is no serial port');
  t.not(dir.ok ? '' : dir.errno, 'ENOENT', `and says why of its own (${dir.ok ? '' : `${dir.errno}: ${dir.message}`})`);
});
