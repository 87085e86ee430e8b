/**
 * Modbus framing (drivers/modbus/frame.ts): the CRC against a published vector, request and
 * response round trips, every FrameError kind and exception responses, the t3.5 silence, MBAP
 * stream splitting, and a seeded fuzz run: 20,000 random buffers through the three parsers must
 * never throw, and no buffer with a wrong CRC may ever parse as ok.
 */
import t from 'tap';
import {
  bits, crc16, dataBytes, exceptionPdu, FN, parseRtuRequest, parseRtuResponse, readPdu, registers, rtuFrame, rtuRequest,
  rtuRequestLength, rtuResponseLength, t35Ms, takeTcpFrames, tcpFrame, withCrc, type ReadRequest,
} from '../drivers/modbus/frame.js';
import { mulberry32 } from './helpers/rand.js';

const req: ReadRequest = { unit: 1, fn: 3, address: 0, count: 10 };
/** A response frame: unit, fn, byte count, data, CRC. */
const response = (unit: number, fn: number, data: number[], byteCount = data.length) => rtuFrame(unit, Buffer.from([fn, byteCount, ...data]));
const regData = (regs: number[]) => regs.flatMap((r) => [r >> 8, r & 0xff]);

t.test('CRC-16/MODBUS known vectors', async (t) => {
  const body = Buffer.from([0x01, 0x03, 0x00, 0x00, 0x00, 0x0a]);
  t.equal(crc16(body), 0xcdc5);
  t.same([...rtuRequest(req)], [0x01, 0x03, 0x00, 0x00, 0x00, 0x0a, 0xc5, 0xcd], 'request 01 03 00 00 00 0A ends C5 CD');
  t.same([...withCrc(Buffer.from([0x01, 0x03, 0x00, 0x00, 0x00, 0x01]))].slice(-2), [0x84, 0x0a], '01 03 00 00 00 01 -> 84 0A');
  t.equal(crc16(Buffer.from('123456789')), 0x4b37, 'the CRC catalogue check value');
  t.equal(crc16(body, 0, 0), 0xffff, 'empty range is the initial value');
  t.equal(crc16(Buffer.concat([Buffer.from([9, 9]), body]), 2), 0xcdc5, 'start offset');
});

t.test('request and response round trips', async (t) => {
  const r = parseRtuRequest(rtuRequest(req));
  t.same(r, { ok: true, unit: 1, fn: 3, pdu: readPdu(req) });
  t.equal(rtuRequestLength(rtuRequest(req)), 8);
  t.equal(rtuRequestLength(Buffer.from([1, 16, 0, 0, 0, 2, 4])), 13, 'fn 16: 9 + byte count');
  t.equal(rtuRequestLength(Buffer.from([1, 16, 0])), undefined, 'fn 16 before its byte count');
  t.equal(rtuRequestLength(Buffer.from([1])), undefined);

  const regs = Array.from({ length: 10 }, (_, i) => i * 1000 + 7);
  const frame = response(1, 3, regData(regs));
  t.equal(frame.length, rtuResponseLength(req));
  const p = parseRtuResponse(req, frame);
  t.ok(p.ok, 'ok');
  if (p.ok) t.same(registers(p.data), regs, 'registers survive');

  const coils: ReadRequest = { unit: 7, fn: 1, address: 100, count: 10 };
  t.equal(dataBytes(coils), 2);
  const c = parseRtuResponse(coils, response(7, 1, [0b1010_0101, 0b10]));
  t.ok(c.ok);
  if (c.ok) t.same(bits(c.data, 10), [true, false, true, false, false, true, false, true, false, true], 'bits LSB first');
  const input = parseRtuResponse({ unit: 2, fn: 4, address: 0, count: 1 }, response(2, 4, [0x12, 0x34]));
  t.ok(input.ok && registers(input.data)[0] === 0x1234, 'fn 4');
  t.equal(FN.READ_HOLDING, 3);
});

t.test('every FrameError kind', async (t) => {
  const good = response(1, 3, regData(new Array(10).fill(0)));
  const flipped = Buffer.from(good);
  flipped[5] ^= 0x01;
  t.match(parseRtuResponse(req, flipped), { ok: false, error: 'crc' }, 'a flipped bit');
  t.match(parseRtuResponse(req, good.subarray(0, good.length - 1)), { ok: false, error: 'crc' }, 'a lost byte fails the CRC');
  t.match(parseRtuResponse(req, response(2, 3, regData(new Array(10).fill(0)))), { ok: false, error: 'wrong_unit' });
  t.match(parseRtuResponse(req, response(1, 4, regData(new Array(10).fill(0)))), { ok: false, error: 'wrong_function' });
  t.match(parseRtuResponse(req, response(1, 3, regData(new Array(9).fill(0)))), { ok: false, error: 'byte_count', detail: /byte count 18, expected 20/ });
  t.match(parseRtuResponse(req, response(1, 3, [1, 2, 3], 20)), { ok: false, error: 'truncated', detail: /3 data bytes, expected 20/ }, 'byte count right, data short');
  t.match(parseRtuResponse(req, Buffer.from([1, 3, 0])), { ok: false, error: 'truncated' }, 'under 5 bytes');
  t.match(parseRtuResponse(req, Buffer.alloc(0)), { ok: false, error: 'truncated' });
  t.match(parseRtuResponse(req, rtuFrame(1, Buffer.from([3]))), { ok: false, error: 'truncated' }, 'PDU of one byte');
  t.match(parseRtuRequest(Buffer.from([1, 3, 0])), { ok: false, error: 'truncated' });
  const badReq = rtuRequest(req);
  badReq[7] ^= 0xff;
  t.match(parseRtuRequest(badReq), { ok: false, error: 'crc' });
});

t.test('exception responses', async (t) => {
  t.same(parseRtuResponse(req, rtuFrame(1, exceptionPdu(3, 2))), { ok: false, exception: 2 }, 'illegal data address');
  t.same(parseRtuResponse(req, rtuFrame(1, exceptionPdu(3, 0x0b))), { ok: false, exception: 0x0b }, 'gateway target failed');
  t.match(parseRtuResponse(req, rtuFrame(1, Buffer.from([0x83, 2, 0]))), { ok: false, error: 'byte_count' }, 'exception PDU of 3 bytes');
  t.match(parseRtuResponse(req, rtuFrame(1, exceptionPdu(4, 2))), { ok: false, error: 'wrong_function' }, 'exception for another function');
  t.match(parseRtuResponse(req, rtuFrame(2, exceptionPdu(3, 2))), { ok: false, error: 'wrong_unit' });
  t.same([...exceptionPdu(1, 1)], [0x81, 1]);
});

t.test('t3.5 and line time', async (t) => {
  t.ok(Math.abs(t35Ms(9600) - 4.0104) < 0.001, `t35Ms(9600) = ${t35Ms(9600)}`);
  t.equal(t35Ms(115200), 1.75);
  t.equal(t35Ms(38400), 1.75, 'fixed above 19200');
  t.ok(Math.abs(t35Ms(19200) - 2.005) < 0.001, '19200 still computed');
  t.ok(Math.abs(t35Ms(9600, 10) - 3.6458) < 0.001, '10 bits per character (no parity, 1 stop)');
});

t.test('takeTcpFrames: partial, multiple, bad header', async (t) => {
  const a = tcpFrame(1, 5, readPdu({ fn: 3, address: 0, count: 2 }));
  const b = tcpFrame(0x10002, 6, Buffer.from([3, 4, 0, 1, 0, 2]));
  const c = tcpFrame(3, 7, Buffer.from([0x83, 2]));
  t.equal(a.readUInt16BE(4), 6, 'MBAP length = unit + PDU');
  const stream = Buffer.concat([a, b, c]);
  const first = takeTcpFrames(stream.subarray(0, a.length + b.length + 4));
  t.same(first.frames.map((f) => [f.transaction, f.unit, [...f.pdu]]), [[1, 5, [3, 0, 0, 0, 2]], [2, 6, [3, 4, 0, 1, 0, 2]]], 'two whole frames; transaction wraps at 16 bits');
  t.same([...first.rest], [...c.subarray(0, 4)], 'a partial header stays');
  t.equal(first.error, undefined);
  const second = takeTcpFrames(Buffer.concat([first.rest, c.subarray(4, 8)]));
  t.same(second.frames, [], 'header complete, PDU not yet');
  t.equal(second.rest.length, 8);
  const third = takeTcpFrames(Buffer.concat([second.rest, c.subarray(8)]));
  t.same(third.frames.map((f) => [...f.pdu]), [[0x83, 2]]);
  t.equal(third.rest.length, 0);

  const badProto = Buffer.from(a);
  badProto.writeUInt16BE(1, 2);
  const r = takeTcpFrames(Buffer.concat([b, badProto, c]));
  t.equal(r.frames.length, 1, 'frames before the bad header are kept');
  t.match(r.error, /bad MBAP header \(protocol 1, length 6\)/);
  t.equal(r.rest.length, 0, 'the stream is dropped after a bad header');
  for (const len of [0, 1, 255, 0xffff]) {
    const h = Buffer.from(a);
    h.writeUInt16BE(len, 4);
    t.match(takeTcpFrames(h).error, /bad MBAP header/, `length ${len}`);
  }
  t.same(takeTcpFrames(Buffer.alloc(0)), { frames: [], rest: Buffer.alloc(0) });
});

t.test('fuzz: 20,000 random buffers never throw, never pass a wrong CRC', async (t) => {
  const rand = mulberry32(0x5eed);
  const byte = () => Math.floor(rand() * 256);
  let ok = 0;
  let exceptions = 0;
  let wrongCrc = 0;
  let failures = 0;
  for (let i = 0; i < 20000; i++) {
    const len = Math.floor(rand() * 301);
    let buf: Buffer = Buffer.from(Array.from({ length: len }, byte));
    const fuzzReq: ReadRequest = { unit: 1 + Math.floor(rand() * 3), fn: (1 + Math.floor(rand() * 4)) as 1 | 2 | 3 | 4, address: 0, count: 1 + Math.floor(rand() * 4) };
    const kind = rand();
    if (kind < 0.25 && len >= 3) buf = withCrc(buf.subarray(0, len - 2)); // a valid CRC over garbage
    else if (kind < 0.4) {
      // a plausible response, sometimes mangled
      const data = Array.from({ length: dataBytes(fuzzReq) }, byte);
      buf = response(rand() < 0.8 ? fuzzReq.unit : byte(), rand() < 0.9 ? fuzzReq.fn : byte(), data, rand() < 0.9 ? data.length : byte());
      if (rand() < 0.3) buf[Math.floor(rand() * buf.length)] ^= 1 << Math.floor(rand() * 8);
    } else if (kind < 0.45) {
      // an exception response, sometimes mangled
      buf = rtuFrame(fuzzReq.unit, exceptionPdu(rand() < 0.9 ? fuzzReq.fn : byte(), byte()));
      if (rand() < 0.3) buf[Math.floor(rand() * buf.length)] ^= 1 << Math.floor(rand() * 8);
    }
    const crcOk = buf.length >= 2 && crc16(buf, 0, buf.length - 2) === buf.readUInt16LE(buf.length - 2);
    if (!crcOk) wrongCrc++;
    try {
      const r = parseRtuResponse(fuzzReq, buf);
      if (r.ok) {
        ok++;
        if (!crcOk) t.fail(`response ok with a wrong CRC: ${buf.toString('hex')}`);
        if (r.data.length !== dataBytes(fuzzReq) || buf[0] !== fuzzReq.unit) t.fail(`ok but inconsistent: ${buf.toString('hex')}`);
      } else if ('exception' in r) {
        exceptions++;
        if (!crcOk) t.fail(`exception with a wrong CRC: ${buf.toString('hex')}`);
      }
      const q = parseRtuRequest(buf);
      if (q.ok && !crcOk) t.fail(`request ok with a wrong CRC: ${buf.toString('hex')}`);
      const tcp = takeTcpFrames(buf);
      let consumed = 0;
      for (const f of tcp.frames) consumed += 7 + f.pdu.length;
      if (!tcp.error && consumed + tcp.rest.length !== buf.length) t.fail(`TCP bytes lost: ${buf.toString('hex')}`);
    } catch (e) {
      failures++;
      t.fail(`threw on ${buf.toString('hex')}: ${(e as Error).message}`);
    }
  }
  t.equal(failures, 0, 'nothing threw');
  t.ok(ok > 500, `valid responses were exercised (${ok} ok)`);
  t.ok(exceptions > 300, `exception responses were exercised (${exceptions})`);
  t.ok(wrongCrc > 5000, `wrong CRCs were exercised (${wrongCrc})`);
});
