/**
 * Register decoding (drivers/modbus/decode.ts): every type x word order x byte order round-trips
 * through encodeValue; known wire vectors pin the orders (a round trip alone would pass with both
 * directions equally wrong); every SunSpec not-implemented sentinel reads as null, never a number;
 * scale factors, strings, bits, and the documented uint64 precision loss.
 */
import t from 'tap';
import { decodeBit, decodeItem, decodePoint, encodeValue, registerCount } from '../drivers/modbus/decode.js';
import type { ByteOrder, DataType, PointDef, WordOrder } from '../drivers/modbus/types.js';

const pt = (type: DataType, over: Partial<PointDef> = {}): PointDef => ({ name: 'p', kind: 'holding', address: 0, type, ...(type === 'string' ? { length: 8 } : {}), ...over });
const hex = (regs: number[]) => regs.map((r) => r.toString(16).padStart(4, '0'));

const SAMPLES: Record<DataType, (number | string | boolean)[]> = {
  int16: [0, 1, -1, 0x7fff, -0x7fff, -0x8000],
  uint16: [0, 1, 0x1234, 0xffff],
  int32: [0, -2, 0x12345678, -0x7fffffff, 0x7fffffff],
  uint32: [0, 1, 0xdeadbeef, 0xffffffff],
  int64: [0, -1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0x123456789a],
  uint64: [0, 1, Number.MAX_SAFE_INTEGER, 0x123456789abc],
  float32: [0, 230.5, -1.5, Math.fround(0.1), Math.fround(3.0e38)],
  float64: [0, Math.PI, -1e300, 5e-324],
  string: ['', 'A', 'AB', 'Holdfast', 'SunSpec 1.0 edge'],
  bool: [true, false],
};
const ORDERS: [WordOrder, ByteOrder][] = [['big', 'big'], ['big', 'little'], ['little', 'big'], ['little', 'little']];

t.test('register counts', async (t) => {
  const rows: [DataType, number][] = [['int16', 1], ['uint16', 1], ['bool', 1], ['int32', 2], ['uint32', 2], ['float32', 2], ['int64', 4], ['uint64', 4], ['float64', 4]];
  for (const [type, n] of rows) t.equal(registerCount({ type }), n, type);
  t.equal(registerCount({ type: 'string', length: 7 }), 7, 'string = length');
  t.equal(registerCount({ type: 'string' }), 0, 'string without length');
});

t.test('every type x word order x byte order round-trips', async (t) => {
  for (const type of Object.keys(SAMPLES) as DataType[]) {
    for (const [wordOrder, byteOrder] of ORDERS) {
      for (const v of SAMPLES[type]) {
        const p = pt(type, { wordOrder, byteOrder });
        const regs = encodeValue(p, v);
        t.equal(regs.length, registerCount(p), `${type} ${wordOrder}/${byteOrder} ${v}: register count`);
        t.ok(regs.every((r) => Number.isInteger(r) && r >= 0 && r <= 0xffff), 'all 16-bit');
        t.same(decodePoint(p, regs), { value: v, quality: 'good' }, `${type} ${wordOrder}/${byteOrder} ${JSON.stringify(v)}`);
      }
    }
  }
});

t.test('known wire vectors', async (t) => {
  const rows: [string, PointDef, number | bigint | string, number[]][] = [
    ['float32 230.5', pt('float32'), 230.5, [0x4366, 0x8000]],
    ['float32 230.5 little words', pt('float32', { wordOrder: 'little' }), 230.5, [0x8000, 0x4366]],
    ['float32 230.5 little bytes', pt('float32', { byteOrder: 'little' }), 230.5, [0x6643, 0x0080]],
    ['float32 230.5 little/little', pt('float32', { wordOrder: 'little', byteOrder: 'little' }), 230.5, [0x0080, 0x6643]],
    ['int32 -2', pt('int32'), -2, [0xffff, 0xfffe]],
    ['int32 -2 little words', pt('int32', { wordOrder: 'little' }), -2, [0xfffe, 0xffff]],
    ['uint32 0x12345678', pt('uint32'), 0x12345678, [0x1234, 0x5678]],
    ['uint32 little words', pt('uint32', { wordOrder: 'little' }), 0x12345678, [0x5678, 0x1234]],
    ['uint32 little bytes', pt('uint32', { byteOrder: 'little' }), 0x12345678, [0x3412, 0x7856]],
    ['int16 -1', pt('int16'), -1, [0xffff]],
    ['uint16 little bytes', pt('uint16', { byteOrder: 'little' }), 0x1234, [0x3412]],
    ['uint16 ignores word order', pt('uint16', { wordOrder: 'little' }), 0x1234, [0x1234]],
    ['uint64', pt('uint64'), 0x0102030405060708n, [0x0102, 0x0304, 0x0506, 0x0708]],
    ['uint64 little words', pt('uint64', { wordOrder: 'little' }), 0x0102030405060708n, [0x0708, 0x0506, 0x0304, 0x0102]],
    ['int64 -2', pt('int64'), -2, [0xffff, 0xffff, 0xffff, 0xfffe]],
    ['float64 1.0', pt('float64'), 1, [0x3ff0, 0, 0, 0]],
    ['string SunS', pt('string', { length: 2 }), 'SunS', [0x5375, 0x6e53]],
    ['string SunS swapped bytes', pt('string', { length: 2, byteOrder: 'little' }), 'SunS', [0x7553, 0x536e]],
    ['string ignores word order', pt('string', { length: 2, wordOrder: 'little' }), 'SunS', [0x5375, 0x6e53]],
    ['string padded with NUL', pt('string', { length: 3 }), 'Abc', [0x4162, 0x6300, 0]],
  ];
  for (const [name, p, v, regs] of rows) {
    t.same(hex(encodeValue(p, v)), hex(regs), `encode ${name}`);
    const d = decodePoint(p, regs);
    t.equal(d.quality, 'good', `decode ${name}`);
    t.equal(d.value, typeof v === 'bigint' ? Number(v) : v, `decode ${name}`);
  }
  t.same(decodePoint(pt('bool'), [0x0100]), { value: true, quality: 'good' }, 'bool: any non-zero register');
  t.same(decodePoint(pt('bool'), [0]), { value: false, quality: 'good' });
});

t.test('strings: ASCII, cut at NUL, trailing spaces trimmed', async (t) => {
  const p = pt('string', { length: 4 });
  t.equal(decodePoint(p, [0x4142, 0x2020, 0x2000, 0]).value, 'AB', 'spaces then NULs');
  t.equal(decodePoint(p, [0x2041, 0x0042, 0x4344, 0x4546]).value, ' A', 'cut at the first NUL, leading space kept');
  t.equal(decodePoint(p, [0x41ff, 0x0142, 0, 0]).value, 'A??B', 'non-printables shown as ?');
  t.equal(decodePoint(p, [0, 0, 0, 0]).value, '', 'all zero without the SunSpec flag is an empty string');
  t.throws(() => encodeValue(p, 'way too long for it'), RangeError);
  t.throws(() => encodeValue(p, 'é'), RangeError);
});

t.test('SunSpec not-implemented sentinels are null, never numbers', async (t) => {
  const rows: [DataType, number[]][] = [
    ['int16', [0x8000]],
    ['uint16', [0xffff]],
    ['int32', [0x8000, 0]],
    ['uint32', [0xffff, 0xffff]],
    ['int64', [0x8000, 0, 0, 0]],
    ['uint64', [0xffff, 0xffff, 0xffff, 0xffff]],
    ['float32', [0x7fc0, 0]],
    ['float32', [0x7f80, 0x0001]],
    ['float32', [0xffc0, 0]],
    ['float64', [0x7ff8, 0, 0, 0]],
    ['string', [0, 0, 0, 0, 0, 0, 0, 0]],
  ];
  for (const [type, regs] of rows) {
    const p = pt(type, { notImplemented: 'sunspec' });
    t.same(decodePoint(p, regs), { value: null, quality: 'not_implemented' }, `${type} ${hex(regs)}`);
    t.same(decodePoint(p, regs, -2), { value: null, quality: 'not_implemented' }, `${type} with a scale factor`);
  }
  for (const type of ['int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64', 'string'] as DataType[]) {
    for (const [wordOrder, byteOrder] of ORDERS) {
      const p = pt(type, { notImplemented: 'sunspec', wordOrder, byteOrder });
      t.equal(decodePoint(p, encodeValue(p, null)).quality, 'not_implemented', `encodeValue(null) is the ${type} sentinel (${wordOrder}/${byteOrder})`);
    }
  }
  t.throws(() => encodeValue(pt('bool'), null), RangeError, 'bool has no sentinel');
  // Without the flag the same patterns are ordinary values (or bad, for NaN).
  t.same(decodePoint(pt('int16'), [0x8000]), { value: -32768, quality: 'good' });
  t.same(decodePoint(pt('uint16'), [0xffff]), { value: 65535, quality: 'good' });
  t.same(decodePoint(pt('float32'), [0x7fc0, 0]), { value: null, quality: 'bad' }, 'NaN without the flag is bad');
  t.same(decodePoint(pt('float32'), [0x7f80, 0]), { value: null, quality: 'bad' }, 'Infinity is bad');
  t.same(decodePoint(pt('int16', { notImplemented: 'sunspec' }), [0x8001]), { value: -32767, quality: 'good' }, 'next to the sentinel is a value');
});

t.test('scale, offset and SunSpec scale factors', async (t) => {
  const w = pt('int16', { scaleFactor: 'W_SF', notImplemented: 'sunspec' });
  t.same(decodePoint(w, [2305], -1), { value: 230.5, quality: 'good' }, 'sf -1');
  t.same(decodePoint(w, [2305], -3), { value: 2.305, quality: 'good' }, 'sf -3');
  t.same(decodePoint(w, [2305], 0), { value: 2305, quality: 'good' }, 'sf 0');
  t.same(decodePoint(w, [23], 2), { value: 2300, quality: 'good' }, 'sf 2');
  t.same(decodePoint(w, [0xfffe], 1), { value: -20, quality: 'good' }, 'negative raw');
  for (const sf of [0x8000, -0x8000, null]) t.same(decodePoint(w, [2305], sf), { value: null, quality: 'not_implemented' }, `sf ${sf} is not implemented`);
  t.same(decodePoint(w, [2305], 11), { value: null, quality: 'bad' }, 'sf outside -10..10');
  t.same(decodePoint(w, [2305], 0.5), { value: null, quality: 'bad' }, 'fractional sf');
  t.same(decodePoint(w, [2305]), { value: null, quality: 'bad' }, 'a scaleFactor point decoded without its sf');
  t.same(decodePoint(pt('uint16', { scale: 0.1 }), [2305]), { value: 230.5, quality: 'good' }, 'scale 0.1 is tidy');
  t.same(decodePoint(pt('uint16', { scale: 0.1, offset: -40 }), [100]), { value: -30, quality: 'good' }, 'offset');
  t.same(decodePoint(pt('uint32', { scale: 100 }), [0, 12345]), { value: 1234500, quality: 'good' }, '0.1 kWh counts to Wh');
  t.same(decodePoint(pt('uint16', { scale: 2 }), [3], -1), { value: 0.6, quality: 'good' }, 'scale and sf together');
  t.same(encodeValue(w, 230.5, -1), [2305], 'encode undoes sf');
  t.same(encodeValue(pt('uint16', { scale: 0.1, offset: -40 }), -30), [100], 'encode undoes scale and offset');
  t.same(decodePoint(pt('float32', { scale: 0.001 }), encodeValue(pt('float32', { scale: 0.001 }), 1.5)), { value: 1.5, quality: 'good' });
});

t.test('64-bit integers beyond 2^53 lose precision, never throw', async (t) => {
  const u = pt('uint64');
  t.equal(decodePoint(u, [0x0020, 0, 0, 1]).value, 2 ** 53, '2^53 + 1 reads as the nearest double, 2^53');
  t.equal(decodePoint(u, [0xffff, 0xffff, 0xffff, 0xfffe]).value, 2 ** 64, '2^64 - 2 reads as 2^64');
  t.same(decodePoint(u, [0xffff, 0xffff, 0xffff, 0xffff]), { value: 2 ** 64, quality: 'good' }, 'all ones without the flag');
  t.equal(decodePoint(pt('int64'), [0x8000, 0, 0, 0]).value, -(2 ** 63), 'int64 min without the flag');
  t.same(encodeValue(u, 0xfffffffffffffffen), [0xffff, 0xffff, 0xffff, 0xfffe], 'bigint encodes exactly');
  t.throws(() => encodeValue(u, -1), RangeError);
  t.throws(() => encodeValue(u, 1n << 64n), RangeError);
});

t.test('malformed input is bad, not an exception', async (t) => {
  const bad = { value: null, quality: 'bad' };
  t.same(decodePoint(pt('uint32'), [1]), bad, 'too few registers');
  t.same(decodePoint(pt('uint16'), [0x10000]), bad, 'not 16-bit');
  t.same(decodePoint(pt('uint16'), [-1]), bad, 'negative');
  t.same(decodePoint(pt('uint16'), [1.5]), bad, 'fractional');
  t.same(decodePoint(pt('string', { length: undefined }), [0x4142]), bad, 'string without length');
  t.same(decodePoint(pt('uint16'), [7, 8, 9]).value, 7, 'extra registers are ignored');
  t.throws(() => encodeValue(pt('int16'), 40000), RangeError);
  t.throws(() => encodeValue(pt('uint16'), NaN), RangeError);
  t.throws(() => encodeValue(pt('int32'), 'x'), RangeError);
});

t.test('bits', async (t) => {
  const c = pt('bool', { kind: 'coil' });
  t.same(decodeBit(c, true), { value: true, quality: 'good' });
  t.same(decodeBit(c, 0), { value: false, quality: 'good' });
  t.same(decodeBit(c, undefined), { value: null, quality: 'bad' });
  t.same(decodeBit(c, 2), { value: null, quality: 'bad' });
});

t.test('decodeItem resolves scale factors in the read, then from earlier reads', async (t) => {
  const W = pt('int16', { name: 'W', address: 10, scaleFactor: 'W_SF', notImplemented: 'sunspec' });
  const WSF = pt('int16', { name: 'W_SF', address: 11, notImplemented: 'sunspec' });
  const Hz = pt('uint16', { name: 'Hz', address: 12, scaleFactor: 'Hz_SF', notImplemented: 'sunspec' });
  const item = { kind: 'holding' as const, address: 10, count: 3, points: [W, WSF, Hz] };
  const out = decodeItem(item, { registers: [2305, 0xffff, 5000] }, new Map([['Hz_SF', -2]]));
  t.same(out.get('W'), { value: 230.5, quality: 'good' });
  t.same(out.get('W_SF'), { value: -1, quality: 'good' });
  t.same(out.get('Hz'), { value: 50, quality: 'good' }, 'sf from the map');
  const ni = decodeItem(item, { registers: [2305, 0x8000, 5000] }, new Map([['Hz_SF', null]]));
  t.equal(ni.get('W')?.quality, 'not_implemented', 'W_SF = 0x8000');
  t.equal(ni.get('Hz')?.quality, 'not_implemented', 'remembered sf not implemented');
  t.equal(decodeItem(item, { registers: [2305, 1, 5000] }).get('Hz')?.quality, 'bad', 'no sf anywhere');
  const coils = { kind: 'coil' as const, address: 4, count: 2, points: [pt('bool', { name: 'a', kind: 'coil', address: 4 }), pt('bool', { name: 'b', kind: 'coil', address: 5 })] };
  const bits = decodeItem(coils, { bits: [false, true] });
  t.same([bits.get('a')?.value, bits.get('b')?.value], [false, true]);
});
