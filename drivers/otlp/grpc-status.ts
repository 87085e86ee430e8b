/**
 * What a failed OTLP/gRPC call said, as a RawFailure of kind 'grpc' (the numeric status, the
 * collector's message, and the retry_delay of a google.rpc.RetryInfo in the
 * `grpc-status-details-bin` trailer as retryAfterMs). The driver only reports; the decision
 * (scope, retry class, stable code GRPC_<NAME>) is agent/policy/classify.ts's GRPC_TABLE.
 *
 * A client-side UNAVAILABLE that carries a socket errno or an OpenSSL verify message is
 * reported as the socket or TLS failure it is (ECONNREFUSED, TLS_CERT_INVALID), not as a bare
 * status. RetryInfo is decoded by hand (a dozen lines of protobuf wire format) rather than
 * with a protobuf library the agent does not otherwise need at run time.
 */
import type { RawFailure } from '../uplink.js';

/** gRPC status names by number (grpc/status.h); 0 (OK) is never a failure. */
export const GRPC_STATUS_NAMES: readonly string[] = Object.freeze([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
]);


export const GrpcStatus = Object.freeze({
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const);

export function grpcStatusName(code: number): string {
  return Number.isInteger(code) && code >= 0 && code < GRPC_STATUS_NAMES.length ? GRPC_STATUS_NAMES[code] : `STATUS_${code}`;
}

/**
 * The RawFailure for a gRPC status: kind 'grpc', the number, the message prefixed with the
 * status name and number (for logs and `last_error`), and the RetryInfo hint when there was one.
 */
export function grpcRawFailure(code: number, message: string, retryAfterMs?: number): RawFailure {
  const raw: RawFailure = { kind: 'grpc', code, message: `gRPC ${grpcStatusName(code)} (${code}): ${message}` };
  if (retryAfterMs !== undefined) raw.retryAfterMs = retryAfterMs;
  return raw;
}

// --- what a failed call said, in Holdfast terms --------------------------------------------

/** OpenSSL verify messages (as grpc-js passes them on, without the code) and their Node codes. */
const TLS_MESSAGES: readonly [RegExp, string][] = [
  [/self[- ]signed certificate in certificate chain/i, 'SELF_SIGNED_CERT_IN_CHAIN'],
  [/self[- ]signed certificate/i, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  [/unable to verify the first certificate/i, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  [/unable to get local issuer certificate/i, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'],
  [/unable to get issuer certificate/i, 'UNABLE_TO_GET_ISSUER_CERT'],
  [/certificate has expired/i, 'CERT_HAS_EXPIRED'],
  [/certificate is not yet valid/i, 'CERT_NOT_YET_VALID'],
  [/certificate revoked/i, 'CERT_REVOKED'],
  [/certificate signature failure/i, 'CERT_SIGNATURE_FAILURE'],
  [/does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i, 'ERR_TLS_CERT_ALTNAME_INVALID'],
];

const ERRNO_RE = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE)\b/;

/**
 * What a failed unary call reports, as a RawFailure. A client-side UNAVAILABLE that carries a
 * socket errno ("No connection established. Last error: connect ECONNREFUSED ...") or an
 * OpenSSL verify message becomes a socket or TLS failure, so the lane sees ECONNREFUSED or
 * TLS_CERT_INVALID rather than a bare status; anything else is the status itself.
 */
export function rawFromGrpcError(code: number, details: string, statusDetailsBin?: Uint8Array): RawFailure {
  if (code === GrpcStatus.UNAVAILABLE) {
    for (const [re, tlsCode] of TLS_MESSAGES) if (re.test(details)) return { kind: 'tls', code: tlsCode, message: details };
    const errno = ERRNO_RE.exec(details);
    if (errno) return { kind: 'socket', code: errno[1], message: details };
  }
  return grpcRawFailure(code, details, statusDetailsBin ? retryDelayMs(statusDetailsBin) : undefined);
}

// --- google.rpc.Status / RetryInfo, decoded by hand -------------------------------------------
// status.proto:        Status    { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
// any.proto:           Any       { string type_url = 1; bytes value = 2; }
// error_details.proto: RetryInfo { google.protobuf.Duration retry_delay = 1; }
// duration.proto:      Duration  { int64 seconds = 1; int32 nanos = 2; }

export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

type Field = { n: number; varint?: bigint; bytes?: Uint8Array };

/** Top-level fields of a protobuf message; undefined when malformed. */
function fields(buf: Uint8Array): Field[] | undefined {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint | undefined => {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (i >= buf.length) return undefined;
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
    }
    return undefined;
  };
  while (i < buf.length) {
    const tag = varint();
    if (tag === undefined) return undefined;
    const n = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (wt === 0) {
      const v = varint();
      if (v === undefined) return undefined;
      out.push({ n, varint: v });
    } else if (wt === 2) {
      const len = varint();
      if (len === undefined || i + Number(len) > buf.length) return undefined;
      out.push({ n, bytes: buf.subarray(i, i + Number(len)) });
      i += Number(len);
    } else if (wt === 1) {
      i += 8;
    } else if (wt === 5) {
      i += 4;
    } else {
      return undefined;
    }
    if (i > buf.length) return undefined;
  }
  return out;
}

const toInt64 = (v: bigint): bigint => BigInt.asIntN(64, v);

/**
 * retry_delay of the first google.rpc.RetryInfo in a `grpc-status-details-bin` trailer (a
 * serialized google.rpc.Status), in whole milliseconds; undefined when absent, negative or
 * malformed. Never throws.
 */
export function retryDelayMs(statusDetailsBin: Uint8Array): number | undefined {
  const status = fields(statusDetailsBin);
  if (!status) return undefined;
  for (const d of status) {
    if (d.n !== 3 || !d.bytes) continue;
    const any = fields(d.bytes);
    if (!any) continue;
    const typeUrl = any.find((f) => f.n === 1 && f.bytes);
    const value = any.find((f) => f.n === 2 && f.bytes);
    if (!typeUrl?.bytes || new TextDecoder().decode(typeUrl.bytes) !== RETRY_INFO_TYPE_URL) continue;
    const info = fields(value?.bytes ?? new Uint8Array(0));
    const delay = info?.find((f) => f.n === 1 && f.bytes);
    if (!delay?.bytes) return undefined;
    const dur = fields(delay.bytes);
    if (!dur) return undefined;
    const seconds = toInt64(dur.find((f) => f.n === 1)?.varint ?? 0n);
    const nanos = Number(BigInt.asIntN(32, dur.find((f) => f.n === 2)?.varint ?? 0n));
    const ms = Number(seconds) * 1000 + Math.round(nanos / 1e6);
    return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
  }
  return undefined;
}
