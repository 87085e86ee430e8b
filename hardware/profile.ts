/**
 * Board profiles: what a gateway board has, as data (hardware/profiles/*.json), not code.
 *
 * The agent runs on very different boards: a laptop with a USB adapter, a Raspberry Pi with
 * an RS-485 HAT, a DIN-rail gateway. What differs is which serial ports exist (and whether
 * the kernel driver does RS-485 direction control via TIOCSRS485), where a bus voltage can be
 * measured (an IIO ADC channel behind a divider, or nowhere), which thermal zones to read,
 * and which LEDs to light. A profile names these; hardware/sensors.ts reads them through
 * hardware/sysfs.ts. Each profile carries a `verified` section saying honestly what was
 * checked on a real board and what is only assumed from datasheets and kernel docs: a
 * profile nobody tried must not look like one somebody did.
 *
 * This room defines the format: the schema, the types, the cross-checks a schema cannot say
 * (profileProblems: a bus names an existing port) and where the shipped profiles are: next to
 * this module in the source layout (hardware/profile.ts -> hardware/profiles/) or two levels up
 * from the compiled one (dist/hardware/profile.js -> ../../hardware/profiles/). The agent reads
 * and checks a profile like the rest of the configuration (agent/config/formats.ts loadProfile).
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SerialPortDef {
  /** Device path, e.g. /dev/ttySC0. */
  device: string;
  /** The kernel driver supports RS-485 mode (TIOCSRS485, RTS direction control). */
  rs485: boolean;
  note?: string;
}
/** volts = (raw + offset) * scale_mV / 1000 * scale (the external divider ratio). */
export interface IioVoltageSource {
  type: 'iio';
  device: string;
  channel: string;
  scale: number;
  /** Expected content of <device>/name (e.g. ads1115): guards against IIO index reshuffles. */
  name?: string;
}
export type VoltageSource = IioVoltageSource | { type: 'none' };
export interface BusDef {
  /** A key of serialPorts. */
  port: string;
  voltage: VoltageSource;
}
export interface Verified {
  onRealHardware: boolean;
  verified: string[];
  notVerified: string[];
  assumptions: string[];
  sources: string[];
}
export interface BoardProfile {
  name: string;
  description: string;
  serialPorts: Record<string, SerialPortDef>;
  buses: Record<string, BusDef>;
  thermalZones: string[];
  /** When no thermal zone is readable: ask systeminformation, or report no temperature. */
  temperatureFallback: 'systeminformation' | 'none';
  /** Role (fault, status, ...) -> /sys/class/leds/<name>. */
  leds: Record<string, string>;
  verified: Verified;
}

/** A profile's bare name (the file's name without .json). */
export const PROFILE_NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
const key = PROFILE_NAME;
const strings = { type: 'array', items: { type: 'string', minLength: 1 } } as const;
export const profileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'description', 'serialPorts', 'buses', 'thermalZones', 'temperatureFallback', 'leds', 'verified'],
  properties: {
    $comment: { type: 'string' },
    name: { type: 'string', pattern: key },
    description: { type: 'string', minLength: 1 },
    serialPorts: {
      type: 'object',
      propertyNames: { pattern: key },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['device', 'rs485'],
        properties: { device: { type: 'string', pattern: '^/dev/[A-Za-z0-9_./-]+$' }, rs485: { type: 'boolean' }, note: { type: 'string' } },
      },
    },
    buses: {
      type: 'object',
      propertyNames: { pattern: key },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['port', 'voltage'],
        properties: {
          port: { type: 'string', minLength: 1 },
          voltage: {
            type: 'object',
            additionalProperties: false,
            required: ['type'],
            properties: {
              type: { enum: ['iio', 'none'] },
              device: { type: 'string', pattern: '^iio:device[0-9]+$' },
              channel: { type: 'string', pattern: '^in_voltage[0-9]+(-voltage[0-9]+)?$' },
              scale: { type: 'number', exclusiveMinimum: 0 },
              name: { type: 'string', minLength: 1 },
            },
          },
        },
      },
    },
    thermalZones: { type: 'array', items: { type: 'string', pattern: '^thermal_zone[0-9]+$' } },
    temperatureFallback: { enum: ['systeminformation', 'none'] },
    leds: { type: 'object', propertyNames: { pattern: key }, additionalProperties: { type: 'string', pattern: '^[^/\\s]+$' } },
    verified: {
      type: 'object',
      additionalProperties: false,
      required: ['onRealHardware', 'verified', 'notVerified', 'assumptions', 'sources'],
      properties: { onRealHardware: { type: 'boolean' }, verified: strings, notVerified: strings, assumptions: strings, sources: strings },
    },
  },
} as const;

/** One problem in a profile, by JSON path. */
export interface ProfileProblem {
  path: string;
  message: string;
}

/** What the schema cannot say: buses name existing ports, iio sources are complete, none is bare. */
export function profileProblems(p: BoardProfile): ProfileProblem[] {
  const problems: ProfileProblem[] = [];
  for (const [name, bus] of Object.entries(p.buses)) {
    const at = `/buses/${name}`;
    if (!Object.hasOwn(p.serialPorts, bus.port)) problems.push({ path: `${at}/port`, message: `no serial port ${JSON.stringify(bus.port)} in serialPorts` });
    const v = bus.voltage as unknown as Record<string, unknown>;
    if (v.type === 'iio') {
      for (const k of ['device', 'channel', 'scale']) if (v[k] === undefined) problems.push({ path: `${at}/voltage/${k}`, message: 'is required for an iio source' });
    } else {
      for (const k of Object.keys(v)) if (k !== 'type') problems.push({ path: `${at}/voltage/${k}`, message: 'not allowed with type "none"' });
    }
  }
  if (!p.verified.onRealHardware && p.verified.verified.length > 0) {
    problems.push({ path: '/verified/verified', message: 'lists checks although onRealHardware is false' });
  }
  return problems;
}

/** The profiles folder for the source layout or the compiled one (see header). */
export function profilesDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'profiles'), resolve(here, '../../hardware/profiles')];
  return candidates.find((d) => existsSync(d)) ?? candidates[0];
}

/** Names of the shipped profiles. */
export function listProfiles(): string[] {
  try {
    return readdirSync(profilesDir()).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}
