/**
 * The built-in device profiles of `holdfast simulate`: what a simulated unit holds.
 *
 * - counter: holding 0-1 is a uint32 (big-endian words) that goes up by one on every read
 *   request covering it, before the answer is built, so the value equals the number of reads
 *   the device served: a gap seen by the master is a lost answer. Holding 2-9 are scratch
 *   registers for write tests; coils 0-15 and discrete inputs 0-15 hold a fixed pattern.
 * - meter: a 3-phase energy meter in input registers (float32, big-endian words, like most
 *   DIN-rail meters) plus a few configuration holding registers; see METER for the layout.
 *   Values are pure functions of the time since the device was made (sums of slow sines), so
 *   they drift "realistically" yet deterministically; energy is the closed-form integral of the
 *   power's drift, so it only rises.
 * - sunspec-inverter: a SunSpec map at holding 40000 (see sunspec.ts).
 *
 * Values are encoded with the small helpers at the end of device.ts, not with
 * drivers/modbus/decode.ts: the simulator must not share a bug with the decoder it tests.
 */
import { SimDevice, setF32, setU32, wave, type DeviceOptions } from './device.js';
import { buildSunSpecInverter } from './sunspec.js';

export const PROFILES = ['counter', 'meter', 'sunspec-inverter'] as const;
export type ProfileName = (typeof PROFILES)[number];

export { setF32, setString, setU32, setU64 } from './device.js';

export function isProfile(name: string): name is ProfileName {
  return (PROFILES as readonly string[]).includes(name);
}

// --- counter --------------------------------------------------------------------------------

export const COUNTER = { VALUE: 0, SCRATCH: 2, SCRATCH_COUNT: 8, BITS: 16, BIT_PATTERN: 0b1010_0101_1100_0011 } as const;

function counter(opts: DeviceOptions): SimDevice {
  const d = new SimDevice('counter', opts).map('holding', 0, 2 + COUNTER.SCRATCH_COUNT).map('coil', 0, COUNTER.BITS).map('discrete', 0, COUNTER.BITS);
  for (let i = 0; i < COUNTER.BITS; i++) {
    d.setBit('coil', i, ((COUNTER.BIT_PATTERN >> i) & 1) === 1);
    d.setBit('discrete', i, ((COUNTER.BIT_PATTERN >> i) & 1) === 0);
  }
  let n = 0;
  d.onRead = (kind, address, count) => {
    if (kind === 'holding' && address < COUNTER.VALUE + 2 && address + count > COUNTER.VALUE) {
      n = (n + 1) >>> 0;
      setU32(d.holding, COUNTER.VALUE, n);
    }
  };
  return d;
}

// --- meter ----------------------------------------------------------------------------------

/** Input register addresses of the meter profile (float32 unless noted). */
export const METER = {
  V_L1: 0, V_L2: 2, V_L3: 4, // V, ~230
  I_L1: 6, I_L2: 8, I_L3: 10, // A, ~10
  P_TOTAL: 12, // W
  Q_TOTAL: 14, // var
  S_TOTAL: 16, // VA
  PF: 18, // 0..1
  FREQUENCY: 20, // Hz, ~50
  ENERGY_WH: 22, // uint32, Wh imported, rising
  INPUT_COUNT: 24,
  /** Holding: 0 unit id, 1 CT ratio, 2 PT ratio, 3 demand period (min), 4-5 read counter (uint32). */
  COUNTER: 4,
  HOLDING_COUNT: 6,
  ENERGY_START_WH: 1_234_567,
} as const;

/** The meter's readings at t seconds after start (exported so tests can check a window). */
export function meterAt(t: number) {
  const v = [0, 1, 2].map((ph) => 230 + wave(t, 2.5, 300, ph / 3) + wave(t, 0.4, 37, ph / 5));
  const load = 1 + wave(t, 0.1, 600); // common load swing of +-10 %
  const i = [0, 1, 2].map((ph) => 10 * load + [0.3, -0.2, 0.1][ph] + wave(t, 0.15, 53, ph / 3));
  const pf = 0.95 + wave(t, 0.02, 420);
  const s = v[0] * i[0] + v[1] * i[1] + v[2] * i[2];
  const p = s * pf;
  const q = Math.sqrt(Math.max(0, s * s - p * p));
  const hz = 50 + wave(t, 0.02, 120) + wave(t, 0.005, 11);
  // Energy: nominal power P0 with the same +-10 % swing, integrated in closed form (always rising).
  const p0 = 3 * 230 * 10 * 0.95;
  const joules = p0 * t + (p0 * 0.1 * 600 * (1 - Math.cos((2 * Math.PI * t) / 600))) / (2 * Math.PI);
  const wh = METER.ENERGY_START_WH + Math.floor(joules / 3600);
  return { v, i, p, q, s, pf, hz, wh };
}

function meter(opts: DeviceOptions, unit: number): SimDevice {
  const d = new SimDevice('meter', opts).map('input', 0, METER.INPUT_COUNT).map('holding', 0, METER.HOLDING_COUNT);
  d.holding.set([unit, 100, 1, 15], 0);
  const t0 = d.now();
  const refresh = () => {
    const m = meterAt(Math.max(0, d.now() - t0) / 1000);
    const r = d.input;
    [METER.V_L1, METER.V_L2, METER.V_L3].forEach((a, k) => setF32(r, a, m.v[k]));
    [METER.I_L1, METER.I_L2, METER.I_L3].forEach((a, k) => setF32(r, a, m.i[k]));
    setF32(r, METER.P_TOTAL, m.p);
    setF32(r, METER.Q_TOTAL, m.q);
    setF32(r, METER.S_TOTAL, m.s);
    setF32(r, METER.PF, m.pf);
    setF32(r, METER.FREQUENCY, m.hz);
    setU32(r, METER.ENERGY_WH, m.wh);
  };
  refresh();
  let n = 0;
  d.onRead = (kind, address, count) => {
    if (kind === 'input') refresh();
    // The counter rises by one per read that covers it: a gap downstream is a lost reading.
    if (kind === 'holding' && address < METER.COUNTER + 2 && address + count > METER.COUNTER) {
      n = (n + 1) >>> 0;
      setU32(d.holding, METER.COUNTER, n);
    }
  };
  return d;
}

/** A fresh device of `profile`; `unit` is what the device reports as its own address. */
export function createDevice(profile: ProfileName, unit: number, opts: DeviceOptions = {}): SimDevice {
  switch (profile) {
    case 'counter':
      return counter(opts);
    case 'meter':
      return meter(opts, unit);
    case 'sunspec-inverter':
      return buildSunSpecInverter(new SimDevice('sunspec-inverter', opts), unit);
  }
}
