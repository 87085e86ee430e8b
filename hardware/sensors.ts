/**
 * BoardSensors: what the agent asks of the board, answered from a profile through Sysfs.
 *
 *   cpuTempC()        the hottest readable thermal zone of the profile (the throttle decision
 *                     wants the worst case). When none is readable and the profile says
 *                     temperatureFallback 'systeminformation' (generic-linux), the npm
 *                     systeminformation package is asked (cpuTemperature().main), loaded lazily
 *                     so boards with thermal zones never pay for it; when it finds none, it is
 *                     asked again only after FALLBACK_QUIET_MS. Never throws: null means
 *                     "no temperature known", and the throttle then stays off.
 *   busVolts(bus)     the bus voltage from the profile's IIO source for that bus, or null
 *                     (no source, read failed: see sysfs.lastError()). A null reading
 *                     changes no fault verdict (agent/policy/faults.ts).
 *   hasBusVoltage(b)  whether the profile has a voltage source for the bus at all.
 *   portPath(port)    a profile port name -> its device path; a path (/dev/...) is returned
 *                     unchanged, so configs may name either.
 *   faultLed(on)      the `fault` LED role, when the board has one; false when it has none.
 *
 * Buses are looked up by the profile's bus name, or else by the name of the port they use,
 * so a config bus called like the profile bus (or like its port) finds its voltage source.
 * The systeminformation reader is injectable for tests.
 */
import type { BoardProfile, BusDef } from './profile.js';
import { Sysfs } from './sysfs.js';

/** Reads the CPU temperature another way; resolves to null when it cannot. */
export type TempFallback = () => Promise<number | null>;

/** systeminformation's cpuTemperature().main; null when unknown (it reports null or -1). */
export const systeminformationTemp: TempFallback = async () => {
  try {
    const si = await import('systeminformation');
    const t = (await si.cpuTemperature()).main;
    return typeof t === 'number' && Number.isFinite(t) && t > -50 && t < 200 ? t : null;
  } catch {
    return null;
  }
};

export interface SensorOptions {
  /** Replaces systeminformation (tests). */
  fallback?: TempFallback;
  /** Monotonic ms (tests); default performance.now. */
  now?: () => number;
}

/**
 * After the fallback found no temperature, it is asked again only this much later: on a machine
 * without sensors, systeminformation spawns commands at every sample for nothing.
 */
export const FALLBACK_QUIET_MS = 10 * 60_000;

export class BoardSensors {
  private readonly fallback: TempFallback;
  private readonly now: () => number;
  private fallbackQuietUntil = -Infinity;

  constructor(
    readonly profile: BoardProfile,
    readonly sysfs: Sysfs = new Sysfs(),
    opts: SensorOptions = {},
  ) {
    this.fallback = opts.fallback ?? systeminformationTemp;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The hottest readable thermal zone, else the fallback when the profile allows it, else null. */
  async cpuTempC(): Promise<number | null> {
    let max: number | null = null;
    for (const zone of this.profile.thermalZones) {
      const c = this.sysfs.readThermalC(zone);
      if (c !== null && (max === null || c > max)) max = c;
    }
    if (max !== null || this.profile.temperatureFallback !== 'systeminformation') return max;
    if (this.now() < this.fallbackQuietUntil) return null;
    let t: number | null = null;
    try {
      t = await this.fallback();
    } catch {
      t = null;
    }
    if (t === null) this.fallbackQuietUntil = this.now() + FALLBACK_QUIET_MS;
    return t;
  }

  private bus(name: string): BusDef | undefined {
    const buses = this.profile.buses;
    if (Object.hasOwn(buses, name)) return buses[name];
    return Object.values(buses).find((b) => b.port === name);
  }

  hasBusVoltage(bus: string): boolean {
    return this.bus(bus)?.voltage.type === 'iio';
  }

  /** Volts on the bus, or null (no source on this board, or the read failed). */
  busVolts(bus: string): number | null {
    const v = this.bus(bus)?.voltage;
    return v?.type === 'iio' ? this.sysfs.readAdcVolts(v) : null;
  }

  /** A profile port name -> device path; anything else unchanged. */
  portPath(port: string): string {
    const ports = this.profile.serialPorts;
    return Object.hasOwn(ports, port) ? ports[port].device : port;
  }

  /** Whether the port's kernel driver supports RS-485 mode (false for unknown ports). */
  supportsRs485(port: string): boolean {
    const ports = this.profile.serialPorts;
    if (Object.hasOwn(ports, port)) return ports[port].rs485;
    return Object.values(ports).find((p) => p.device === port)?.rs485 ?? false;
  }

  /** Lights or clears the fault LED; false when the board has none or the write failed. */
  faultLed(on: boolean): boolean {
    return this.led('fault', on);
  }

  /** Any LED role of the profile (fault, status, ...). */
  led(role: string, on: boolean): boolean {
    const leds = this.profile.leds;
    return Object.hasOwn(leds, role) ? this.sysfs.setLed(leds[role], on) : false;
  }
}
