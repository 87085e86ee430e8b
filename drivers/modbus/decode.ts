/**
 * Registers to values and back. Pure: no I/O, and decoding never throws.
 *
 * Every multi-register value is first put into one canonical byte string, most significant byte
 * first, and read with a DataView; wordOrder and byteOrder only say how the wire registers map
 * onto that string (wordOrder 'little': the last register holds the most significant word;
 * byteOrder 'little': the two bytes of each register are swapped). Strings are character
 * sequences, not numbers, so they honour byteOrder (some devices swap each character pair) and
 * ignore wordOrder. Encoding runs the same mapping backwards, which is what makes the round trip
 * in the tests exact for every type x order.
 *
 * A reading is {value, quality}: 'good'; 'not_implemented' when the point is flagged
 * notImplemented: 'sunspec' and the raw value is the SunSpec sentinel of its type (int16 0x8000,
 * uint16 0xFFFF, int32 0x80000000, uint32 0xFFFFFFFF, int64 0x8000..., uint64 0xFFFF...,
 * float32/float64 any NaN, a string of all-zero registers) or its scale factor is 0x8000; 'bad'
 * when the registers cannot give a number (too few, not 16-bit, NaN/Inf without the SunSpec flag,
 * a scale factor outside SunSpec's -10..10, or a point with a scaleFactor decoded without one:
 * a value off by powers of ten is worse than none). Sentinels and bad readings have value null:
 * they must never travel as numbers. SunSpec acc32 counters (mapped to uint32) use 0 for "not
 * accumulated", which cannot be told from a real 0 and is reported as 0.
 *
 * int64/uint64 are read as BigInt and converted with Number(): above 2^53 the result is the
 * nearest double (spacing 2^(e-52), e.g. up to 2048 off near 2^64). Energy counters stay exact
 * up to 9.007e15 Wh, which no field device reaches; nothing throws for larger values.
 *
 * value = raw * (scale ?? 1) * 10^sf + (offset ?? 0). A negative sf divides by 10^-sf (2305 /
 * 10 is exactly 230.5, 2305 * 0.1 is not) and a scaled result is rounded to 15 significant
 * digits, the precision a double carries, so scale 0.1 does not publish 230.50000000000003.
 */
import type { ByteOrder, DataType, PointDef, ReadPlanItem, WordOrder } from './types.js';

export type Quality = 'good' | 'not_implemented' | 'bad';
export type PointValue = number | string | boolean | null;
export interface Decoded {
  value: PointValue;
  quality: Quality;
}

const WIDTH: Record<Exclude<DataType, 'string'>, number> = { int16: 1, uint16: 1, bool: 1, int32: 2, uint32: 2, float32: 2, int64: 4, uint64: 4, float64: 4 };
const BAD: Decoded = Object.freeze({ value: null, quality: 'bad' }) as Decoded;
const NOT_IMPLEMENTED: Decoded = Object.freeze({ value: null, quality: 'not_implemented' }) as Decoded;
const good = (value: PointValue): Decoded => ({ value, quality: 'good' });

/** Registers a point occupies (string: its declared length, 0 when missing). */
export function registerCount(p: Pick<PointDef, 'type' | 'length'>): number {
  if (p.type === 'string') return p.length ?? 0;
  return WIDTH[p.type] ?? 0;
}

/** Wire registers to the value's bytes, most significant first; null if a register is not 16-bit. */
function toCanonical(regs: readonly number[], n: number, wordOrder: WordOrder, byteOrder: ByteOrder): Uint8Array | null {
  const out = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    const r = regs[wordOrder === 'little' ? n - 1 - i : i];
    if (!Number.isInteger(r) || r < 0 || r > 0xffff) return null;
    out[2 * i] = byteOrder === 'little' ? r & 0xff : r >>> 8;
    out[2 * i + 1] = byteOrder === 'little' ? r >>> 8 : r & 0xff;
  }
  return out;
}

/** The inverse of toCanonical. */
function fromCanonical(bytes: Uint8Array, wordOrder: WordOrder, byteOrder: ByteOrder): number[] {
  const n = bytes.length >> 1;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const hi = bytes[2 * i];
    const lo = bytes[2 * i + 1];
    out[wordOrder === 'little' ? n - 1 - i : i] = byteOrder === 'little' ? (lo << 8) | hi : (hi << 8) | lo;
  }
  return out;
}

const orders = (p: PointDef): [WordOrder, ByteOrder] => [p.type === 'string' ? 'big' : (p.wordOrder ?? 'big'), p.byteOrder ?? 'big'];

/** ASCII: cut at the first NUL (SunSpec strings are NUL-terminated unless full), trailing spaces trimmed, non-printables as '?'. */
function ascii(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) {
    if (b === 0) break;
    s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?';
  }
  return s.replace(/ +$/, '');
}

/**
 * Decodes the registers of one point (regs[0] is the register at p.address). `sf` is the value of
 * the point's SunSpec scale factor: the decoded int16, null when that point was not implemented,
 * or the raw register (0x8000 means not implemented either way).
 */
export function decodePoint(p: PointDef, regs: readonly number[], sf?: number | null): Decoded {
  const n = registerCount(p);
  if (n < 1 || regs.length < n) return BAD;
  const [wo, bo] = orders(p);
  const bytes = toCanonical(regs, n, wo, bo);
  if (!bytes) return BAD;
  const sunspec = p.notImplemented === 'sunspec';
  if (p.type === 'string') return sunspec && bytes.every((b) => b === 0) ? NOT_IMPLEMENTED : good(ascii(bytes));
  if (p.type === 'bool') return good(bytes[0] !== 0 || bytes[1] !== 0);
  const dv = new DataView(bytes.buffer);
  let raw: number;
  switch (p.type) {
    case 'int16':
      raw = dv.getInt16(0);
      if (sunspec && raw === -0x8000) return NOT_IMPLEMENTED;
      break;
    case 'uint16':
      raw = dv.getUint16(0);
      if (sunspec && raw === 0xffff) return NOT_IMPLEMENTED;
      break;
    case 'int32':
      raw = dv.getInt32(0);
      if (sunspec && raw === -0x80000000) return NOT_IMPLEMENTED;
      break;
    case 'uint32':
      raw = dv.getUint32(0);
      if (sunspec && raw === 0xffffffff) return NOT_IMPLEMENTED;
      break;
    case 'int64': {
      const v = dv.getBigInt64(0);
      if (sunspec && v === -(1n << 63n)) return NOT_IMPLEMENTED;
      raw = Number(v); // nearest double beyond 2^53, see the header
      break;
    }
    case 'uint64': {
      const v = dv.getBigUint64(0);
      if (sunspec && v === 0xffffffffffffffffn) return NOT_IMPLEMENTED;
      raw = Number(v);
      break;
    }
    case 'float32':
    case 'float64':
      raw = p.type === 'float32' ? dv.getFloat32(0) : dv.getFloat64(0);
      if (Number.isNaN(raw)) return sunspec ? NOT_IMPLEMENTED : BAD;
      if (!Number.isFinite(raw)) return BAD;
      break;
    default:
      return BAD;
  }
  return scaled(p, raw, sf);
}

function scaled(p: PointDef, raw: number, sf: number | null | undefined): Decoded {
  let exp = 0;
  if (sf !== undefined) {
    if (sf === null || sf === -0x8000 || sf === 0x8000) return NOT_IMPLEMENTED;
    if (!Number.isInteger(sf) || sf < -10 || sf > 10) return BAD;
    exp = sf;
  } else if (p.scaleFactor !== undefined) {
    return BAD;
  }
  const scale = p.scale ?? 1;
  const offset = p.offset ?? 0;
  if (scale === 1 && exp === 0 && offset === 0) return good(raw);
  let v = raw * scale;
  v = exp < 0 ? v / 10 ** -exp : v * 10 ** exp;
  v += offset;
  if (!Number.isFinite(v)) return BAD;
  v = Number(v.toPrecision(15));
  return good(v === 0 ? 0 : v);
}

/** A coil or discrete input (accepts the bit as boolean or 0/1). */
export function decodeBit(_p: PointDef, bit: boolean | number | undefined): Decoded {
  if (typeof bit === 'boolean') return good(bit);
  if (bit === 0 || bit === 1) return good(bit === 1);
  return BAD;
}

/**
 * Decodes every point of one completed read. Scale factors are looked up first among the item's
 * own points (SunSpec places them next to their values), then in `scaleFactors` (values kept
 * from earlier reads, null when not implemented).
 */
export function decodeItem(
  item: ReadPlanItem,
  data: { registers?: readonly number[]; bits?: readonly boolean[] },
  scaleFactors?: ReadonlyMap<string, number | null>,
): Map<string, Decoded> {
  const out = new Map<string, Decoded>();
  const bitKind = item.kind === 'coil' || item.kind === 'discrete';
  const one = (p: PointDef, sf?: number | null): Decoded => {
    const at = p.address - item.address;
    if (at < 0) return BAD;
    if (bitKind) return decodeBit(p, data.bits?.[at]);
    return data.registers ? decodePoint(p, data.registers.slice(at, at + registerCount(p)), sf) : BAD;
  };
  const byName = new Map(item.points.map((p) => [p.name, p]));
  const sfOf = (name: string): number | null | undefined => {
    const local = byName.get(name);
    if (local) {
      const d = out.get(name) ?? one(local);
      out.set(name, d);
      if (d.quality === 'not_implemented') return null;
      return typeof d.value === 'number' ? d.value : undefined;
    }
    return scaleFactors?.get(name);
  };
  for (const p of item.points) {
    if (out.has(p.name)) continue;
    out.set(p.name, p.scaleFactor === undefined ? one(p) : one(p, sfOf(p.scaleFactor)));
  }
  return out;
}

const INT_RANGE: Partial<Record<DataType, [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

/** The SunSpec "not implemented" pattern of a type, as canonical bytes. */
function sentinel(type: DataType, n: number): Uint8Array {
  const b = new Uint8Array(n * 2);
  const dv = new DataView(b.buffer);
  if (type === 'int16' || type === 'int32' || type === 'int64') b[0] = 0x80;
  else if (type === 'uint16' || type === 'uint32' || type === 'uint64') b.fill(0xff);
  else if (type === 'float32') dv.setUint32(0, 0x7fc00000);
  else if (type === 'float64') dv.setFloat64(0, NaN);
  else if (type === 'bool') throw new RangeError('bool has no not-implemented value');
  return b; // string: all zero
}

/**
 * The registers a device would hold for `value` (the inverse of decodePoint, for simulators and
 * tests): undoes offset, scale and 10^sf, rounds integer types, applies word and byte order.
 * null encodes the SunSpec not-implemented sentinel of the type. Throws RangeError for a value
 * the type cannot hold (encoding is never on the polling path).
 */
export function encodeValue(p: PointDef, value: number | bigint | string | boolean | null, sf = 0): number[] {
  const n = registerCount(p);
  if (n < 1) throw new RangeError(`${p.name}: no register length`);
  const [wo, bo] = orders(p);
  if (value === null) return fromCanonical(sentinel(p.type, n), wo, bo);
  const bytes = new Uint8Array(n * 2);
  const dv = new DataView(bytes.buffer);
  if (p.type === 'string') {
    if (typeof value !== 'string' || value.length > n * 2 || [...value].some((c) => c.charCodeAt(0) > 0x7f)) throw new RangeError(`${p.name}: not an ASCII string of at most ${n * 2} characters`);
    for (let i = 0; i < value.length; i++) bytes[i] = value.charCodeAt(i);
    return fromCanonical(bytes, wo, bo);
  }
  if (p.type === 'bool') {
    dv.setUint16(0, value === true || value === 1 ? 1 : 0);
    return fromCanonical(bytes, wo, bo);
  }
  const scale = p.scale ?? 1;
  const offset = p.offset ?? 0;
  const unscaled = typeof value === 'bigint' && scale === 1 && offset === 0 && sf === 0;
  if (!unscaled && typeof value !== 'number' && typeof value !== 'bigint') throw new RangeError(`${p.name}: ${p.type} needs a number`);
  let x = typeof value === 'bigint' ? Number(value) : (value as number);
  if (!unscaled) {
    x = (x - offset) / scale;
    x = sf < 0 ? x * 10 ** -sf : x / 10 ** sf;
  }
  const range = INT_RANGE[p.type];
  if (p.type === 'float32') dv.setFloat32(0, x);
  else if (p.type === 'float64') dv.setFloat64(0, x);
  else if (range) {
    const r = Math.round(x);
    if (!(r >= range[0] && r <= range[1])) throw new RangeError(`${p.name}: ${value} does not fit ${p.type}`);
    if (n === 1) dv.setUint16(0, r & 0xffff);
    else dv.setUint32(0, r >>> 0);
  } else {
    if (!unscaled && !Number.isFinite(x)) throw new RangeError(`${p.name}: ${value} does not fit ${p.type}`);
    const big = unscaled ? (value as bigint) : BigInt(Math.round(x));
    const ok = p.type === 'int64' ? big >= -(1n << 63n) && big < 1n << 63n : big >= 0n && big < 1n << 64n;
    if (!ok) throw new RangeError(`${p.name}: ${value} does not fit ${p.type}`);
    if (p.type === 'int64') dv.setBigInt64(0, big);
    else dv.setBigUint64(0, big);
  }
  return fromCanonical(bytes, wo, bo);
}
