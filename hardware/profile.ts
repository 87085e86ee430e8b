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
 * loadProfile(nameOrFile): a bare name (`raspberry-pi-rs485-hat`) is looked up in the
 * profiles folder, found next to this module in the source layout (hardware/profile.ts ->
 * hardware/profiles/) or two levels up from the compiled one (dist/hardware/profile.js ->
 * ../../hardware/profiles/); anything with a slash or ending in .json is a file path. The
 * document is validated with ajv (the same style as agent/config/load.ts: every problem, by
 * JSON path) plus cross-checks (a bus names an existing port). Failures throw ProfileError,
 * a HoldfastError: CONFIG_NOT_FOUND, CONFIG_PARSE or CONFIG_INVALID, with `problems`.
 * This module does not import agent/config/load.ts, which imports it (no import cycle).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { HoldfastError } from '../agent/errors.js';
import { describeAjvError, lazyValidator } from '../agent/config/ajv-problems.js';

const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;

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

const key = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
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

const validate = lazyValidator(() => new Ajv({ allErrors: true, strict: true }).compile(profileSchema));

export interface ProfileProblem {
  path: string;
  message: string;
}
export class ProfileError extends HoldfastError {
  readonly problems: ProfileProblem[];
  constructor(code: 'CONFIG_INVALID' | 'CONFIG_PARSE' | 'CONFIG_NOT_FOUND', problems: ProfileProblem[], file?: string) {
    const lines = problems.map((p) => `  ${p.path || '/'}: ${p.message}`).join('\n');
    super(code, `board profile refused${file ? ` (${file})` : ''}:\n${lines}`, problems[0]?.path);
    this.name = 'ProfileError';
    this.problems = problems;
  }
}


/** What the schema cannot say: buses name existing ports, iio sources are complete, none is bare. */
function crossCheck(p: BoardProfile): ProfileProblem[] {
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

/** Validates a parsed profile; throws ProfileError CONFIG_INVALID with every problem. */
export function validateProfile(raw: unknown, label?: string): BoardProfile {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ProfileError('CONFIG_INVALID', [{ path: '/', message: 'must be a JSON object' }], label);
  // A bad key name yields a pattern error (with propertyName) and a propertyNames one: keep the latter.
  if (!validate(raw)) throw new ProfileError('CONFIG_INVALID', (validate.errors ?? []).filter((e) => e.keyword === 'propertyNames' || e.propertyName === undefined).map((e) => describeAjvError(e)), label);
  const profile = raw as unknown as BoardProfile;
  const problems = crossCheck(profile);
  if (problems.length > 0) throw new ProfileError('CONFIG_INVALID', problems, label);
  return profile;
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

/** Loads and validates a profile by bare name or file path. Throws ProfileError. */
export function loadProfile(nameOrFile: string): BoardProfile {
  const isFile = nameOrFile.includes('/') || nameOrFile.endsWith('.json');
  if (!isFile && !new RegExp(key).test(nameOrFile)) {
    throw new ProfileError('CONFIG_NOT_FOUND', [{ path: '/', message: `not a profile name: ${JSON.stringify(nameOrFile)}` }]);
  }
  const file = isFile ? resolve(nameOrFile) : join(profilesDir(), `${nameOrFile}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const known = isFile ? '' : ` (known profiles: ${listProfiles().join(', ') || 'none'})`;
    throw new ProfileError('CONFIG_NOT_FOUND', [{ path: '/', message: `cannot read ${file}: ${(e as Error).message}${known}` }], file);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ProfileError('CONFIG_PARSE', [{ path: '/', message: `not JSON: ${(e as Error).message}` }], file);
  }
  return validateProfile(raw, file);
}
