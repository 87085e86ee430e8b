/**
 * Failure classification: turns what a driver saw on the wire into a decision.
 *
 * Two questions decide what a lane does with a failed attempt:
 *   scope  'payload': this message is bad (too large, malformed); retrying it cannot help,
 *          so it is dead-lettered and the lane moves on.
 *          'link': the upstream or the path to it is at fault; every message would fail the
 *          same way, so the lane stops and the message is kept.
 *   retry  'soft': transient, retry with backoff (honouring retryAfterMs when present).
 *          'hard': will not fix itself (bad credentials, ACL change, bad certificate): for
 *          link scope the lane holds its data for hardFailureHoldMs and raises an alarm.
 *
 * The rules are tables, exported so tests and the docs can iterate every row. Unknown input
 * errs towards 'link' + 'soft': that never loses data, at worst it delays or duplicates
 * (delivery is at-least-once anyway). Only rows we are sure of are 'payload' + 'hard'.
 *
 * Order of precedence in classify():
 *   1. a string code that is a known socket or TLS certificate code, whatever the kind
 *      (fetch() failing with ECONNREFUSED is a socket error, not an HTTP one);
 *   2. the kind's own table (MQTT reason code, HTTP status, gRPC status, timeout, TLS);
 *   3. UPLINK_ERROR, link, soft, upstream.
 *
 * MQTT reason codes below 0x80 are successes (0x10 = no matching subscribers on PUBACK):
 * callers treat them so and never classify them. If one is classified anyway, the answer
 * is a soft link failure (for DISCONNECT: MQTT_DISCONNECTED), which cannot lose data.
 * An MQTT reason >= 0x80 missing from the tables keeps its own MQTT_0xNN code (more useful
 * in logs than UPLINK_ERROR) and is a soft link failure.
 * Hints (retryAfterMs) are carried on soft failures only; a hard failure waits
 * hardFailureHoldMs. raw.retryAfterMs wins over a row's default.
 */
import { GRPC_STATUS_NAMES, grpcCode, mqttCode, type ErrorCode, type FaultClass } from '../errors.js';
import { TLS_CERT_CODES, type RawFailure } from '../../drivers/uplink.js';

export { TLS_CERT_CODES, type RawFailure };

export type Scope = 'payload' | 'link';
export type RetryClass = 'soft' | 'hard';

export interface Failure {
  code: ErrorCode;
  message: string;
  scope: Scope;
  retry: RetryClass;
  faultClass: FaultClass;
  retryAfterMs?: number;
}

/** One table row: what a code means. `note` is for logs and docs. */
export interface Rule {
  scope: Scope;
  retry: RetryClass;
  faultClass: FaultClass;
  /** A retry hint used when the raw failure carries none. */
  defaultRetryAfterMs?: number;
  note: string;
}

/** The hint assumed for "busy"/"quota"/"rate" MQTT reasons that came without one. */
export const DEFAULT_BUSY_HINT_MS = 5000;

const linkSoft = (faultClass: FaultClass, note: string, defaultRetryAfterMs?: number): Rule =>
  defaultRetryAfterMs === undefined
    ? { scope: 'link', retry: 'soft', faultClass, note }
    : { scope: 'link', retry: 'soft', faultClass, defaultRetryAfterMs, note };
const linkHard = (note: string): Rule => ({ scope: 'link', retry: 'hard', faultClass: 'upstream', note });
const payloadHard = (note: string): Rule => ({ scope: 'payload', retry: 'hard', faultClass: 'payload', note });

/** Node socket error codes; the failure code is the key itself. */
export const SOCKET_TABLE: Readonly<Record<string, Rule>> = Object.freeze({
  ETIMEDOUT: linkSoft('network', 'connect or read timed out'),
  ECONNREFUSED: linkSoft('network', 'nothing listening'),
  ECONNRESET: linkSoft('network', 'connection reset'),
  EHOSTUNREACH: linkSoft('network', 'no route to host'),
  ENETUNREACH: linkSoft('network', 'network unreachable'),
  ENOTFOUND: linkSoft('network', 'host name does not resolve'),
  EAI_AGAIN: linkSoft('network', 'temporary DNS failure'),
  EPIPE: linkSoft('network', 'write to a closed connection'),
});

export const TLS_RULE: Rule = Object.freeze(linkHard('TLS certificate refused'));

/** MQTT 5 reason codes in CONNACK and DISCONNECT. */
export const MQTT_CONNECT_TABLE: Readonly<Record<number, Rule>> = Object.freeze({
  0x80: linkSoft('upstream', 'unspecified error'),
  0x83: linkSoft('upstream', 'implementation specific error'),
  0x84: linkHard('unsupported protocol version'),
  0x85: linkHard('client identifier not valid'),
  0x86: linkHard('bad user name or password'),
  0x87: linkHard('not authorized'),
  0x88: linkSoft('upstream', 'server unavailable'),
  0x89: linkSoft('upstream', 'server busy', DEFAULT_BUSY_HINT_MS),
  0x8a: linkHard('banned'),
  0x8b: linkSoft('upstream', 'server shutting down'),
  0x8c: linkHard('bad authentication method'),
  0x8d: linkSoft('upstream', 'keep alive timeout'),
  0x8e: linkSoft('upstream', 'session taken over'),
  0x97: linkSoft('upstream', 'quota exceeded', DEFAULT_BUSY_HINT_MS),
  0x9f: linkSoft('upstream', 'connection rate exceeded', DEFAULT_BUSY_HINT_MS),
});

/** MQTT 5 reason codes in PUBACK. */
export const MQTT_PUBACK_TABLE: Readonly<Record<number, Rule>> = Object.freeze({
  0x80: linkSoft('upstream', 'unspecified error'),
  0x83: linkSoft('upstream', 'implementation specific error'),
  0x87: linkHard('not authorized (ACL change): hold data, alarm'),
  0x90: payloadHard('topic name invalid'),
  0x95: payloadHard('packet too large'),
  0x97: linkSoft('upstream', 'quota exceeded', DEFAULT_BUSY_HINT_MS),
  0x99: payloadHard('payload format invalid'),
});

/** HTTP statuses with a rule of their own; other 4xx are payload/hard, other 5xx link/soft. */
export const HTTP_TABLE: Readonly<Record<number, Rule>> = Object.freeze({
  400: payloadHard('bad request'),
  401: linkHard('unauthorized'),
  403: linkHard('forbidden'),
  404: linkSoft('upstream', 'not found (endpoint missing, perhaps mid-deploy)'),
  408: linkSoft('upstream', 'request timeout'),
  413: payloadHard('payload too large'),
  415: payloadHard('unsupported media type'),
  422: payloadHard('unprocessable entity'),
  429: linkSoft('upstream', 'too many requests'),
  500: linkSoft('upstream', 'internal server error'),
  502: linkSoft('upstream', 'bad gateway'),
  503: linkSoft('upstream', 'service unavailable'),
  504: linkSoft('upstream', 'gateway timeout'),
});
/**
 * gRPC statuses (the OTLP/gRPC uplink), by number; GRPC_TOO_LARGE and GRPC_OTHER below.
 *
 *   status                 rule                 why
 *   CANCELLED (1)          link soft  upstream  the call was cut (our close(), a proxy, the collector
 *                                               shutting down); nothing says the batch is bad
 *   INVALID_ARGUMENT (3)   payload hard         the collector says this batch is malformed: a re-send
 *                                               of the same bytes gets the same answer, so dead-letter
 *                                               it and go on (like HTTP 400)
 *   DEADLINE_EXCEEDED (4)  link soft  network   no answer in time: the path or the collector is slow;
 *                                               retried (a re-send keeps its batch key, the collector
 *                                               can drop the duplicate)
 *   PERMISSION_DENIED (7)  link hard            credentials known but not allowed: every batch would
 *                                               fail the same way; hold the data, raise an alarm, do
 *                                               not hammer (like HTTP 403)
 *   RESOURCE_EXHAUSTED (8) link soft  upstream  the collector is busy or rate-limits us: back off,
 *                          + busy hint          honouring RetryInfo, else DEFAULT_BUSY_HINT_MS (like
 *                                               HTTP 429, MQTT 0x97). Exception: GRPC_TOO_LARGE
 *   ABORTED (10)           link soft  upstream  OTLP lists it as retryable (a conflict on the far side)
 *   OUT_OF_RANGE (11)      link soft  upstream  OTLP lists it as retryable
 *   UNIMPLEMENTED (12)     link hard            no MetricsService/Export at that address (wrong port,
 *                                               a traces-only collector): no retry can fix it, an
 *                                               operator must; hold and alarm
 *   UNAVAILABLE (14)       link soft  upstream  the textbook transient failure; RetryInfo honoured
 *   DATA_LOSS (15)         link soft  upstream  OTLP lists it as retryable; we keep our copy
 *   UNAUTHENTICATED (16)   link hard            missing or bad token/certificate (like HTTP 401)
 *   anything else          link soft  upstream  UNKNOWN, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
 *   (GRPC_OTHER)                                INTERNAL, numbers without a name: OTLP says "do not
 *                                               retry", but nothing says the batch is at fault, and
 *                                               soft never loses data (at worst it is re-sent until
 *                                               RETRY_LIMIT_EXCEEDED dead-letters it)
 *
 * Every soft row honours a RetryInfo hint (raw.retryAfterMs); hard rows carry none.
 */
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
/**
 * RESOURCE_EXHAUSTED because the request exceeds the collector's maximum message size
 * (grpc.max_receive_message_length, the collector's max_recv_msg_size_mib) and it sent no
 * RetryInfo: the same batch will never fit, so payload, hard (like HTTP 413).
 */
export const GRPC_TOO_LARGE: Rule = Object.freeze(payloadHard('request larger than the collector accepts'));
export const GRPC_OTHER: Rule = Object.freeze(linkSoft('upstream', 'gRPC status without a rule of its own'));
/** grpc-js / grpc-go wording when a message exceeds the maximum receive size. */
const GRPC_TOO_LARGE_RE = /(?:message|request)\s+larger\s+than\s+max|exceeds\s+(?:the\s+)?max(?:imum)?\s+(?:message|receive)/i;

export const HTTP_OTHER_4XX: Rule = Object.freeze(payloadHard('client error'));
export const HTTP_OTHER_5XX: Rule = Object.freeze(linkSoft('upstream', 'server error'));

export const TIMEOUT_RULE: Rule = Object.freeze(linkSoft('network', 'no answer in time'));
export const DISCONNECTED_RULE: Rule = Object.freeze(linkSoft('network', 'connection dropped'));
export const UNKNOWN_SOCKET_RULE: Rule = Object.freeze(linkSoft('network', 'unknown socket error'));
export const UNKNOWN_RULE: Rule = Object.freeze(linkSoft('upstream', 'unknown failure'));
/** A stored batch a driver cannot turn into a request: no upstream said anything; it is ours. */
export const UNREADABLE_RULE: Rule = Object.freeze({ scope: 'payload', retry: 'hard', faultClass: 'local', note: 'stored batch unreadable' });

/**
 * A file an uplink reads at each connect (drivers/files.ts codes). Soft: a password or key being
 * rotated is missing for a moment, and the lane's backoff picks the new one up; class config, as
 * an operator has to act if it lasts.
 */
export const FILE_CODES: readonly string[] = Object.freeze(['CONFIG_FILE_MISSING', 'CONFIG_FILE_NOT_REGULAR', 'CONFIG_FILE_TOO_LARGE', 'CONFIG_PATH_LOOP', 'CONFIG_FILE_UNREADABLE', 'SECRET_FILE_INSECURE']);
export const FILE_RULE: Rule = Object.freeze(linkSoft('config', 'a file the uplink needs to connect cannot be used'));

const has = (table: object, key: string | number): boolean => Object.prototype.hasOwnProperty.call(table, key);

/** A reason/status number from 135, '135', '0x87' or 'MQTT_0x87' / 'HTTP_503'; else undefined. */
export function codeNumber(code: string | number | undefined): number | undefined {
  if (typeof code === 'number') return Number.isInteger(code) && code >= 0 ? code : undefined;
  if (typeof code !== 'string') return undefined;
  const m = /^(?:MQTT_)?0x([0-9a-f]+)$/i.exec(code) ?? /^(?:HTTP_)?(\d+)$/.exec(code);
  if (!m) return undefined;
  return m[0].toLowerCase().includes('0x') ? parseInt(m[1], 16) : parseInt(m[1], 10);
}

function build(code: ErrorCode, rule: Rule, raw: RawFailure): Failure {
  const f: Failure = {
    code,
    message: raw.message || rule.note,
    scope: rule.scope,
    retry: rule.retry,
    faultClass: rule.faultClass,
  };
  if (rule.retry === 'soft') {
    const hint = Number.isFinite(raw.retryAfterMs) && (raw.retryAfterMs as number) >= 0
      ? raw.retryAfterMs
      : rule.defaultRetryAfterMs;
    if (hint !== undefined) f.retryAfterMs = hint;
  }
  return f;
}

function classifyMqtt(raw: RawFailure, table: Readonly<Record<number, Rule>>): Failure {
  const n = codeNumber(raw.code);
  if (n === undefined || n < 0x80) {
    if (raw.kind === 'disconnect') return build('MQTT_DISCONNECTED', DISCONNECTED_RULE, raw);
    if (n === undefined) return build('UPLINK_ERROR', UNKNOWN_RULE, raw);
    return build(mqttCode(n), linkSoft('upstream', 'not a failure (reason < 0x80)'), raw);
  }
  return build(mqttCode(n), has(table, n) ? table[n] : linkSoft('upstream', 'unlisted MQTT reason'), raw);
}

function classifyHttp(raw: RawFailure): Failure {
  const n = codeNumber(raw.code);
  if (n === undefined || n < 100 || n > 599) return build('UPLINK_ERROR', UNKNOWN_RULE, raw);
  const code = `HTTP_${n}` as ErrorCode;
  if (has(HTTP_TABLE, n)) return build(code, HTTP_TABLE[n], raw);
  if (n >= 400 && n < 500) return build(code, HTTP_OTHER_4XX, raw);
  if (n >= 500) return build(code, HTTP_OTHER_5XX, raw);
  return build(code, UNKNOWN_RULE, raw); // 1xx-3xx reported as a failure: unexpected, soft
}

/** A gRPC status from 14, '14', 'UNAVAILABLE' or 'GRPC_UNAVAILABLE'; else undefined. */
export function grpcStatusNumber(code: string | number | undefined): number | undefined {
  if (typeof code === 'number') return Number.isInteger(code) && code >= 0 ? code : undefined;
  if (typeof code !== 'string') return undefined;
  if (/^\d+$/.test(code)) return parseInt(code, 10);
  const named = GRPC_STATUS_NAMES.indexOf(code.replace(/^GRPC_/, ''));
  if (named >= 0) return named;
  const m = /^GRPC_STATUS_(\d+)$/.exec(code);
  return m ? parseInt(m[1], 10) : undefined;
}

/** The rule for a gRPC status: GRPC_TABLE, refined for a too-large RESOURCE_EXHAUSTED. */
export function grpcRule(status: number, message: string, retryAfterMs?: number): Rule {
  if (status === 8 && retryAfterMs === undefined && GRPC_TOO_LARGE_RE.test(message)) return GRPC_TOO_LARGE;
  return has(GRPC_TABLE, status) ? GRPC_TABLE[status] : GRPC_OTHER;
}

function classifyGrpc(raw: RawFailure): Failure {
  const n = grpcStatusNumber(raw.code);
  // OK (0) reported as a failure, or no status at all: unexpected, soft.
  if (n === undefined || n === 0) return build('UPLINK_ERROR', UNKNOWN_RULE, raw);
  return build(grpcCode(n), grpcRule(n, raw.message, raw.retryAfterMs), raw);
}

/** Classifies one failed attempt. Pure; never throws. */
export function classify(raw: RawFailure): Failure {
  if (typeof raw.code === 'string') {
    if (has(SOCKET_TABLE, raw.code)) return build(raw.code as ErrorCode, SOCKET_TABLE[raw.code], raw);
    if (TLS_CERT_CODES.includes(raw.code)) return build('TLS_CERT_INVALID', TLS_RULE, raw);
  }
  switch (raw.kind) {
    case 'socket':
      return build('UPLINK_ERROR', UNKNOWN_SOCKET_RULE, raw);
    case 'tls':
      return build('TLS_CERT_INVALID', TLS_RULE, raw);
    case 'connack':
    case 'disconnect':
      return classifyMqtt(raw, MQTT_CONNECT_TABLE);
    case 'puback':
      return classifyMqtt(raw, MQTT_PUBACK_TABLE);
    case 'timeout':
      return build('MQTT_ACK_TIMEOUT', TIMEOUT_RULE, raw); // ETIMEDOUT was taken above
    case 'http':
      return classifyHttp(raw);
    case 'grpc':
      return classifyGrpc(raw);
    case 'unreadable':
      return build('PAYLOAD_UNREADABLE', UNREADABLE_RULE, raw);
    case 'file':
      return build((typeof raw.code === 'string' && FILE_CODES.includes(raw.code) ? raw.code : 'CONFIG_FILE_UNREADABLE') as ErrorCode, FILE_RULE, raw);
    default:
      return build('UPLINK_ERROR', UNKNOWN_RULE, raw);
  }
}
