/**
 * Modbus PDUs and framing, shared by the RTU master, the TCP client and the simulators.
 * Pure: no I/O. Every parse is strict and says exactly why a frame is refused, so the bus can
 * count malformed frames by kind and drop them without losing its place.
 *
 * RTU ADU: unit(1) PDU CRC16(2, little-endian). TCP ADU: MBAP (transaction(2) protocol 0(2)
 * length(2) unit(1)) PDU. Functions supported: 01, 02 (bits), 03, 04 (registers), 05, 06
 * (single write), 16 (multiple registers).
 */

export const FN = { READ_COILS: 1, READ_DISCRETE: 2, READ_HOLDING: 3, READ_INPUT: 4, WRITE_COIL: 5, WRITE_REGISTER: 6, WRITE_REGISTERS: 16 } as const;
export const MAX_READ_REGISTERS = 125;
export const MAX_READ_BITS = 2000;

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF). */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]) & 0xff];
  return crc;
}

export function withCrc(body: Buffer): Buffer {
  const out = Buffer.alloc(body.length + 2);
  body.copy(out);
  out.writeUInt16LE(crc16(body), body.length);
  return out;
}

/** Silent interval between RTU frames: 3.5 characters, fixed at 1.75 ms above 19200 baud. */
export function t35Ms(baud: number, bitsPerChar = 11): number {
  return baud > 19200 ? 1.75 : (3.5 * bitsPerChar * 1000) / baud;
}

/** Time to put n bytes on the line. */
export function lineMs(bytes: number, baud: number, bitsPerChar = 11): number {
  return (bytes * bitsPerChar * 1000) / baud;
}

export interface ReadRequest {
  unit: number;
  fn: 1 | 2 | 3 | 4;
  address: number;
  count: number;
}

/** A read request PDU (function, address, count). */
export function readPdu(r: Omit<ReadRequest, 'unit'>): Buffer {
  const b = Buffer.alloc(5);
  b[0] = r.fn;
  b.writeUInt16BE(r.address, 1);
  b.writeUInt16BE(r.count, 3);
  return b;
}

export function rtuRequest(r: ReadRequest): Buffer {
  return withCrc(Buffer.concat([Buffer.from([r.unit]), readPdu(r)]));
}

/** Bytes of the normal RTU response to a read: unit, fn, byteCount, data, CRC. */
export function rtuResponseLength(r: Omit<ReadRequest, 'unit'>): number {
  return 5 + dataBytes(r);
}

export function dataBytes(r: Omit<ReadRequest, 'unit'>): number {
  return r.fn === 3 || r.fn === 4 ? r.count * 2 : Math.ceil(r.count / 8);
}

export type FrameError = 'crc' | 'wrong_unit' | 'wrong_function' | 'byte_count' | 'truncated' | 'garbage';

export type ParsedResponse =
  | { ok: true; data: Buffer }
  | { ok: false; exception: number }
  | { ok: false; error: FrameError; detail: string };

/**
 * Checks an RTU response to `req` held at the start of `buf` (exactly one frame, as delimited by
 * the t3.5 silence). Returns the data bytes, the exception code, or why the frame is refused.
 */
export function parseRtuResponse(req: ReadRequest, buf: Buffer): ParsedResponse {
  if (buf.length < 5) return { ok: false, error: 'truncated', detail: `${buf.length} bytes` };
  if (crc16(buf, 0, buf.length - 2) !== buf.readUInt16LE(buf.length - 2)) {
    return { ok: false, error: 'crc', detail: `CRC mismatch over ${buf.length} bytes` };
  }
  if (buf[0] !== req.unit) return { ok: false, error: 'wrong_unit', detail: `unit ${buf[0]}, asked ${req.unit}` };
  return parsePdu(req, buf.subarray(1, buf.length - 2));
}

/** Checks a response PDU (function onwards) against the request. */
export function parsePdu(req: Omit<ReadRequest, 'unit'>, pdu: Buffer): ParsedResponse {
  if (pdu.length < 2) return { ok: false, error: 'truncated', detail: `PDU of ${pdu.length} bytes` };
  const fn = pdu[0];
  if (fn === (req.fn | 0x80)) {
    if (pdu.length !== 2) return { ok: false, error: 'byte_count', detail: `exception PDU of ${pdu.length} bytes` };
    return { ok: false, exception: pdu[1] };
  }
  if (fn !== req.fn) return { ok: false, error: 'wrong_function', detail: `function ${fn}, asked ${req.fn}` };
  const want = dataBytes(req);
  if (pdu[1] !== want) return { ok: false, error: 'byte_count', detail: `byte count ${pdu[1]}, expected ${want}` };
  if (pdu.length !== 2 + want) return { ok: false, error: 'truncated', detail: `${pdu.length - 2} data bytes, expected ${want}` };
  return { ok: true, data: pdu.subarray(2) };
}

/** Registers (big-endian 16-bit words) from response data. */
export function registers(data: Buffer): number[] {
  const out = new Array<number>(data.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = data.readUInt16BE(i * 2);
  return out;
}

/** Bits (LSB first per byte) from response data. */
export function bits(data: Buffer, count: number): boolean[] {
  const out = new Array<boolean>(count);
  for (let i = 0; i < count; i++) out[i] = ((data[i >> 3] >> (i & 7)) & 1) === 1;
  return out;
}

// --- the server side (simulators) ---------------------------------------------------------

export type ParsedRequest =
  | { ok: true; unit: number; fn: number; pdu: Buffer }
  | { ok: false; error: FrameError; detail: string };

/** Request frames have a length fixed by their function; returns it, or undefined if unknown yet. */
export function rtuRequestLength(buf: Buffer): number | undefined {
  if (buf.length < 2) return undefined;
  const fn = buf[1];
  if (fn >= 1 && fn <= 6) return 8;
  if (fn === 15 || fn === 16) return buf.length < 7 ? undefined : 9 + buf[6];
  return undefined;
}

export function parseRtuRequest(buf: Buffer): ParsedRequest {
  if (buf.length < 4) return { ok: false, error: 'truncated', detail: `${buf.length} bytes` };
  if (crc16(buf, 0, buf.length - 2) !== buf.readUInt16LE(buf.length - 2)) return { ok: false, error: 'crc', detail: 'CRC mismatch' };
  const want = rtuRequestLength(buf);
  if (want !== undefined && want !== buf.length) return { ok: false, error: 'byte_count', detail: `${buf.length} bytes for function ${buf[1]}, expected ${want}` };
  return { ok: true, unit: buf[0], fn: buf[1], pdu: buf.subarray(1, buf.length - 2) };
}

export function exceptionPdu(fn: number, code: number): Buffer {
  return Buffer.from([fn | 0x80, code]);
}

export function rtuFrame(unit: number, pdu: Buffer): Buffer {
  return withCrc(Buffer.concat([Buffer.from([unit]), pdu]));
}

/** MBAP-framed ADU for Modbus TCP. */
export function tcpFrame(transaction: number, unit: number, pdu: Buffer): Buffer {
  const h = Buffer.alloc(7);
  h.writeUInt16BE(transaction & 0xffff, 0);
  h.writeUInt16BE(0, 2);
  h.writeUInt16BE(pdu.length + 1, 4);
  h[6] = unit;
  return Buffer.concat([h, pdu]);
}

/**
 * Splits complete MBAP frames off the front of a TCP stream buffer. After a bad header the
 * stream cannot be resynchronised (MBAP has no frame delimiter): `error` is set, the rest is
 * discarded, and the caller closes the connection.
 */
export function takeTcpFrames(buf: Buffer): { frames: { transaction: number; unit: number; pdu: Buffer }[]; rest: Buffer; error?: string } {
  const frames: { transaction: number; unit: number; pdu: Buffer }[] = [];
  let off = 0;
  while (buf.length - off >= 7) {
    const proto = buf.readUInt16BE(off + 2);
    const len = buf.readUInt16BE(off + 4);
    if (proto !== 0 || len < 2 || len > 254) return { frames, rest: Buffer.alloc(0), error: `bad MBAP header (protocol ${proto}, length ${len})` };
    if (buf.length - off < 6 + len) break;
    frames.push({ transaction: buf.readUInt16BE(off), unit: buf[off + 6], pdu: buf.subarray(off + 7, off + 6 + len) });
    off += 6 + len;
  }
  return { frames, rest: buf.subarray(off) };
}
