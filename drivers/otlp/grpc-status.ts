/**
 * gRPC status codes as Holdfast failures: the table for the OTLP/gRPC uplink, pure and exported
 * so tests and docs can iterate it. It follows the OTLP specification's retryable/not-retryable
 * split, refined by Holdfast's two questions (see agent/policy/classify.ts):
 *
 *   OTLP "retryable"            CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
 *                               DATA_LOSS                          -> link, soft
 *   RESOURCE_EXHAUSTED          with google.rpc.RetryInfo          -> link, soft, retryAfterMs = retry_delay
 *                               "message larger than max" (the collector's max_recv_msg_size)
 *                                                                  -> payload, hard (like HTTP 413)
 *                               otherwise                          -> link, soft, DEFAULT_BUSY_HINT_MS
 *   INVALID_ARGUMENT            the batch is malformed             -> payload, hard (dead letter)
 *   UNAUTHENTICATED, PERMISSION_DENIED                             -> link, hard (hold + alarm)
 *   UNIMPLEMENTED               no MetricsService/Export there (wrong port, no metrics pipeline)
 *                                                                  -> link, hard
 *   everything else (UNKNOWN, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INTERNAL, unknown
 *   numbers)                    OTLP says "do not retry" but we are not sure the message is at
 *                               fault, and soft never loses data   -> link, soft
 *
 * Until classify.ts has a 'grpc' kind, the driver hands the lane `grpcRawFailure()`: the same
 * decision expressed as the HTTP status that classify.ts already maps the same way (the gRPC
 * name and number stay in the message). test/otlp.test.ts checks that both routes agree.
 */
import { DEFAULT_BUSY_HINT_MS, type Failure, type RawFailure, type Rule } from '../../agent/policy/classify.js';
import type { FaultClass } from '../../agent/errors.js';

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

/** The stable error code proposed for classify.ts / errors.ts: the family `GRPC_NAME`, e.g. GRPC_UNAVAILABLE. */
export type GrpcErrorCode = `GRPC_${string}`;

/** A Failure whose code is a GRPC_ family code (not yet in errors.ts's ErrorCode union). */
export type GrpcFailure = Omit<Failure, 'code'> & { code: GrpcErrorCode };

export function grpcStatusName(code: number): string {
  return Number.isInteger(code) && code >= 0 && code < GRPC_STATUS_NAMES.length ? GRPC_STATUS_NAMES[code] : `STATUS_${code}`;
}

export function grpcErrorCode(code: number): GrpcErrorCode {
  return `GRPC_${grpcStatusName(code)}`;
}

const linkSoft = (faultClass: FaultClass, note: string, defaultRetryAfterMs?: number): Rule =>
  defaultRetryAfterMs === undefined
    ? { scope: 'link', retry: 'soft', faultClass, note }
    : { scope: 'link', retry: 'soft', faultClass, defaultRetryAfterMs, note };
const linkHard = (note: string): Rule => ({ scope: 'link', retry: 'hard', faultClass: 'upstream', note });
const payloadHard = (note: string): Rule => ({ scope: 'payload', retry: 'hard', faultClass: 'payload', note });

/** The rows to merge into classify.ts (as GRPC_TABLE). Unlisted codes: GRPC_OTHER. */
export const GRPC_TABLE: Readonly<Record<number, Rule>> = Object.freeze({
  1: linkSoft('upstream', 'call cancelled'),
  3: payloadHard('invalid argument: the collector refuses this batch'),
  4: linkSoft('network', 'deadline exceeded: no answer in time'),
  7: linkHard('permission denied'),
  8: linkSoft('upstream', 'resource exhausted (collector busy or rate limited)', DEFAULT_BUSY_HINT_MS),
  10: linkSoft('upstream', 'aborted'),
  11: linkSoft('upstream', 'out of range'),
  12: linkHard('unimplemented: no OTLP MetricsService at this address'),
  14: linkSoft('upstream', 'unavailable'),
  15: linkSoft('upstream', 'data loss'),
  16: linkHard('unauthenticated'),
});
/** RESOURCE_EXHAUSTED because the request exceeds the server's maximum message size. */
export const GRPC_TOO_LARGE: Rule = Object.freeze(payloadHard('request larger than the collector accepts'));
export const GRPC_OTHER: Rule = Object.freeze(linkSoft('upstream', 'gRPC status without a rule of its own'));

/** grpc-js / grpc-go wording when a message exceeds grpc.max_receive_message_length. */
const TOO_LARGE_RE = /(?:message|request)\s+larger\s+than\s+max|exceeds\s+(?:the\s+)?max(?:imum)?\s+(?:message|receive)/i;

/** The rule for a status: GRPC_TABLE, refined for RESOURCE_EXHAUSTED (size vs busy). */
export function grpcRule(code: number, message: string, retryAfterMs?: number): Rule {
  if (code === GrpcStatus.RESOURCE_EXHAUSTED && retryAfterMs === undefined && TOO_LARGE_RE.test(message)) return GRPC_TOO_LARGE;
  return Object.prototype.hasOwnProperty.call(GRPC_TABLE, code) ? GRPC_TABLE[code] : GRPC_OTHER;
}

/**
 * Classifies a gRPC status. Pure, never throws; same contract as classify(): a hint on soft
 * failures only, the server's RetryInfo winning over the row's default.
 */
export function classifyGrpc(code: number, message: string, retryAfterMs?: number): GrpcFailure {
  const rule = grpcRule(code, message, retryAfterMs);
  const f: GrpcFailure = {
    code: grpcErrorCode(code),
    message: message || rule.note,
    scope: rule.scope,
    retry: rule.retry,
    faultClass: rule.faultClass,
  };
  if (rule.retry === 'soft') {
    const hint = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? retryAfterMs : rule.defaultRetryAfterMs;
    if (hint !== undefined) f.retryAfterMs = hint;
  }
  return f;
}

/**
 * The HTTP status classify.ts maps to the same scope and retry class as the gRPC row (the
 * mapping of the OTLP/HTTP spec where it exists). Used only until classify.ts knows 'grpc'.
 * UNIMPLEMENTED has no link-hard HTTP twin but 401/403, which would mislead: it travels as
 * 501 (link soft) until the merge.
 */
export const GRPC_AS_HTTP: Readonly<Record<number, number>> = Object.freeze({
  1: 503, 2: 500, 3: 400, 4: 504, 5: 404, 6: 500, 7: 403, 8: 429, 9: 500, 10: 503, 11: 500,
  12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
});

/**
 * The RawFailure the driver reports today for a gRPC status: kind 'http' with the twin status
 * (413 for a too-large RESOURCE_EXHAUSTED), the row's hint already applied, and the gRPC name
 * in the message. After the merge this becomes `{ kind: 'grpc', code, message, retryAfterMs }`.
 */
export function grpcRawFailure(code: number, message: string, retryAfterMs?: number): RawFailure {
  const f = classifyGrpc(code, message, retryAfterMs);
  const http = grpcRule(code, message, retryAfterMs) === GRPC_TOO_LARGE ? 413 : (GRPC_AS_HTTP[code] ?? 500);
  const raw: RawFailure = { kind: 'http', code: http, message: `gRPC ${grpcStatusName(code)} (${code}): ${message}` };
  if (f.retryAfterMs !== undefined) raw.retryAfterMs = f.retryAfterMs;
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
