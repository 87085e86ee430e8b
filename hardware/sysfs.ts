/**
 * The few sysfs files Holdfast touches, read under a configurable root.
 *
 * Every path is `<root>/sys/...` with root '/' on a board and a temp folder in tests, so the
 * readers are tested against a fake tree instead of real hardware (config: hardware.sysfsRoot).
 *
 *   readThermalC(zone)   <root>/sys/class/thermal/<zone>/temp, millidegrees Celsius.
 *   readAdcVolts(src)    IIO ABI: value = (raw + offset) * scale, in millivolts for voltage
 *                        channels; then / 1000 * src.scale (the external divider ratio).
 *                        raw: <dev>/<channel>_raw. scale: <channel>_scale, else the scale
 *                        shared by type (in_voltage_scale, as vf610/i.MX drivers expose it),
 *                        else 1 (some drivers, e.g. ti_am335x_adc, expose none: raw counts;
 *                        fold mV/LSB into src.scale then). offset likewise, else 0.
 *                        With src.name set, <dev>/name must match: IIO device numbers follow
 *                        probe order and can change when another IIO driver appears.
 *   setLed(name, on)     writes trigger `none` first when a trigger other than none is
 *                        active (else the trigger keeps overriding us), then brightness: 0,
 *                        or max_brightness when readable (a PWM LED at 1/255 looks off), else 1.
 *   ledState(name)       brightness > 0, or null.
 *
 * Reads never throw: a missing, unreadable or garbage file gives null, and the reason is kept
 * per sysfs path: lastError('/sys/class/thermal/thermal_zone0/temp') (the path as it is on a
 * board, without the root) or lastError() for the most recent one. A successful read clears
 * its path's reason. setLed does not throw either: it returns false and records the reason.
 * Names are checked (no '/', no '..') so a profile cannot point a read outside sysfs.
 * Synchronous on purpose: these are tiny kernel-generated files read every second or so.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IioVoltageSource } from './profile.js';

const SAFE_NAME = /^[A-Za-z0-9_:.+-]+$/;
const INT = /^-?\d+$/;
const FLOAT = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
/** Thermal readings outside this range (degrees C) are sensor errors, not temperatures. */
export const PLAUSIBLE_C = Object.freeze({ min: -60, max: 200 });

export interface SysfsError {
  path: string;
  reason: string;
}

export class Sysfs {
  private readonly errors = new Map<string, string>();
  private last: SysfsError | undefined;

  constructor(readonly root = '/') {}

  /** The reason the last read of `path` failed (undefined after a success), or the latest failure. */
  lastError(path?: string): SysfsError | undefined {
    if (path === undefined) return this.last;
    const reason = this.errors.get(path);
    return reason === undefined ? undefined : { path, reason };
  }

  /** Degrees C from a thermal zone, or null. */
  readThermalC(zone: string): number | null {
    const path = `/sys/class/thermal/${zone}/temp`;
    if (!this.safe(path, zone)) return null;
    const milli = this.readNumber(path, INT);
    if (milli === null) return null;
    const c = milli / 1000;
    if (c < PLAUSIBLE_C.min || c > PLAUSIBLE_C.max) return this.fail(path, `implausible temperature ${c} C`);
    return c;
  }

  /** Volts at the bus side of the divider, or null. */
  readAdcVolts(src: Pick<IioVoltageSource, 'device' | 'channel' | 'scale' | 'name'>): number | null {
    const dir = `/sys/bus/iio/devices/${src.device}`;
    const rawPath = `${dir}/${src.channel}_raw`;
    if (!this.safe(rawPath, src.device, src.channel)) return null;
    if (!Number.isFinite(src.scale) || src.scale <= 0) return this.fail(rawPath, `bad divider scale ${src.scale}`);
    if (src.name !== undefined) {
      const name = this.readText(`${dir}/name`);
      if (name === null) return null;
      if (name !== src.name) return this.fail(rawPath, `${src.device} is ${JSON.stringify(name)}, not ${JSON.stringify(src.name)}`);
    }
    const raw = this.readNumber(rawPath, INT);
    if (raw === null) return null;
    const shared = /^(in_[a-z]+)/.exec(src.channel)?.[1];
    const scale = this.optional([`${dir}/${src.channel}_scale`, shared && `${dir}/${shared}_scale`], 1);
    const offset = this.optional([`${dir}/${src.channel}_offset`, shared && `${dir}/${shared}_offset`], 0);
    if (scale === null || offset === null) return this.fail(rawPath, 'unreadable scale or offset');
    this.errors.delete(rawPath);
    return ((raw + offset) * scale) / 1000 * src.scale;
  }

  /** Switches an LED; false (with lastError) when it cannot. */
  setLed(name: string, on: boolean): boolean {
    const dir = `/sys/class/leds/${name}`;
    const brightness = `${dir}/brightness`;
    if (!this.safe(brightness, name)) return false;
    try {
      const trigger = this.abs(`${dir}/trigger`);
      if (existsSync(trigger)) {
        const text = readFileSync(trigger, 'utf8').trim();
        const active = /\[([^\]]+)\]/.exec(text)?.[1] ?? text;
        if (active !== 'none') writeFileSync(trigger, 'none');
      }
      const max = existsSync(this.abs(`${dir}/max_brightness`)) ? this.readNumber(`${dir}/max_brightness`, INT) : null;
      writeFileSync(this.abs(brightness), on ? String(max !== null && max >= 1 ? max : 1) : '0');
      this.errors.delete(brightness);
      return true;
    } catch (e) {
      this.fail(brightness, (e as Error).message);
      return false;
    }
  }

  /** true when lit, false when off, null when unknown. */
  ledState(name: string): boolean | null {
    const path = `/sys/class/leds/${name}/brightness`;
    if (!this.safe(path, name)) return null;
    const b = this.readNumber(path, INT);
    return b === null ? null : b > 0;
  }

  private abs(path: string): string {
    return join(this.root, path);
  }

  private safe(path: string, ...names: string[]): boolean {
    for (const n of names) {
      if (typeof n !== 'string' || !SAFE_NAME.test(n) || n.includes('..')) {
        this.fail(path, `unsafe name ${JSON.stringify(n)}`);
        return false;
      }
    }
    return true;
  }

  private fail(path: string, reason: string): null {
    this.errors.set(path, reason);
    this.last = { path, reason };
    return null;
  }

  private readText(path: string): string | null {
    try {
      const text = readFileSync(this.abs(path), 'utf8').trim();
      this.errors.delete(path);
      return text;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return this.fail(path, code === 'ENOENT' ? 'missing' : (e as Error).message);
    }
  }

  private readNumber(path: string, pattern: RegExp): number | null {
    const text = this.readText(path);
    if (text === null) return null;
    if (!pattern.test(text)) return this.fail(path, `not a number: ${JSON.stringify(text.slice(0, 40))}`);
    const n = Number(text);
    return Number.isFinite(n) ? n : this.fail(path, `not finite: ${text.slice(0, 40)}`);
  }

  /** The first of `paths` that exists, parsed as a float; `dflt` when none exists; null when garbage. */
  private optional(paths: (string | undefined | '')[], dflt: number): number | null {
    for (const p of paths) {
      if (!p || !existsSync(this.abs(p))) continue;
      return this.readNumber(p, FLOAT);
    }
    return dflt;
  }
}
