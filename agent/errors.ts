/**
 * The one catalogue of Holdfast's stable error codes: the entries live in ./error-catalogue.ts
 * (class, meaning, what to do), this module has the types and helpers around them.
 *
 * A code is an API: it appears the same in logs, the console, MQTT fault events and the
 * `recovery_tasks.last_error_code` column. The catalogue is documented in docs/errors.md,
 * generated from it by scripts/errors-doc.ts (test/errors.test.ts fails when it is stale).
 * Codes that carry a number from the wire are families: `MQTT_0x87` is an instance of
 * `MQTT_0xNN`, `HTTP_503` of `HTTP_NNN`.
 *
 * gRPC statuses are the family `GRPC_<NAME>` (grpcCode(14) = GRPC_UNAVAILABLE). Unlike MQTT
 * reasons and HTTP statuses they are a closed set of 16 names, each with its own class and
 * remedy, so each name is a catalogue entry of its own (and a row of the generated table);
 * a number without a name (a newer gRPC) is `GRPC_STATUS_NN`, e.g. GRPC_STATUS_17.
 *
 * Expected failures on the wire are *results* (see drivers/uplink.ts), not exceptions;
 * HoldfastError is for bad input and broken invariants: a refused config, an unreadable key.
 */

import { CODES, type CodeClass } from './error-catalogue.js';
import { GRPC_STATUS_NAMES } from '../drivers/otlp/grpc-status.js';
import { CODED_ERROR } from '../store/errors.js';

export { CLASSES, CODES, type CodeClass, type CodeDoc } from './error-catalogue.js';

/** The fault class stored with each failure (`fault_class`), set by the classifiers. */
export type FaultClass = 'physical' | 'device' | 'config' | 'network' | 'upstream' | 'local' | 'payload';

export type CatalogCode = keyof typeof CODES;
/** A concrete code: a catalogue code, or an instance of one of the families. */
export type ErrorCode = CatalogCode | `MQTT_0x${string}` | `HTTP_${number}` | `MODBUS_EXCEPTION_${string}` | `GRPC_STATUS_${number}`;

/**
 * A coded error: raised here, or by a lower room with an error class of its own (store/errors.ts
 * StoreError) that carries the same mark, so `e instanceof HoldfastError` and isHoldfastError()
 * hold for both without the rooms importing the agent.
 */
export class HoldfastError extends Error {
  static override [Symbol.hasInstance](v: unknown): boolean {
    // Subclasses (ConfigError, ProfileError) keep the ordinary prototype check.
    if (this !== HoldfastError) return Function.prototype[Symbol.hasInstance].call(this, v);
    return v instanceof Error && (v as { [CODED_ERROR]?: unknown })[CODED_ERROR] === true;
  }

  readonly [CODED_ERROR] = true;
  readonly code: ErrorCode;
  /** The config path, file or value at fault, when there is one. */
  readonly at?: string;
  constructor(code: ErrorCode, message: string, at?: string, options?: { cause?: unknown }) {
    super(at ? `${code}: ${at}: ${message}` : `${code}: ${message}`, options);
    this.name = 'HoldfastError';
    this.code = code;
    this.at = at;
  }
}

export function isHoldfastError(e: unknown, code?: ErrorCode): e is HoldfastError {
  return e instanceof HoldfastError && (code === undefined || e.code === code);
}

/** Formats an MQTT reason code as its stable error code, e.g. 135 -> MQTT_0x87. */
export function mqttCode(reason: number): ErrorCode {
  return `MQTT_0x${reason.toString(16).padStart(2, '0').toUpperCase()}` as ErrorCode;
}

export { GRPC_STATUS_NAMES };

/**
 * Formats a (non-OK) gRPC status as its stable error code: 14 -> GRPC_UNAVAILABLE; a number
 * without a name -> GRPC_STATUS_NN (e.g. GRPC_STATUS_17). Callers never pass 0 (OK).
 */
export function grpcCode(status: number): ErrorCode {
  if (Number.isInteger(status) && status > 0 && status < GRPC_STATUS_NAMES.length) return `GRPC_${GRPC_STATUS_NAMES[status]}` as ErrorCode;
  return `GRPC_STATUS_${status}` as ErrorCode;
}

/** The catalogue entry a concrete code belongs to (MQTT_0x87 -> MQTT_0xNN). */
export function familyOf(code: string): CatalogCode | undefined {
  if (Object.hasOwn(CODES, code)) return code as CatalogCode;
  if (/^MQTT_0x[0-9A-F]{2}$/.test(code)) return 'MQTT_0xNN';
  if (/^HTTP_\d{3}$/.test(code)) return 'HTTP_NNN';
  if (/^MODBUS_EXCEPTION_[0-9A-F]{2}$/.test(code)) return 'MODBUS_EXCEPTION_NN';
  if (/^GRPC_STATUS_\d+$/.test(code)) return 'GRPC_STATUS_NN';
  return undefined;
}

/** A catalogue entry's classes as a list: one, or several when the case decides. */
export function classesOf(code: CatalogCode): readonly CodeClass[] {
  const c: CodeClass | readonly CodeClass[] = CODES[code].class;
  return typeof c === 'string' ? [c] : c;
}
