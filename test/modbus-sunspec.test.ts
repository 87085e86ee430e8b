/**
 * SunSpec (drivers/modbus/sunspec.ts): discovery over a fake register space built here with
 * encodeValue (SunS at 40000, models 1, 103, 701, end marker), the probing order, spaces without
 * a marker and broken chains (past the end, a repeating space, nonsense IDs) that must terminate;
 * the model tables against offsets taken from the official SunSpec model definitions
 * (github.com/sunspec/models json/model_1.json, model_103.json, model_701.json); and an end-to-end
 * decode of the discovered models through the planner.
 */
import t from 'tap';
import { decodeItem, encodeValue, registerCount, type Decoded } from '../drivers/modbus/decode.js';
import { validateDeviceMap } from '../agent/config/formats.js';
import { planReads } from '../drivers/modbus/plan.js';
import { discover, modelPoints, MAX_MODELS, SUNSPEC_MODELS, sunspecModel, type SunSpecModel } from '../drivers/modbus/sunspec.js';
import type { PointDef } from '../drivers/modbus/types.js';

/** A sparse register space; reads of unmapped registers fail like exception 02. */
class Space {
  regs = new Map<number, number>();
  reads: [number, number][] = [];
  set(address: number, values: number[]): void {
    values.forEach((v, i) => this.regs.set(address + i, v));
  }
  fill(address: number, count: number): void {
    for (let i = 0; i < count; i++) if (!this.regs.has(address + i)) this.regs.set(address + i, 0);
  }
  read = async (address: number, count: number): Promise<number[] | null> => {
    this.reads.push([address, count]);
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const v = this.regs.get(address + i);
      if (v === undefined) return null;
      out.push(v);
    }
    return out;
  };
}

/** Writes a model: header, zeroed body, then the given point values (by name, through modelPoints). */
function putModel(s: Space, model: SunSpecModel, values: Record<string, number | bigint | string | null>, sfs: Record<string, number> = {}): void {
  s.set(model.address, [model.id, model.length]);
  s.fill(model.address + 2, model.length);
  const pts = modelPoints(model);
  for (const [name, v] of Object.entries(values)) {
    const p = pts.find((q) => q.name === `m${model.id}.${name}`);
    if (!p) throw new Error(`no point ${name} in model ${model.id}`);
    const sf = p.scaleFactor ? (sfs[p.scaleFactor.split('.')[1]] ?? 0) : 0;
    s.set(p.address, encodeValue(p, v, sf));
  }
  for (const [name, v] of Object.entries(sfs)) s.set(pts.find((q) => q.name === `m${model.id}.${name}`)!.address, encodeValue({ name, kind: 'holding', address: 0, type: 'int16' }, v));
}

const M1 = { id: 1, address: 40002, length: 66 };
const M103 = { id: 103, address: 40070, length: 50 };
const M701 = { id: 701, address: 40122, length: 153 };

function device(): Space {
  const s = new Space();
  s.set(40000, [0x5375, 0x6e53]);
  putModel(s, M1, { Mn: 'Holdfast', Md: 'Sim-103', SN: 'HF-0001', DA: 1 });
  putModel(s, M103, { A: 12.3, AphA: 4.1, PhVphA: 230.5, PhVphB: null, W: 2305, Hz: 50, WH: 123456, TmpCab: 41.5, St: 4 }, { A_SF: -1, V_SF: -1, W_SF: 0, Hz_SF: -2, WH_SF: 0, Tmp_SF: -1, DCA_SF: -0x8000 });
  putModel(s, M701, { ACType: 2, W: 1500, Hz: 50.001, TotWhInj: 9007199254740991n, LNV: 231, WL1: 500, MnAlrmInfo: 'none' }, { W_SF: 0, Hz_SF: -3, TotWh_SF: 0, V_SF: 0 });
  s.set(40122 + 155, [0xffff, 0]);
  return s;
}

t.test('discover finds the base and the model chain', async (t) => {
  const s = device();
  t.same(await discover(s.read), { base: 40000, models: [M1, M103, M701] });
  t.same(s.reads[0], [40000, 2], 'first probe at 40000');
});

t.test('probing order 40000, 0, 50000', async (t) => {
  const none = new Space();
  none.set(0, [0, 0]);
  none.set(40000, [0x1234, 0x5678]);
  t.equal(await discover(none.read), null, 'no marker anywhere: null');
  t.same(none.reads, [[40000, 2], [0, 2], [50000, 2]], 'each base probed once, in order');

  for (const base of [0, 50000]) {
    const s = new Space();
    s.set(base, [0x5375, 0x6e53]);
    s.set(base + 2, [0xffff, 0]);
    if (base === 50000) s.set(0, [0x5375, 0x6e52]); // almost the marker
    t.same(await discover(s.read), { base, models: [] }, `marker at ${base}`);
  }
  const both = new Space();
  both.set(0, [0x5375, 0x6e53, 0xffff, 0]);
  both.set(50000, [0x5375, 0x6e53, 0xffff, 0]);
  t.equal((await discover(both.read))?.base, 0, '0 is probed before 50000');
});

t.test('broken chains terminate', async (t) => {
  const past = new Space();
  past.set(40000, [0x5375, 0x6e53]);
  putModel(past, M1, { Mn: 'X' });
  past.set(40070, [103, 500]); // claims 500 registers, the device ends at 40100
  past.fill(40072, 28);
  t.same(await discover(past.read), { base: 40000, models: [M1] }, 'a model running past the readable end is dropped');

  const noEnd = new Space();
  noEnd.set(40000, [0x5375, 0x6e53]);
  putModel(noEnd, M1, {});
  t.same(await discover(noEnd.read), { base: 40000, models: [M1] }, 'no end marker: the complete models are kept');

  const space = new Space();
  space.set(50000, [0x5375, 0x6e53, 64001, 20000]);
  t.same((await discover(space.read))?.models, [], 'length past 65535');

  const zero = new Space();
  zero.set(40000, [0x5375, 0x6e53, 1, 0, 0, 4, 103, 50]);
  t.same((await discover(zero.read))?.models, [{ id: 1, address: 40002, length: 0 }], 'ID 0 is nonsense: stop');

  // A "loop": after the marker the space repeats [1, 2, 0, 0], so every header says "model 1,
  // length 2" and the chain never reaches an end marker.
  let reads = 0;
  const loop = async (address: number, count: number) => {
    reads++;
    return Array.from({ length: count }, (_, i) => {
      const a = address + i;
      return a === 40000 ? 0x5375 : a === 40001 ? 0x6e53 : [1, 2, 0, 0][(a - 40002 + 4 * 65536) % 4];
    });
  };
  const d = await discover(loop);
  t.equal(d?.models.length, MAX_MODELS, 'bounded at 64 models');
  t.ok(reads <= MAX_MODELS + 3, `bounded reads (${reads})`);

  const short = async (address: number) => (address === 40000 ? [0x5375, 0x6e53] : [1]);
  t.same(await discover(short), { base: 40000, models: [] }, 'a short answer stops the walk');
});

t.test('model tables match the official SunSpec definitions', async (t) => {
  const off = (id: number, name: string) => sunspecModel(id)?.points.find((p) => p.name === name);
  const rows: [number, string, number, string, number?][] = [
    // model, point, offset from the ID register, type, string length
    [1, 'Mn', 2, 'string', 16], [1, 'Md', 18, 'string', 16], [1, 'Opt', 34, 'string', 8], [1, 'Vr', 42, 'string', 8], [1, 'SN', 50, 'string', 16], [1, 'DA', 66, 'uint16'],
    [103, 'A', 2, 'uint16'], [103, 'AphC', 5, 'uint16'], [103, 'A_SF', 6, 'int16'], [103, 'PPVphAB', 7, 'uint16'], [103, 'PhVphA', 10, 'uint16'], [103, 'V_SF', 13, 'int16'],
    [103, 'W', 14, 'int16'], [103, 'W_SF', 15, 'int16'], [103, 'Hz', 16, 'uint16'], [103, 'Hz_SF', 17, 'int16'], [103, 'VA', 18, 'int16'], [103, 'VAr', 20, 'int16'], [103, 'PF', 22, 'int16'],
    [103, 'WH', 24, 'uint32'], [103, 'WH_SF', 26, 'int16'], [103, 'DCA', 27, 'uint16'], [103, 'DCV', 29, 'uint16'], [103, 'DCW', 31, 'int16'], [103, 'DCW_SF', 32, 'int16'],
    [103, 'TmpCab', 33, 'int16'], [103, 'TmpOt', 36, 'int16'], [103, 'Tmp_SF', 37, 'int16'], [103, 'St', 38, 'uint16'], [103, 'StVnd', 39, 'uint16'], [103, 'Evt1', 40, 'uint32'], [103, 'EvtVnd4', 50, 'uint32'],
    [101, 'W', 14, 'int16'], [102, 'WH', 24, 'uint32'],
    [701, 'ACType', 2, 'uint16'], [701, 'St', 3, 'uint16'], [701, 'InvSt', 4, 'uint16'], [701, 'ConnSt', 5, 'uint16'], [701, 'Alrm', 6, 'uint32'], [701, 'DERMode', 8, 'uint32'],
    [701, 'W', 10, 'int16'], [701, 'VA', 11, 'int16'], [701, 'Var', 12, 'int16'], [701, 'PF', 13, 'uint16'], [701, 'A', 14, 'int16'], [701, 'LLV', 15, 'uint16'], [701, 'LNV', 16, 'uint16'],
    [701, 'Hz', 17, 'uint32'], [701, 'TotWhInj', 19, 'uint64'], [701, 'TotWhAbs', 23, 'uint64'], [701, 'TotVarhInj', 27, 'uint64'], [701, 'TotVarhAbs', 31, 'uint64'],
    [701, 'TmpAmb', 35, 'int16'], [701, 'TmpOt', 40, 'int16'], [701, 'WL1', 41, 'int16'], [701, 'VL1L2', 46, 'uint16'], [701, 'VL1', 47, 'uint16'], [701, 'TotWhInjL1', 48, 'uint64'],
    [701, 'WL2', 64, 'int16'], [701, 'WL3', 87, 'int16'], [701, 'TotVarhAbsL3', 106, 'uint64'], [701, 'ThrotPct', 110, 'uint16'], [701, 'ThrotSrc', 111, 'uint32'],
    [701, 'A_SF', 113, 'int16'], [701, 'W_SF', 116, 'int16'], [701, 'TotWh_SF', 120, 'int16'], [701, 'Tmp_SF', 122, 'int16'], [701, 'MnAlrmInfo', 123, 'string', 32],
  ];
  for (const [id, name, offset, type, length] of rows) {
    const p = off(id, name);
    t.ok(p, `${id}.${name} is mapped`);
    t.same([p?.offset, p?.type, p?.length], [offset, type, length], `${id}.${name} at offset ${offset}`);
  }
  t.same(SUNSPEC_MODELS.map((m) => [m.id, m.length]), [[1, 66], [101, 50], [102, 50], [103, 50], [701, 153]], 'L of each model as published');
  t.same([off(103, 'W')?.sf, off(103, 'W')?.unit, off(103, 'PF')?.unit, off(103, 'VAr')?.unit, off(701, 'TotVarhInj')?.unit], ['W_SF', 'W', '%', 'var', 'varh']);
  t.equal(off(1, 'Pad'), undefined, 'pad registers are not points');
});

t.test('every model table is internally consistent and validates as a device map', async (t) => {
  for (const m of SUNSPEC_MODELS) {
    const pts = modelPoints({ id: m.id, address: 1000, length: m.length });
    t.equal(pts.length, m.points.length, `model ${m.id}: every point fits its published length`);
    t.ok(pts.every((p) => p.notImplemented === 'sunspec' && p.kind === 'holding' && p.name.startsWith(`m${m.id}.`)), `model ${m.id}: prefixed SunSpec points`);
    const last = Math.max(...pts.map((p) => p.address + registerCount(p)));
    t.ok(last <= 1000 + m.length + 2, `model ${m.id}: within the model`);
    t.doesNotThrow(() => validateDeviceMap({ name: `m${m.id}`, points: pts }), `model ${m.id}: no overlaps, scale factors resolve`);
  }
  const all = [M1, M103, M701].flatMap((m) => modelPoints(m));
  t.doesNotThrow(() => validateDeviceMap({ name: 'discovered', points: all }), 'models 1 + 103 + 701 together: no collisions');
  t.same(modelPoints({ id: 64999, address: 0, length: 10 }), [], 'unknown model: no points');
  const shortModel = modelPoints({ id: 103, address: 0, length: 22 });
  t.notOk(shortModel.some((p) => p.name === 'm103.WH'), 'a model declared shorter loses the points past its end');
  t.ok(shortModel.some((p) => p.name === 'm103.PF_SF'));
  t.equal(modelPoints(M103, 'inv2')[0].name, 'inv2.A', 'custom prefix');
  t.equal(modelPoints(M103, 'inv2').find((p) => p.name === 'inv2.W')?.scaleFactor, 'inv2.W_SF');
});

t.test('discovered models decode end to end through the planner', async (t) => {
  const s = device();
  const d = await discover(s.read);
  const points: PointDef[] = d!.models.flatMap((m) => modelPoints(m));
  const plan = planReads(points);
  t.ok(plan.every((i) => i.count <= 125), 'requests within 125 registers');
  const values = new Map<string, Decoded>();
  const sfs = new Map<string, number | null>();
  // Scale factors of a model may fall in a later request than their values: decode twice, as a poller would cache them.
  for (let pass = 0; pass < 2; pass++) {
    for (const item of plan) {
      const regs = await s.read(item.address, item.count);
      t.ok(regs, `read ${item.address}+${item.count}`);
      for (const [name, v] of decodeItem(item, { registers: regs! }, sfs)) {
        values.set(name, v);
        if (name.endsWith('_SF')) sfs.set(name, v.quality === 'good' ? (v.value as number) : null);
      }
    }
  }
  const v = (n: string) => values.get(n);
  t.same(v('m1.Mn'), { value: 'Holdfast', quality: 'good' });
  t.same(v('m1.SN'), { value: 'HF-0001', quality: 'good' });
  t.same(v('m1.Opt'), { value: null, quality: 'not_implemented' }, 'an all-zero string');
  t.same(v('m103.W'), { value: 2305, quality: 'good' });
  t.same(v('m103.PhVphA'), { value: 230.5, quality: 'good' });
  t.same(v('m103.PhVphB'), { value: null, quality: 'not_implemented' });
  t.same(v('m103.Hz'), { value: 50, quality: 'good' });
  t.same(v('m103.A'), { value: 12.3, quality: 'good' });
  t.same(v('m103.WH'), { value: 123456, quality: 'good' });
  t.same(v('m103.TmpCab'), { value: 41.5, quality: 'good' });
  t.same(v('m103.DCA'), { value: null, quality: 'not_implemented' }, 'DCA_SF = 0x8000 makes DCA not implemented');
  t.same(v('m103.DCV'), { value: 0, quality: 'good' }, 'a zero register with sf 0 is a real 0');
  t.same(v('m701.W'), { value: 1500, quality: 'good' });
  t.same(v('m701.Hz'), { value: 50.001, quality: 'good' });
  t.same(v('m701.TotWhInj'), { value: Number.MAX_SAFE_INTEGER, quality: 'good' });
  t.same(v('m701.MnAlrmInfo'), { value: 'none', quality: 'good' });
});
