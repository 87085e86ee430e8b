/**
 * The file formats other rooms define, read and checked the way the configuration is: a device
 * map (drivers/modbus/devicemap.ts) and a board profile (hardware/profile.ts) each export their
 * schema, types and the rules a schema cannot say; here each file goes through the one reader
 * (json-file.ts), ajv (every problem, strict), then those rules, and is refused with every
 * problem by JSON path in a ConfigError.
 */
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { deviceMapProblems, deviceMapSchema } from '../../drivers/modbus/devicemap.js';
import type { DeviceMap } from '../../drivers/modbus/types.js';
import { listProfiles, PROFILE_NAME, profileProblems, profileSchema, profilesDir, type BoardProfile } from '../../hardware/profile.js';
import { describeAjvError, lazyValidator } from './ajv-problems.js';
import { ConfigError, deepFreeze, readJsonFile, type ConfigProblem } from './json-file.js';

// ajv ships CommonJS; createRequire keeps its types and avoids the default-export dance.
const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;

/** A board profile refused: one error class for every configuration file. */
export { ConfigError as ProfileError };

interface Format<T> {
  validate: ValidateFunction;
  /** ajv's errors as problems (a format may word or drop some). */
  describe: (errors: readonly ErrorObject[]) => ConfigProblem[];
  /** The rules the schema cannot say, on a document that passed it. */
  check: (doc: T) => ConfigProblem[];
}

const DEVICE_MAP: Format<DeviceMap> = {
  validate: lazyValidator(() => new Ajv({ allErrors: true, strict: true, allowUnionTypes: false }).compile(deviceMapSchema)),
  describe: (errors) => errors.map((e) => describeAjvError(e, 'must not be 0')),
  check: deviceMapProblems,
};

const PROFILE: Format<BoardProfile> = {
  validate: lazyValidator(() => new Ajv({ allErrors: true, strict: true }).compile(profileSchema)),
  // A bad key name yields a pattern error (with propertyName) and a propertyNames one: keep the latter.
  describe: (errors) => errors.filter((e) => e.keyword === 'propertyNames' || e.propertyName === undefined).map((e) => describeAjvError(e)),
  check: profileProblems,
};

/** Checks a parsed document against a format; returns a frozen copy. `label` names the source in the error. */
function checked<T>(f: Format<T>, raw: unknown, what: string, label?: string): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('CONFIG_INVALID', [{ path: '/', message: `a ${what} must be a JSON object` }], label);
  }
  const doc = structuredClone(raw);
  const problems = f.validate(doc) ? f.check(doc as T) : f.describe(f.validate.errors ?? []);
  if (problems.length > 0) throw new ConfigError('CONFIG_INVALID', problems, label);
  return deepFreeze(doc as T);
}

/** Validates a parsed device map. Throws ConfigError. */
export function validateDeviceMap(raw: unknown, label?: string): DeviceMap {
  return checked(DEVICE_MAP, raw, 'device map', label);
}

/** Reads and validates a device map file. Throws ConfigError. */
export function loadDeviceMap(file: string): DeviceMap {
  return validateDeviceMap(readJsonFile(file, 'device map'), file);
}

/** Validates a parsed board profile. Throws ConfigError (ProfileError). */
export function validateProfile(raw: unknown, label?: string): BoardProfile {
  return checked(PROFILE, raw, 'board profile', label);
}

/** Loads and validates a profile by bare name (in hardware/profiles/) or file path. Throws ConfigError. */
export function loadProfile(nameOrFile: string): BoardProfile {
  const isFile = nameOrFile.includes('/') || nameOrFile.endsWith('.json');
  if (!isFile && !new RegExp(PROFILE_NAME).test(nameOrFile)) {
    throw new ConfigError('CONFIG_NOT_FOUND', [{ path: '/', message: `not a profile name: ${JSON.stringify(nameOrFile)}` }]);
  }
  const file = isFile ? resolve(nameOrFile) : join(profilesDir(), `${nameOrFile}.json`);
  const known = isFile ? '' : ` (known profiles: ${listProfiles().join(', ') || 'none'})`;
  return validateProfile(readJsonFile(file, 'board profile', known), file);
}
