/**
 * Fault scripts: faults switched on and off over time, so a long test (or a demo run of
 * `holdfast simulate ... --faults FILE`) can walk a device through "fine, slow, silent, fine,
 * garbage, fine" without the test poking the simulator itself.
 *
 *   [ { "atMs": 0,    "set": { "slowMs": 300 } },
 *     { "atMs": 2000, "unit": 2, "set": { "silence": true, "slowMs": null } },
 *     { "atMs": 5000, "set": { "disconnect": 1500 } },
 *     { "atMs": 8000, "set": { "silence": null, "corruptCrc": { "every": 3 } } } ]
 *
 * Each step merges `set` into the faults of unit `unit` (every device when absent) at `atMs`
 * after the script starts; null switches a fault off; `disconnect` is an action (see device.ts).
 * The validator is strict and names the step and the key at fault: a typo in a fault script
 * silently testing nothing would be worse than a refusal.
 *
 * A step may also set the RS-485 bus voltage the agent will read: `{ "atMs": 3000, "busVolts": 1.2 }`
 * writes the fake IIO channel given to the simulator (`--adc FILE`, the `in_voltageN_raw` file of
 * a fake sysfs tree), using the `_scale` file beside it (mV per LSB) and the divider.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { FaultPatch, Faults, SimDevice } from './device.js';

export interface FaultStep {
  atMs: number;
  /** Only this unit id; every device when absent. */
  unit?: number;
  set: FaultPatch;
  /** Bus voltage to write to the fake ADC channel (needs an AdcTarget). */
  busVolts?: number;
}

/** The fake IIO channel a fault script writes bus voltages to. */
export interface AdcTarget {
  /** `.../iio:deviceN/in_voltageM_raw` */
  rawFile: string;
  /** The board profile's divider ratio (volts on the bus per volt at the ADC). */
  divider: number;
}

/** Writes `volts` as the raw count the agent's sysfs reader turns back into `volts`. */
export function writeBusVolts(adc: AdcTarget, volts: number): void {
  const scaleFile = adc.rawFile.replace(/_raw$/, '_scale');
  const mvPerLsb = existsSync(scaleFile) ? Number(readFileSync(scaleFile, 'utf8').trim()) || 1 : 1;
  writeFileSync(adc.rawFile, `${Math.round((volts / adc.divider) * 1000 / mvPerLsb)}\n`);
}

export class FaultScriptError extends Error {
  override name = 'FaultScriptError';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number, max: number): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

type Check = (v: unknown) => string | undefined;
const bool: Check = (v) => (typeof v === 'boolean' ? undefined : 'must be true or false');
const CHECKS: Record<keyof Faults, Check> = {
  silence: bool,
  wrongUnit: bool,
  truncate: bool,
  garbage: bool,
  slowMs: (v) => (typeof v === 'number' && v >= 0 && Number.isFinite(v) ? undefined : 'must be a number of ms >= 0'),
  disconnect: (v) => (typeof v === 'number' && v > 0 && Number.isFinite(v) ? undefined : 'must be a number of ms > 0'),
  corruptCrc: (v) => {
    if (typeof v === 'number') return v >= 0 && v <= 1 ? undefined : 'a probability must be within 0..1';
    if (isObj(v) && Object.keys(v).length === 1 && isInt(v.every, 1, 1e9)) return undefined;
    return 'must be a probability 0..1 or { "every": N } with N >= 1';
  },
  exception: (v) => {
    if (!isObj(v) || !isInt(v.code, 1, 255)) return 'must be { "code": 1..255, "address"?: 0..65535 }';
    if (v.address !== undefined && !isInt(v.address, 0, 65535)) return 'address must be 0..65535';
    const extra = Object.keys(v).find((k) => k !== 'code' && k !== 'address');
    return extra ? `unknown key ${JSON.stringify(extra)}` : undefined;
  },
};

/** Validates a fault patch (also used for programmatic faults given as JSON). */
export function parseFaultPatch(v: unknown, where: string): FaultPatch {
  if (!isObj(v)) throw new FaultScriptError(`${where}: must be an object of faults`);
  for (const [k, val] of Object.entries(v)) {
    const check = (CHECKS as Record<string, Check | undefined>)[k];
    if (!check) throw new FaultScriptError(`${where}: unknown fault ${JSON.stringify(k)} (known: ${Object.keys(CHECKS).join(', ')})`);
    if (val === null) continue;
    const why = check(val);
    if (why) throw new FaultScriptError(`${where}.${k}: ${why}`);
  }
  return v as FaultPatch;
}

export function parseFaultScript(v: unknown, where = 'fault script'): FaultStep[] {
  if (!Array.isArray(v)) throw new FaultScriptError(`${where}: must be an array of { atMs, unit?, set }`);
  return v.map((step, i) => {
    const at = `${where}[${i}]`;
    if (!isObj(step)) throw new FaultScriptError(`${at}: must be an object { atMs, unit?, set }`);
    const extra = Object.keys(step).find((k) => k !== 'atMs' && k !== 'unit' && k !== 'set' && k !== 'busVolts');
    if (extra) throw new FaultScriptError(`${at}: unknown key ${JSON.stringify(extra)}`);
    if (typeof step.atMs !== 'number' || !(step.atMs >= 0)) throw new FaultScriptError(`${at}.atMs: must be a number of ms >= 0`);
    if (step.unit !== undefined && !isInt(step.unit, 0, 255)) throw new FaultScriptError(`${at}.unit: must be a unit id 0..255`);
    if (step.busVolts !== undefined && !(typeof step.busVolts === 'number' && step.busVolts >= 0 && step.busVolts < 100)) {
      throw new FaultScriptError(`${at}.busVolts: must be volts, 0..100`);
    }
    const set = step.set === undefined && step.busVolts !== undefined ? {} : parseFaultPatch(step.set, `${at}.set`);
    return { atMs: step.atMs, unit: step.unit as number | undefined, set, busVolts: step.busVolts as number | undefined };
  });
}

export function loadFaultScript(file: string): FaultStep[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FaultScriptError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FaultScriptError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseFaultScript(json, file);
}

export interface FaultScriptRun {
  stop(): void;
  /** Resolves after the last step was applied (or stop()). */
  done: Promise<void>;
}

/** Applies the steps at their times; unknown unit ids are refused up front. */
export function runFaultScript(steps: FaultStep[], devices: Map<number, SimDevice>, log?: (line: string) => void, adc?: AdcTarget): FaultScriptRun {
  for (const [i, s] of steps.entries()) {
    if (s.busVolts !== undefined && !adc) throw new FaultScriptError(`fault script[${i}].busVolts: the simulator was given no ADC file (--adc)`);
    if (s.unit !== undefined && !devices.has(s.unit)) throw new FaultScriptError(`fault script[${i}].unit: no simulated unit ${s.unit} (have: ${[...devices.keys()].join(', ')})`);
  }
  const timers = new Set<NodeJS.Timeout>();
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  let left = steps.length;
  if (left === 0) finish();
  for (const s of steps) {
    const timer = setTimeout(() => {
      timers.delete(timer);
      const targets = s.unit !== undefined ? [devices.get(s.unit)!] : [...new Set(devices.values())];
      for (const d of targets) d.setFaults(s.set);
      if (s.busVolts !== undefined) writeBusVolts(adc!, s.busVolts);
      log?.(`faults at +${s.atMs} ms${s.unit !== undefined ? ` (unit ${s.unit})` : ''}: ${JSON.stringify(s.set)}${s.busVolts !== undefined ? ` bus ${s.busVolts} V` : ''}`);
      if (--left === 0) finish();
    }, s.atMs);
    timer.unref();
    timers.add(timer);
  }
  return {
    done,
    stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      finish();
    },
  };
}
