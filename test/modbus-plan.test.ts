/**
 * Read planning (drivers/modbus/plan.ts): adjacent points share one request, gaps are bridged
 * only when allowed, the 125-register and 2000-bit limits hold exactly, kinds never mix, the
 * output does not depend on input order, and an oversize point cannot hang the planner.
 * Also splitByPeriod, which carries scale factors into every group that needs them.
 */
import t from 'tap';
import { planReads, splitByPeriod } from '../drivers/modbus/plan.js';
import type { DataType, PointDef, ReadPlanItem, RegisterKind } from '../drivers/modbus/types.js';
import { mulberry32 } from './helpers/rand.js';

const pt = (name: string, address: number, type: DataType = 'uint16', over: Partial<PointDef> = {}): PointDef => ({ name, kind: 'holding', address, type, ...over });
const shape = (plan: ReadPlanItem[]) => plan.map((i) => [i.kind, i.address, i.count, i.points.map((p) => p.name).join(',')]);
const WIDTH: Partial<Record<DataType, number>> = { uint32: 2, float64: 4 };
/** n back-to-back points of one type. */
const many = (n: number, kind: RegisterKind = 'holding', type: DataType = 'uint16') => Array.from({ length: n }, (_, i) => pt(`p${i}`, i * (WIDTH[type] ?? 1), type, { kind }));

t.test('adjacent points coalesce into one request', async (t) => {
  const plan = planReads([pt('c', 3, 'float32'), pt('a', 0), pt('b', 1, 'uint32')]);
  t.same(shape(plan), [['holding', 0, 5, 'a,b,c']]);
  t.same(shape(planReads([])), [], 'no points, no requests');
});

t.test('gaps are bridged only up to `gap` unmapped registers', async (t) => {
  const pts = [pt('a', 0), pt('b', 3)];
  t.same(shape(planReads(pts)), [['holding', 0, 1, 'a'], ['holding', 3, 1, 'b']], 'default gap 0');
  t.same(shape(planReads(pts, { gap: 1 })), [['holding', 0, 1, 'a'], ['holding', 3, 1, 'b']], 'gap 1 < 2 unmapped');
  t.same(shape(planReads(pts, { gap: 2 })), [['holding', 0, 4, 'a,b']], 'gap 2 bridges registers 1-2');
  t.same(shape(planReads([pt('a', 0, 'uint32'), pt('b', 5)], { gap: 3 })), [['holding', 0, 6, 'a,b']], 'measured from the end of a multi-register point');
});

t.test('the 125-register limit, exactly', async (t) => {
  const p125 = planReads(many(125));
  t.equal(p125.length, 1, '125 registers: one request');
  t.equal(p125[0].count, 125);
  const p126 = planReads(many(126));
  t.same(p126.map((i) => [i.address, i.count]), [[0, 125], [125, 1]], '126 registers: split');
  t.same(shape(planReads([pt('a', 0), pt('s', 1, 'string', { length: 124 })])), [['holding', 0, 125, 'a,s']], 'string fills it to 125');
  t.same(shape(planReads([pt('a', 0, 'uint32'), pt('s', 2, 'string', { length: 124 })])), [['holding', 0, 2, 'a'], ['holding', 2, 124, 's']], 'a point is never split');
  t.same(planReads(many(250, 'input', 'uint32')).map((i) => i.count), [124, 124, 124, 124, 4], 'uint32s: 62 per request, never half a point');
  t.ok(planReads(many(1000, 'input', 'float64')).every((i) => i.count <= 125), 'never above the limit');
  t.same(planReads(many(10), { maxRegisters: 4 }).map((i) => i.count), [4, 4, 2], 'maxRegisters option');
  t.same(planReads([pt('a', 0), pt('b', 100)], { gap: 200 }).map((i) => i.count), [101], 'bridged gaps count');
  t.same(planReads([pt('a', 0), pt('b', 125)], { gap: 200 }).map((i) => i.count), [1, 1], 'but not beyond the limit');
});

t.test('kinds are never mixed, and come out in a fixed order', async (t) => {
  const plan = planReads([
    pt('d', 0, 'bool', { kind: 'discrete' }),
    pt('i', 0, 'uint16', { kind: 'input' }),
    pt('c', 0, 'bool', { kind: 'coil' }),
    pt('h', 0),
    pt('h2', 1),
    pt('i2', 1, 'uint16', { kind: 'input' }),
  ]);
  t.same(shape(plan), [['holding', 0, 2, 'h,h2'], ['input', 0, 2, 'i,i2'], ['coil', 0, 1, 'c'], ['discrete', 0, 1, 'd']]);
});

t.test('the bit limit', async (t) => {
  t.same(planReads(many(2000, 'coil', 'bool')).map((i) => i.count), [2000], '2000 coils: one request');
  t.same(planReads(many(2001, 'discrete', 'bool')).map((i) => [i.address, i.count]), [[0, 2000], [2000, 1]], '2001: split');
  t.same(planReads(many(10, 'coil', 'bool'), { maxBits: 3 }).map((i) => i.count), [3, 3, 3, 1], 'maxBits option');
  t.same(planReads(many(10, 'coil', 'bool'), { maxRegisters: 1 }).map((i) => i.count), [10], 'bits ignore maxRegisters');
});

t.test('an oversize point becomes its own request; nothing loops', async (t) => {
  const plan = planReads([pt('a', 0), pt('big', 1, 'string', { length: 200 }), pt('b', 201)]);
  t.same(shape(plan), [['holding', 0, 1, 'a'], ['holding', 1, 200, 'big'], ['holding', 201, 1, 'b']]);
  t.same(shape(planReads([pt('x', 0, 'uint32')], { maxRegisters: 1 })), [['holding', 0, 2, 'x']], 'a uint32 with maxRegisters 1');
  t.throws(() => planReads(many(3), { maxRegisters: 0 }), RangeError, 'a zero limit is refused');
  t.throws(() => planReads(many(3), { gap: -1 }), RangeError);
  t.throws(() => planReads(many(3), { maxBits: 1.5 }), RangeError);
});

t.test('overlapping points share the request', async (t) => {
  t.same(shape(planReads([pt('wide', 0, 'uint32'), pt('lo', 1), pt('hi', 0)])), [['holding', 0, 2, 'wide,hi,lo']]);
});

t.test('deterministic: input order does not matter', async (t) => {
  const rand = mulberry32(7);
  const pts = [...many(300), ...many(50, 'input', 'uint32'), pt('s', 400, 'string', { length: 10 }), pt('dup', 5)];
  const want = shape(planReads(pts, { gap: 3 }));
  for (let k = 0; k < 20; k++) {
    const shuffled = [...pts];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    t.same(shape(planReads(shuffled, { gap: 3 })), want, `shuffle ${k}`);
  }
});

t.test('splitByPeriod groups by effective period and carries scale factors', async (t) => {
  const W = pt('W', 10, 'int16', { scaleFactor: 'W_SF', pollMs: 100 });
  const WSF = pt('W_SF', 11, 'int16');
  const Hz = pt('Hz', 12, 'uint16', { scaleFactor: 'Hz_SF' });
  const HzSF = pt('Hz_SF', 13, 'int16');
  const slow = pt('SN', 20, 'string', { length: 8, pollMs: 60000 });
  const groups = splitByPeriod([W, WSF, Hz, HzSF, slow], 1000);
  t.same(
    groups.map((g) => [g.periodMs, g.points.map((p) => p.name)]),
    [
      [100, ['W', 'W_SF']],
      [1000, ['W_SF', 'Hz', 'Hz_SF']],
      [60000, ['SN']],
    ],
  );
  t.same(splitByPeriod([], 1000), []);
  t.same(splitByPeriod([pt('x', 0, 'int16', { scaleFactor: 'missing' })], 500).map((g) => g.points.length), [1], 'a dangling scale factor is the validator\'s business');
});
