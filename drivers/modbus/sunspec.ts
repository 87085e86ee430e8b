/**
 * SunSpec discovery and table-driven point maps, so a SunSpec device needs no hand-written map.
 *
 * Discovery: a SunSpec device holds the marker 'SunS' (0x5375 0x6E53) at a base address (40000,
 * else 0, else 50000, probed in that order), followed by a chain of models, each an ID register, a
 * length register L and L registers, ending with ID 0xFFFF. The walk is bounded: at most 64
 * models, nothing past address 65535, and it stops at nonsense (ID 0, a short answer, a failed
 * read). Addresses strictly increase, so even a device whose register space repeats (a "loop")
 * ends at one of those bounds. A model whose declared length runs past what the device can read
 * is dropped (its last register is probed once when the chain breaks after it).
 *
 * Models: the tables below transcribe the official SunSpec Information Model definitions
 * (github.com/sunspec/models, json/model_1.json, model_101/102/103.json, model_701.json as of
 * commit ab6f2c9, where model 701 has L = 153). Each table lists every register in order, as the
 * official JSON does, and the offsets (relative to the model's ID register) are computed from the
 * sizes, so a table can be checked line by line against the specification; the tests pin
 * well-known offsets (model 103 W at 14, WH at 24, model 701 W at 10, Hz at 17, W_SF at 116).
 * SunSpec types map to ours: sunssf -> int16, enum16 -> uint16, bitfield32 and acc32 -> uint32;
 * pad registers are skipped. Models 101, 102 and 103 share one layout (single, split and
 * three-phase inverter, 50 registers); the phase points a single-phase device does not have read
 * as not implemented. Model 701 (DER AC measurement) is mapped whole: states, alarms, the summary
 * measurements, energies, temperatures, the L1-L3 blocks, throttling, scale factors, MnAlrmInfo. Units follow our
 * conventions: Pct -> %, Var -> var, Varh -> varh.
 *
 * Every point is a holding register with notImplemented 'sunspec', a name prefixed by the model
 * (m103.W) and a scaleFactor naming the model's own SF point (m103.W_SF), so a map built from
 * several models never collides and passes device-map validation.
 */
import type { DataType, PointDef } from './types.js';

export const SUNSPEC_BASES: readonly number[] = [40000, 0, 50000];
export const SUNS_MARKER: readonly [number, number] = [0x5375, 0x6e53];
export const SUNSPEC_END = 0xffff;
export const MAX_MODELS = 64;

export interface SunSpecModel {
  id: number;
  /** Address of the model's ID register. */
  address: number;
  /** L: registers after the ID and length registers. */
  length: number;
}

export interface SunSpecPointSpec {
  name: string;
  /** Registers from the model's ID register. */
  offset: number;
  type: DataType;
  /** Registers (strings only). */
  length?: number;
  /** Name (within the model) of the scale factor point. */
  sf?: string;
  unit?: string;
}

export interface SunSpecModelSpec {
  id: number;
  name: string;
  /** Short name shared by models of one kind (101-103: 'inverter'): the OTLP metric namespace. */
  family: string;
  /** The model's L (registers after ID and L). */
  length: number;
  points: readonly SunSpecPointSpec[];
}

/** [name, SunSpec type ('string:16' for a 16-register string), sf, unit] in register order. */
type Row = readonly [string, string, string?, string?];

const SUNSPEC_TYPES: Record<string, [DataType | null, number]> = {
  uint16: ['uint16', 1],
  int16: ['int16', 1],
  sunssf: ['int16', 1],
  enum16: ['uint16', 1],
  uint32: ['uint32', 2],
  acc32: ['uint32', 2],
  bitfield32: ['uint32', 2],
  uint64: ['uint64', 4],
  pad: [null, 1],
};
const UNITS: Record<string, string> = { Pct: '%', Var: 'var', Varh: 'varh' };

/** Lays the rows out from offset 0 (the ID register); returns the points and the model's L. */
function layout(id: number, name: string, family: string, rows: readonly Row[]): SunSpecModelSpec {
  const points: SunSpecPointSpec[] = [];
  let offset = 0;
  for (const [pname, stype, sf, unit] of rows) {
    const str = /^string:(\d+)$/.exec(stype);
    const [type, size] = str ? (['string', Number(str[1])] as [DataType, number]) : SUNSPEC_TYPES[stype];
    if (type && pname !== 'ID' && pname !== 'L') {
      const p: SunSpecPointSpec = { name: pname, offset, type };
      if (str) p.length = size;
      if (sf) p.sf = sf;
      if (unit) p.unit = UNITS[unit] ?? unit;
      points.push(p);
    }
    offset += size;
  }
  return { id, name, family, length: offset - 2, points };
}

const HEADER: Row[] = [['ID', 'uint16'], ['L', 'uint16']];

const COMMON: Row[] = [...HEADER, ['Mn', 'string:16'], ['Md', 'string:16'], ['Opt', 'string:8'], ['Vr', 'string:8'], ['SN', 'string:16'], ['DA', 'uint16'], ['Pad', 'pad']];

/** Models 101, 102, 103: identical layouts (model_10x.json). */
const INVERTER: Row[] = [
  ...HEADER,
  ['A', 'uint16', 'A_SF', 'A'], ['AphA', 'uint16', 'A_SF', 'A'], ['AphB', 'uint16', 'A_SF', 'A'], ['AphC', 'uint16', 'A_SF', 'A'], ['A_SF', 'sunssf'],
  ['PPVphAB', 'uint16', 'V_SF', 'V'], ['PPVphBC', 'uint16', 'V_SF', 'V'], ['PPVphCA', 'uint16', 'V_SF', 'V'],
  ['PhVphA', 'uint16', 'V_SF', 'V'], ['PhVphB', 'uint16', 'V_SF', 'V'], ['PhVphC', 'uint16', 'V_SF', 'V'], ['V_SF', 'sunssf'],
  ['W', 'int16', 'W_SF', 'W'], ['W_SF', 'sunssf'],
  ['Hz', 'uint16', 'Hz_SF', 'Hz'], ['Hz_SF', 'sunssf'],
  ['VA', 'int16', 'VA_SF', 'VA'], ['VA_SF', 'sunssf'],
  ['VAr', 'int16', 'VAr_SF', 'Var'], ['VAr_SF', 'sunssf'],
  ['PF', 'int16', 'PF_SF', 'Pct'], ['PF_SF', 'sunssf'],
  ['WH', 'acc32', 'WH_SF', 'Wh'], ['WH_SF', 'sunssf'],
  ['DCA', 'uint16', 'DCA_SF', 'A'], ['DCA_SF', 'sunssf'],
  ['DCV', 'uint16', 'DCV_SF', 'V'], ['DCV_SF', 'sunssf'],
  ['DCW', 'int16', 'DCW_SF', 'W'], ['DCW_SF', 'sunssf'],
  ['TmpCab', 'int16', 'Tmp_SF', 'C'], ['TmpSnk', 'int16', 'Tmp_SF', 'C'], ['TmpTrns', 'int16', 'Tmp_SF', 'C'], ['TmpOt', 'int16', 'Tmp_SF', 'C'], ['Tmp_SF', 'sunssf'],
  ['St', 'enum16'], ['StVnd', 'enum16'],
  ['Evt1', 'bitfield32'], ['Evt2', 'bitfield32'], ['EvtVnd1', 'bitfield32'], ['EvtVnd2', 'bitfield32'], ['EvtVnd3', 'bitfield32'], ['EvtVnd4', 'bitfield32'],
];

/** One L1/L2/L3 block of model 701. */
const phase = (n: 1 | 2 | 3): Row[] => {
  const ll = ['VL1L2', 'VL2L3', 'VL3L1'][n - 1];
  return [
    [`WL${n}`, 'int16', 'W_SF', 'W'], [`VAL${n}`, 'int16', 'VA_SF', 'VA'], [`VarL${n}`, 'int16', 'Var_SF', 'Var'], [`PFL${n}`, 'uint16', 'PF_SF'],
    [`AL${n}`, 'int16', 'A_SF', 'A'], [ll, 'uint16', 'V_SF', 'V'], [`VL${n}`, 'uint16', 'V_SF', 'V'],
    [`TotWhInjL${n}`, 'uint64', 'TotWh_SF', 'Wh'], [`TotWhAbsL${n}`, 'uint64', 'TotWh_SF', 'Wh'],
    [`TotVarhInjL${n}`, 'uint64', 'TotVarh_SF', 'Varh'], [`TotVarhAbsL${n}`, 'uint64', 'TotVarh_SF', 'Varh'],
  ];
};

const DER_AC: Row[] = [
  ...HEADER,
  ['ACType', 'enum16'], ['St', 'enum16'], ['InvSt', 'enum16'], ['ConnSt', 'enum16'], ['Alrm', 'bitfield32'], ['DERMode', 'bitfield32'],
  ['W', 'int16', 'W_SF', 'W'], ['VA', 'int16', 'VA_SF', 'VA'], ['Var', 'int16', 'Var_SF', 'Var'], ['PF', 'uint16', 'PF_SF'], ['A', 'int16', 'A_SF', 'A'],
  ['LLV', 'uint16', 'V_SF', 'V'], ['LNV', 'uint16', 'V_SF', 'V'], ['Hz', 'uint32', 'Hz_SF', 'Hz'],
  ['TotWhInj', 'uint64', 'TotWh_SF', 'Wh'], ['TotWhAbs', 'uint64', 'TotWh_SF', 'Wh'], ['TotVarhInj', 'uint64', 'TotVarh_SF', 'Varh'], ['TotVarhAbs', 'uint64', 'TotVarh_SF', 'Varh'],
  ['TmpAmb', 'int16', 'Tmp_SF', 'C'], ['TmpCab', 'int16', 'Tmp_SF', 'C'], ['TmpSnk', 'int16', 'Tmp_SF', 'C'], ['TmpTrns', 'int16', 'Tmp_SF', 'C'], ['TmpSw', 'int16', 'Tmp_SF', 'C'], ['TmpOt', 'int16', 'Tmp_SF', 'C'],
  ...phase(1), ...phase(2), ...phase(3),
  ['ThrotPct', 'uint16', undefined, 'Pct'], ['ThrotSrc', 'bitfield32'],
  ['A_SF', 'sunssf'], ['V_SF', 'sunssf'], ['Hz_SF', 'sunssf'], ['W_SF', 'sunssf'], ['PF_SF', 'sunssf'], ['VA_SF', 'sunssf'], ['Var_SF', 'sunssf'], ['TotWh_SF', 'sunssf'], ['TotVarh_SF', 'sunssf'], ['Tmp_SF', 'sunssf'],
  ['MnAlrmInfo', 'string:32'],
];

/** The models Holdfast maps, for tests and docs to iterate. */
export const SUNSPEC_MODELS: readonly SunSpecModelSpec[] = [
  layout(1, 'common', 'common', COMMON),
  layout(101, 'inverter (single phase)', 'inverter', INVERTER),
  layout(102, 'inverter (split phase)', 'inverter', INVERTER),
  layout(103, 'inverter (three phase)', 'inverter', INVERTER),
  layout(701, 'DER AC measurement', 'der_ac', DER_AC),
];

export function sunspecModel(id: number): SunSpecModelSpec | undefined {
  return SUNSPEC_MODELS.find((m) => m.id === id);
}

/**
 * Points of one discovered model (none for a model without a table). Points that do not fit the
 * length the device declared are left out. `prefix` defaults to m<id>; give another one when a
 * device repeats a model (e.g. an aggregator with two 103s).
 */
export function modelPoints(model: SunSpecModel, prefix = `m${model.id}`): PointDef[] {
  const spec = sunspecModel(model.id);
  if (!spec) return [];
  const out: PointDef[] = [];
  for (const s of spec.points) {
    if (s.offset + (s.length ?? registersOf(s.type)) > model.length + 2) continue;
    const p: PointDef = { name: `${prefix}.${s.name}`, kind: 'holding', address: model.address + s.offset, type: s.type };
    if (s.length !== undefined) p.length = s.length;
    if (s.sf) p.scaleFactor = `${prefix}.${s.sf}`;
    if (s.unit) p.unit = s.unit;
    p.notImplemented = 'sunspec';
    out.push(p);
  }
  return out;
}

function registersOf(t: DataType): number {
  return t === 'uint64' || t === 'int64' || t === 'float64' ? 4 : t === 'uint32' || t === 'int32' || t === 'float32' ? 2 : 1;
}

export type RegisterReader = (address: number, count: number) => Promise<number[] | null>;

export interface Discovery {
  base: number;
  models: SunSpecModel[];
}

/** Finds the SunSpec base and walks the model chain; null when no base holds the marker. */
export async function discover(read: RegisterReader, opts: { bases?: readonly number[]; maxModels?: number } = {}): Promise<Discovery | null> {
  for (const base of opts.bases ?? SUNSPEC_BASES) {
    const m = await read(base, 2);
    if (!m || m.length < 2 || m[0] !== SUNS_MARKER[0] || m[1] !== SUNS_MARKER[1]) continue;
    return { base, models: await walk(read, base + 2, opts.maxModels ?? MAX_MODELS) };
  }
  return null;
}

async function walk(read: RegisterReader, start: number, maxModels: number): Promise<SunSpecModel[]> {
  const models: SunSpecModel[] = [];
  let addr = start;
  while (models.length < maxModels && addr + 2 <= 0x10000) {
    const h = await read(addr, 2);
    if (!h || h.length < 2) {
      // The chain broke without an end marker: keep the last model only if its end is readable.
      const last = models[models.length - 1];
      if (last && last.length > 0) {
        const tail = await read(last.address + 1 + last.length, 1);
        if (!tail || tail.length < 1) models.pop();
      }
      break;
    }
    const [id, length] = h;
    if (id === SUNSPEC_END) break;
    if (!Number.isInteger(id) || id < 1 || id > 0xfffe || !Number.isInteger(length) || length < 0 || length > 0xffff) break;
    if (addr + 2 + length > 0x10000) break; // runs past the address space
    models.push({ id, address: addr, length });
    addr += 2 + length;
  }
  return models;
}
