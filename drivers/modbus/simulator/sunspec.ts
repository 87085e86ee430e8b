/**
 * The `sunspec-inverter` profile: a SunSpec device map in holding registers from 40000.
 *
 * Source of the layout: the official SunSpec model definitions, github.com/sunspec/models,
 * json/model_1.json (Common), json/model_103.json (Inverter, three phase) and
 * json/model_701.json (DERMeasureAC, the IEEE 1547-2018 DER AC measurement model). A model's
 * length L counts the registers after its ID and L points; sizes are in registers (string
 * size 16 = 32 characters). Summed from those files: model 1 L = 66, model 103 L = 50,
 * model 701 L = 153. Only the offsets written below are kept (a tiny local table, not a model
 * parser: the device-map code under drivers/ is the one that should parse models).
 *
 *   40000 'SunS' (0x5375 0x6E53)
 *   40002 model 1    (ID, L=66, 66 registers)  -> 40069
 *   40070 model 103  (ID, L=50)                -> 40121
 *   40122 model 701  (ID, L=153)               -> 40276
 *   40277 end marker 0xFFFF 0x0000
 *
 * "Not implemented" values (SunSpec Information Model Specification): int16/sunssf 0x8000,
 * uint16/enum16 0xFFFF, bitfield32/uint32 0xFFFFFFFF, uint64 0xFFFFFFFFFFFFFFFF, acc 0,
 * string all NUL, pad 0x8000. Several optional points below use them on purpose, so decoders
 * meet them (quality not_implemented), including not-implemented scale factors.
 * Power, energy and frequency drift with time like the meter profile; energies only rise.
 */
import { setString, setU32, setU64, wave, type SimDevice } from './device.js';

export const SUNSPEC = {
  BASE: 40000,
  COMMON: 40002,
  INVERTER: 40070,
  DER_AC: 40122,
  END: 40277,
  /** Registers mapped from BASE: up to and including the end marker. */
  SIZE: 279,
  LENGTH: { 1: 66, 103: 50, 701: 153 } as Record<number, number>,
  ENERGY_START_WH: 48_210_000,
} as const;

/** Offsets from the model's ID register. */
export const M1 = { Mn: 2, Md: 18, Opt: 34, Vr: 42, SN: 50, DA: 66, Pad: 67 } as const;
export const M103 = {
  A: 2, AphA: 3, AphB: 4, AphC: 5, A_SF: 6, PPVphAB: 7, PPVphBC: 8, PPVphCA: 9, PhVphA: 10, PhVphB: 11, PhVphC: 12, V_SF: 13,
  W: 14, W_SF: 15, Hz: 16, Hz_SF: 17, VA: 18, VA_SF: 19, VAr: 20, VAr_SF: 21, PF: 22, PF_SF: 23, WH: 24, WH_SF: 26,
  DCA: 27, DCA_SF: 28, DCV: 29, DCV_SF: 30, DCW: 31, DCW_SF: 32, TmpCab: 33, TmpSnk: 34, TmpTrns: 35, TmpOt: 36, Tmp_SF: 37,
  St: 38, StVnd: 39, Evt1: 40, Evt2: 42, EvtVnd1: 44, EvtVnd2: 46, EvtVnd3: 48, EvtVnd4: 50,
} as const;
export const M701 = {
  ACType: 2, St: 3, InvSt: 4, ConnSt: 5, Alrm: 6, DERMode: 8, W: 10, VA: 11, Var: 12, PF: 13, A: 14, LLV: 15, LNV: 16, Hz: 17,
  TotWhInj: 19, TotWhAbs: 23, TotVarhInj: 27, TotVarhAbs: 31, TmpAmb: 35, TmpCab: 36, TmpSnk: 37, TmpTrns: 38, TmpSw: 39, TmpOt: 40,
  /** Per-phase blocks of 23 registers: W VA Var PF A VLL VLN TotWhInj TotWhAbs TotVarhInj TotVarhAbs. */
  L1: 41, L2: 64, L3: 87,
  ThrotPct: 110, ThrotSrc: 111, A_SF: 113, V_SF: 114, Hz_SF: 115, W_SF: 116, PF_SF: 117, VA_SF: 118, Var_SF: 119, TotWh_SF: 120, TotVarh_SF: 121, Tmp_SF: 122,
  MnAlrmInfo: 123,
} as const;
const PHASE = { W: 0, VA: 1, Var: 2, PF: 3, A: 4, VLL: 5, VLN: 6, TotWhInj: 7, TotWhAbs: 11, TotVarhInj: 15, TotVarhAbs: 19 } as const;

export const NI = { int16: 0x8000, uint16: 0xffff, sunssf: 0x8000, uint32: 0xffffffff, uint64: 0xffffffffffffffffn, pad: 0x8000 } as const;

/** int16 as its register value. */
const s16 = (v: number) => v & 0xffff;

export function buildSunSpecInverter(d: SimDevice, unit: number): SimDevice {
  const r = d.holding;
  d.map('holding', SUNSPEC.BASE, SUNSPEC.SIZE);
  r[SUNSPEC.BASE] = 0x5375; // 'Su'
  r[SUNSPEC.BASE + 1] = 0x6e53; // 'nS'

  const c = SUNSPEC.COMMON;
  r[c] = 1;
  r[c + 1] = SUNSPEC.LENGTH[1];
  setString(r, c + M1.Mn, 16, 'Holdfast');
  setString(r, c + M1.Md, 16, 'SIM-INV');
  setString(r, c + M1.Opt, 8, ''); // optional, not implemented (all NUL)
  setString(r, c + M1.Vr, 8, '1.0.0');
  setString(r, c + M1.SN, 16, `HF-SIM-${String(unit).padStart(3, '0')}`);
  r[c + M1.DA] = unit;
  r[c + M1.Pad] = NI.pad;

  const m = SUNSPEC.INVERTER;
  r[m] = 103;
  r[m + 1] = SUNSPEC.LENGTH[103];
  r[m + M103.A_SF] = s16(-2);
  r[m + M103.V_SF] = s16(-1);
  r[m + M103.W_SF] = 0;
  r[m + M103.Hz_SF] = s16(-2);
  r[m + M103.VA_SF] = 0;
  r[m + M103.VAr] = NI.int16; // reactive power: not implemented, and so is its scale factor
  r[m + M103.VAr_SF] = NI.sunssf;
  r[m + M103.PF_SF] = s16(-1);
  r[m + M103.WH_SF] = 0;
  r[m + M103.DCA] = NI.uint16; // no DC side measured
  r[m + M103.DCA_SF] = NI.sunssf;
  r[m + M103.DCV] = NI.uint16;
  r[m + M103.DCV_SF] = NI.sunssf;
  r[m + M103.DCW] = NI.int16;
  r[m + M103.DCW_SF] = NI.sunssf;
  r[m + M103.TmpTrns] = NI.int16;
  r[m + M103.TmpOt] = NI.int16;
  r[m + M103.Tmp_SF] = s16(-1);
  r[m + M103.St] = 4; // MPPT
  r[m + M103.StVnd] = NI.uint16;
  setU32(r, m + M103.Evt1, 0);
  setU32(r, m + M103.Evt2, 0);
  for (const k of [M103.EvtVnd1, M103.EvtVnd2, M103.EvtVnd3, M103.EvtVnd4]) setU32(r, m + k, NI.uint32);

  const x = SUNSPEC.DER_AC;
  r[x] = 701;
  r[x + 1] = SUNSPEC.LENGTH[701];
  r[x + M701.ACType] = 3; // THREE_PHASE
  r[x + M701.St] = 2; // ON
  r[x + M701.InvSt] = 4; // MPPT
  r[x + M701.ConnSt] = 2; // CONNECTED
  setU32(r, x + M701.Alrm, 0);
  setU32(r, x + M701.DERMode, 0);
  setU64(r, x + M701.TotWhAbs, 0n);
  setU64(r, x + M701.TotVarhInj, NI.uint64);
  setU64(r, x + M701.TotVarhAbs, NI.uint64);
  for (const k of [M701.TmpAmb, M701.TmpTrns, M701.TmpSw, M701.TmpOt]) r[x + k] = NI.int16;
  for (const ph of [M701.L1, M701.L2, M701.L3]) {
    r[x + ph + PHASE.Var] = NI.int16;
    for (const k of [PHASE.TotWhInj, PHASE.TotWhAbs, PHASE.TotVarhInj, PHASE.TotVarhAbs]) setU64(r, x + ph + k, NI.uint64);
  }
  r[x + M701.Var] = NI.int16;
  r[x + M701.ThrotPct] = NI.uint16;
  setU32(r, x + M701.ThrotSrc, NI.uint32);
  r[x + M701.A_SF] = s16(-2);
  r[x + M701.V_SF] = s16(-1);
  r[x + M701.Hz_SF] = s16(-2);
  r[x + M701.W_SF] = 0;
  r[x + M701.PF_SF] = s16(-3);
  r[x + M701.VA_SF] = 0;
  r[x + M701.Var_SF] = NI.sunssf;
  r[x + M701.TotWh_SF] = 0;
  r[x + M701.TotVarh_SF] = NI.sunssf;
  r[x + M701.Tmp_SF] = s16(-1);
  setString(r, x + M701.MnAlrmInfo, 32, '');

  r[SUNSPEC.END] = 0xffff;
  r[SUNSPEC.END + 1] = 0x0000;

  const t0 = d.now();
  const refresh = () => {
    const t = Math.max(0, d.now() - t0) / 1000;
    const w = 6000 + wave(t, 900, 600); // W
    const wh = SUNSPEC.ENERGY_START_WH + Math.floor((6000 * t + (900 * 600 * (1 - Math.cos((2 * Math.PI * t) / 600))) / (2 * Math.PI)) / 3600);
    const vph = [0, 1, 2].map((ph) => 230 + wave(t, 2, 300, ph / 3));
    const pf = 0.98 + wave(t, 0.01, 420);
    const aph = vph.map((v) => w / 3 / (v * pf));
    const hz = 50 + wave(t, 0.02, 120);
    r[m + M103.A] = Math.round((aph[0] + aph[1] + aph[2]) * 100);
    [M103.AphA, M103.AphB, M103.AphC].forEach((k, i) => (r[m + k] = Math.round(aph[i] * 100)));
    [M103.PhVphA, M103.PhVphB, M103.PhVphC].forEach((k, i) => (r[m + k] = Math.round(vph[i] * 10)));
    [M103.PPVphAB, M103.PPVphBC, M103.PPVphCA].forEach((k, i) => (r[m + k] = Math.round(((vph[i] + vph[(i + 1) % 3]) / 2) * Math.sqrt(3) * 10)));
    r[m + M103.W] = s16(Math.round(w));
    r[m + M103.Hz] = Math.round(hz * 100);
    r[m + M103.VA] = s16(Math.round(w / pf));
    r[m + M103.PF] = s16(Math.round(pf * 1000)); // percent with PF_SF -1
    setU32(r, m + M103.WH, wh);
    r[m + M103.TmpCab] = s16(Math.round((38 + wave(t, 3, 900)) * 10));
    r[m + M103.TmpSnk] = s16(Math.round((52 + wave(t, 5, 900)) * 10));
    r[x + M701.W] = r[m + M103.W];
    r[x + M701.VA] = r[m + M103.VA];
    r[x + M701.PF] = Math.round(pf * 1000);
    r[x + M701.A] = r[m + M103.A];
    r[x + M701.LNV] = Math.round(((vph[0] + vph[1] + vph[2]) / 3) * 10);
    r[x + M701.LLV] = Math.round(((vph[0] + vph[1] + vph[2]) / 3) * Math.sqrt(3) * 10);
    setU32(r, x + M701.Hz, Math.round(hz * 100));
    setU64(r, x + M701.TotWhInj, BigInt(wh));
    r[x + M701.TmpCab] = r[m + M103.TmpCab];
    r[x + M701.TmpSnk] = r[m + M103.TmpSnk];
    [M701.L1, M701.L2, M701.L3].forEach((ph, i) => {
      r[x + ph + PHASE.W] = s16(Math.round(w / 3));
      r[x + ph + PHASE.VA] = s16(Math.round(w / 3 / pf));
      r[x + ph + PHASE.PF] = Math.round(pf * 1000);
      r[x + ph + PHASE.A] = Math.round(aph[i] * 100);
      r[x + ph + PHASE.VLN] = Math.round(vph[i] * 10);
      r[x + ph + PHASE.VLL] = r[m + [M103.PPVphAB, M103.PPVphBC, M103.PPVphCA][i]];
    });
  };
  refresh();
  d.onRead = (kind) => {
    if (kind === 'holding') refresh();
  };
  return d;
}
