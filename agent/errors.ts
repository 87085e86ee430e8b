/**
 * The one catalogue of Holdfast's stable error codes.
 *
 * A code is an API: it appears the same in logs, the console, MQTT fault events and the
 * `recovery_tasks.last_error_code` column, and every code here is documented in the README
 * (test/errors.test.ts fails when one is not). Codes that carry a number from the wire are
 * families: `MQTT_0x87` is an instance of `MQTT_0xNN`, `HTTP_503` of `HTTP_NNN`.
 *
 * gRPC statuses are the family `GRPC_<NAME>` (grpcCode(14) = GRPC_UNAVAILABLE). Unlike MQTT
 * reasons and HTTP statuses they are a closed set of 16 names, each with its own class and
 * remedy, so each name is a catalogue entry of its own (and a row of the README's table);
 * a number without a name (a newer gRPC) is `GRPC_STATUS_NN`, e.g. GRPC_STATUS_17.
 *
 * Expected failures on the wire are *results* (see drivers/uplink.ts), not exceptions;
 * HoldfastError is for bad input and broken invariants: a refused config, an unreadable key.
 */

export type FaultClass = 'physical' | 'device' | 'config' | 'network' | 'upstream' | 'local' | 'payload';

export const CODES = {
  // upstream / network (link scope)
  ETIMEDOUT: 'the peer did not answer in time',
  ECONNREFUSED: 'nothing listens on the upstream address',
  ECONNRESET: 'the upstream closed the connection mid-stream',
  EHOSTUNREACH: 'no route to the upstream host',
  ENETUNREACH: 'the network is down (no route at all)',
  ENOTFOUND: 'the upstream host name does not resolve',
  EAI_AGAIN: 'name resolution failed temporarily',
  EPIPE: 'wrote to a connection the upstream had closed',
  TLS_CERT_INVALID: 'the TLS certificate was refused (expired, unknown CA, wrong host)',
  MQTT_0xNN: 'an MQTT 5 reason code >= 0x80 from CONNACK, PUBACK or DISCONNECT, e.g. MQTT_0x87 (not authorised)',
  MQTT_ACK_TIMEOUT: 'a QoS 1 PUBLISH got no PUBACK within ackTimeoutMs',
  MQTT_DISCONNECTED: 'the MQTT connection dropped while the message was in flight',
  HTTP_NNN: 'an HTTP status from an upstream, e.g. HTTP_503',
  // gRPC statuses (OTLP/gRPC uplinks); agent/policy/classify.ts GRPC_TABLE says what each does
  GRPC_CANCELLED: 'gRPC CANCELLED: the call was cancelled before it completed (channel closed, collector cancelled it)',
  GRPC_UNKNOWN: 'gRPC UNKNOWN: the collector failed without saying why',
  GRPC_INVALID_ARGUMENT: 'gRPC INVALID_ARGUMENT: the collector refuses this batch as malformed',
  GRPC_DEADLINE_EXCEEDED: 'gRPC DEADLINE_EXCEEDED: no answer within the call deadline (timeoutMs)',
  GRPC_NOT_FOUND: 'gRPC NOT_FOUND: the collector (or a proxy in front of it) found no such resource',
  GRPC_ALREADY_EXISTS: 'gRPC ALREADY_EXISTS: the collector says it has this data already',
  GRPC_PERMISSION_DENIED: 'gRPC PERMISSION_DENIED: the credentials are valid but not allowed to export here',
  GRPC_RESOURCE_EXHAUSTED: 'gRPC RESOURCE_EXHAUSTED: the collector is busy or rate-limits us (or the batch exceeds its maximum message size)',
  GRPC_FAILED_PRECONDITION: 'gRPC FAILED_PRECONDITION: the collector is not in a state to accept the export',
  GRPC_ABORTED: 'gRPC ABORTED: the collector aborted the call (a conflict on its side)',
  GRPC_OUT_OF_RANGE: 'gRPC OUT_OF_RANGE: the collector refused a value or time outside its range',
  GRPC_UNIMPLEMENTED: 'gRPC UNIMPLEMENTED: no OTLP MetricsService/Export at this address (wrong port, no metrics pipeline)',
  GRPC_INTERNAL: 'gRPC INTERNAL: an internal error in the collector or its pipeline',
  GRPC_UNAVAILABLE: 'gRPC UNAVAILABLE: the collector is (temporarily) unable to take the export',
  GRPC_DATA_LOSS: 'gRPC DATA_LOSS: the collector reports unrecoverable data loss or corruption',
  GRPC_UNAUTHENTICATED: 'gRPC UNAUTHENTICATED: the collector wants valid credentials (headersFile token, client certificate)',
  GRPC_STATUS_NN: 'a gRPC status number without a name in this build, e.g. GRPC_STATUS_17',
  UPLINK_ERROR: 'an upstream failure the classifier does not know (treated as a soft link failure)',
  // retry / delivery policy
  RETRY_LIMIT_EXCEEDED: 'a task used up its attempts or its age limit and was dead-lettered',
  // store
  IDEMPOTENCY_KEY_COLLISION: 'a batch arrived with an existing idempotency key but a different payload hash; refused',
  STORAGE_FULL: 'the store reached its byte quota (reserved: the quota lands with a later issue)',
  STORE_UNAVAILABLE: 'SQLite cannot be opened or written (missing data directory, disk error, read-only, corrupt)',
  INGEST_QUEUE_FULL: 'the in-memory ingest queue is full; the source is told to slow down and the refusal is counted',
  PAYLOAD_UNREADABLE: 'a stored payload failed decryption or decompression (wrong key, corrupted row)',
  SCHEMA_TOO_NEW: 'the database was written by a newer Holdfast (user_version ahead of this build)',
  // configuration and start-up
  CONFIG_NOT_FOUND: 'the configuration file does not exist or cannot be read',
  CONFIG_PARSE: 'the configuration file is not valid JSON',
  CONFIG_INVALID: 'the configuration breaks the schema (wrong type, unknown key, out of range)',
  CONFIG_REJECTED: 'a configuration was refused as a whole; nothing of it was applied',
  DATA_DIR_INSECURE: 'the data directory is accessible to group or others (must be 0700)',
  KEY_FILE_MISSING: 'encryption is on but the key file does not exist',
  KEY_FILE_INSECURE: 'the key file is accessible to group or others (must be 0600)',
  KEY_INVALID: 'the key file does not hold a 32-byte AES-256 key',
  USAGE: 'the command line is wrong; see --help',
  // field side and hardware (used by the drivers of later issues)
  MODBUS_TIMEOUT: 'a Modbus device did not answer within its timeout',
  MODBUS_CRC: 'a Modbus RTU frame failed its CRC',
  MODBUS_EXCEPTION_NN: 'a Modbus exception response, e.g. MODBUS_EXCEPTION_02 (illegal data address)',
  RS485_VOLTAGE_LOW: 'RS-485 bus voltage below its window (open bus, missing bias, short)',
  RS485_VOLTAGE_HIGH: 'RS-485 bus voltage above its window',
  SERIAL_PORT_ERROR: 'the serial port of an RTU bus failed or cannot be opened (errno in the detail: ENOENT, EACCES, EIO)',
  NETWORK_ERROR: 'a Modbus TCP connection failed with an errno not in this catalogue (errno in the detail)',
  THERMAL_THROTTLE: 'the CPU is at or above hardware.throttle.aboveC; drain, retries and polling slowed',
} as const;

export type CatalogCode = keyof typeof CODES;
/** A concrete code: a catalogue code, or an instance of one of the families. */
export type ErrorCode = CatalogCode | `MQTT_0x${string}` | `HTTP_${number}` | `MODBUS_EXCEPTION_${string}` | `GRPC_STATUS_${number}`;

export class HoldfastError extends Error {
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

/** gRPC status names by number (grpc/status.h); 0 (OK) is never a failure. */
export const GRPC_STATUS_NAMES: readonly string[] = Object.freeze([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
]);

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
