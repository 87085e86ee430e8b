/**
 * Our units -> IEEE 2030.5 ReadingType, and the mapping of a batch's readings to what is posted.
 *
 * uom is the schema's UomType (sep.xsd, IEEE 2030.5-2018): a UInt8 whose annotation reads "The
 * following values are recommended values sourced from the unit of measure enumeration in IEC
 * 61968-9 [61968]. Other values from the unit of measure enumeration in IEC 61968-9 [61968] MAY be
 * used.", then lists among others:
 *   0 = Not Applicable (default, if not specified)   5 = A (Current in Amperes (RMS))
 *   6 = Kelvin (Temperature)   23 = Degrees Celsius (Relative temperature)   29 = Voltage
 *   31 = J (Energy joule)   33 = Hz (Frequency)   38 = W (Real power in Watts)   61 = VA
 *   63 = var (Reactive power)   65 = CosTheta (Displacement Power Factor)   71 = VAh
 *   72 = Wh (Real energy in Watt-hours)   73 = varh (Reactive energy)   106 = Ah
 * The list has no percent and no unit of time. Its codes are those of the CIM UnitSymbol
 * enumeration that IEC 61968-9 uses, where s = 4 (min = 85, h = 84): durations are posted in
 * seconds, the SI unit, under that "MAY". A percentage is a dimensionless fraction: 0 (not
 * applicable) with the value divided by 100, kept to 0.01 % (multiplier -4). A point named as a
 * power factor (PF, PFL1..3, power_factor, cosPhi) without a unit or in percent (SunSpec PF in
 * models 101-103 is 'Pct') is 65, cos theta, at 0.001.
 *
 * A posted value is round(v * factor * 10^(scale - multiplier)): factor and scale bring our unit
 * to the 2030.5 one (kW -> W: scale 3; min -> s: factor 60; % -> fraction: scale -2), multiplier
 * is the ReadingType powerOfTenMultiplier chosen for the resolution kept (V: -1 = 0.1 V). A
 * unitless point ('') has no resolution we could know: it is posted as is (counts, enums,
 * bitfields) and a fractional value is skipped (`not_integer`) rather than rounded.
 * kind: 37 power, 12 energy, 0 n/a. accumulationBehaviour: 12 instantaneous, 9 summation (energy
 * registers). commodity: 1 electricity secondary metered, 0 n/a.
 */
import type { ReadingSpec, ReadingTypeSpec } from './xml.js';

export interface UnitRule {
  uom: number; multiplier: number; scale: number; factor: number; kind: number; accumulationBehaviour: number; commodity: number;
  /** Only whole values are exact at this multiplier; others are skipped. */
  whole: boolean;
}
const u = (uom: number, multiplier: number, o: Partial<UnitRule> = {}): UnitRule =>
  Object.freeze({ uom, multiplier, scale: 0, factor: 1, kind: 0, accumulationBehaviour: 12, commodity: 1, whole: false, ...o });
const POWER = { kind: 37 };
const ENERGY = { kind: 12, accumulationBehaviour: 9 };
const NA = { commodity: 0 };
const PERCENT = u(0, -4, { scale: -2, commodity: 0 });

export const UNIT_TABLE: Readonly<Record<string, UnitRule>> = Object.freeze({
  V: u(29, -1), mV: u(29, -3, { scale: -3 }), kV: u(29, -1, { scale: 3 }),
  A: u(5, -2), mA: u(5, -3, { scale: -3 }), kA: u(5, -2, { scale: 3 }),
  W: u(38, 0, POWER), kW: u(38, 0, { ...POWER, scale: 3 }), MW: u(38, 0, { ...POWER, scale: 6 }),
  // 'Var' and 'Varh' are SunSpec's spelling, 'VAr' and 'VArh' the CIM's.
  var: u(63, 0, POWER), Var: u(63, 0, POWER), VAr: u(63, 0, POWER), kvar: u(63, 0, { ...POWER, scale: 3 }), Mvar: u(63, 0, { ...POWER, scale: 6 }),
  VA: u(61, 0, POWER), kVA: u(61, 0, { ...POWER, scale: 3 }), MVA: u(61, 0, { ...POWER, scale: 6 }),
  Wh: u(72, 0, ENERGY), kWh: u(72, 0, { ...ENERGY, scale: 3 }), MWh: u(72, 0, { ...ENERGY, scale: 6 }),
  varh: u(73, 0, ENERGY), Varh: u(73, 0, ENERGY), VArh: u(73, 0, ENERGY), kvarh: u(73, 0, { ...ENERGY, scale: 3 }),
  VAh: u(71, 0, ENERGY), kVAh: u(71, 0, { ...ENERGY, scale: 3 }),
  Hz: u(33, -2), Ah: u(106, -2, { accumulationBehaviour: 9 }), J: u(31, 0), PF: u(65, -3), cosPhi: u(65, -3),
  C: u(23, -1, NA), '°C': u(23, -1, NA), degC: u(23, -1, NA), K: u(6, -1, NA),
  '%': PERCENT, Pct: PERCENT,
  s: u(4, 0, NA), ms: u(4, -3, { ...NA, scale: -3 }), min: u(4, 0, { ...NA, factor: 60 }), h: u(4, 0, { ...NA, factor: 3600 }),
  '': u(0, 0, { ...NA, whole: true }),
});

/** Power factor by a point's name (after the last '.': m701.PFL1), for the units a power factor comes in. */
const POWER_FACTOR_NAME = /^(?:pf(?:l[123])?|power_?factor|cos_?phi)(?:[_-]?(?:l[123]|ph[abc]|\d+))?$/i;
const POWER_FACTOR: Readonly<Record<string, UnitRule>> = Object.freeze({ '': u(65, -3), '%': u(65, -3, { scale: -2 }), Pct: u(65, -3, { scale: -2 }) });

/** The rule for a point in a unit; undefined when 2030.5 has no unit for it. */
export function ruleFor(point: string, unit: string): UnitRule | undefined {
  if (Object.hasOwn(POWER_FACTOR, unit) && POWER_FACTOR_NAME.test(point.slice(point.lastIndexOf('.') + 1))) return POWER_FACTOR[unit];
  return Object.hasOwn(UNIT_TABLE, unit) ? UNIT_TABLE[unit] : undefined;
}

/** Why a reading was left out of a post. */
export type SkipReason = 'unknown_unit' | 'not_numeric' | 'not_implemented' | 'not_integer' | 'out_of_range' | 'malformed' | 'unit_mismatch';
export const SKIP_REASONS: readonly SkipReason[] = Object.freeze(['unknown_unit', 'not_numeric', 'not_implemented', 'not_integer', 'out_of_range', 'malformed', 'unit_mismatch']);
/** A skip reason in words, for logs. */
export function describeSkip(reason: SkipReason, unit: string): string {
  switch (reason) {
    case 'unknown_unit': return `unit '${unit}' has no IEEE 2030.5 unit of measure`;
    case 'not_numeric': return 'the value is not a number';
    case 'not_implemented': return 'the device does not implement the point';
    case 'not_integer': return 'a fractional value without a unit (no resolution to post it at)';
    case 'out_of_range': return 'the value is outside the Int48 range of a 2030.5 reading';
    case 'malformed': return 'not a reading';
    case 'unit_mismatch': return `unit '${unit}' is not the unit the point came with first in the batch`;
  }
}
/** Readings of one point left out for one reason (`unit` as the first of them had it). */
export interface PointSkip { point: string; reason: SkipReason; unit: string; readings: number }
export interface PointReadings { point: string; rule: UnitRule; readings: ReadingSpec[] }
export interface MappedBatch { points: PointReadings[]; skipped: PointSkip[] }

const INT48_MAX = 2 ** 47 - 1;
const INT48_MIN = -(2 ** 47);

type Row = { point?: unknown; ts?: unknown; value?: unknown; unit?: unknown; quality?: unknown; clock?: unknown } | null | undefined;

/** Our readings `{device, point, ts (ms), value, unit, quality}` by point, sorted by start (ts in whole
 *  seconds), values integers at the unit's multiplier, qualityFlags bit 0 (valid) for 'good' else
 *  bit 4 (questionable). A reading stamped by an unsynchronised clock (`clock: 'unsynced'`) is
 *  questionable whatever its quality; one re-based since (`clock: 'rebased'`) also has bit 5
 *  (derived: its time was computed). A point keeps the unit it first came with. What cannot be
 *  posted is counted by point and reason in `skipped`. */
export function mapReadings(rows: readonly unknown[]): MappedBatch {
  const groups = new Map<string, PointReadings & { unit: string }>();
  const skips = new Map<string, PointSkip>();
  const skip = (point: string, reason: SkipReason, unit: string) => {
    const k = `${point}\u0000${reason}`;
    const s = skips.get(k);
    if (s) s.readings++;
    else skips.set(k, { point, reason, unit, readings: 1 });
  };
  for (const x of rows as Row[]) {
    const unit = typeof x?.unit === 'string' ? x.unit : '';
    if (!x || typeof x.point !== 'string' || typeof x.ts !== 'number' || !Number.isFinite(x.ts)) {
      skip(typeof x?.point === 'string' ? x.point : '', 'malformed', unit);
      continue;
    }
    const rule = ruleFor(x.point, unit);
    if (!rule) { skip(x.point, 'unknown_unit', unit); continue; }
    if (x.quality === 'not_implemented') { skip(x.point, 'not_implemented', unit); continue; }
    if (typeof x.value !== 'number' || !Number.isFinite(x.value)) { skip(x.point, 'not_numeric', unit); continue; }
    if (rule.whole && !Number.isInteger(x.value)) { skip(x.point, 'not_integer', unit); continue; }
    const value = Math.round(x.value * rule.factor * 10 ** (rule.scale - rule.multiplier));
    if (value > INT48_MAX || value < INT48_MIN) { skip(x.point, 'out_of_range', unit); continue; }
    let g = groups.get(x.point);
    if (!g) groups.set(x.point, (g = { point: x.point, rule, unit, readings: [] }));
    if (g.unit !== unit) { skip(x.point, 'unit_mismatch', unit); continue; }
    const flags = x.clock === 'unsynced' ? 0x10 : (x.quality === 'good' ? 0x01 : 0x10) | (x.clock === 'rebased' ? 0x20 : 0);
    g.readings.push({ start: Math.floor(x.ts / 1000), duration: 0, value, qualityFlags: flags });
  }
  const points = [...groups.values()].map(({ point, rule, readings }) => ({ point, rule, readings: readings.sort((a, b) => a.start - b.start) }));
  return { points, skipped: [...skips.values()] };
}

/** IEC phase from a point name's suffix (_l1/_l2/_l3, phA/phB/phC): 128 A, 64 B, 32 C; else 0. */
export function phaseOf(point: string): number {
  const m = /(?:^|[_.-])l([123])$/i.exec(point) ?? /ph([abc])$/i.exec(point);
  return m ? [128, 64, 32]['1a2b3c'.indexOf(m[1].toLowerCase()) >> 1] : 0;
}

/** The ReadingType of a point: instantaneous/summation, no interval, flow direction n/a. */
export function readingTypeFor({ point, rule: r }: PointReadings): ReadingTypeSpec {
  return { accumulationBehaviour: r.accumulationBehaviour, commodity: r.commodity, dataQualifier: 0, flowDirection: 0,
    intervalLength: 0, kind: r.kind, phase: phaseOf(point), powerOfTenMultiplier: r.multiplier, uom: r.uom };
}
