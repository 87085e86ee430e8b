/**
 * Failure classification (agent/policy/classify.ts). Each exported table is checked twice:
 * against an independent copy of the intended rules written out here (so a wrong row fails),
 * and row by row through classify() (so classify really follows the table).
 */
import t from 'tap';
import { familyOf, mqttCode } from '../agent/errors.js';
import {
  classify, codeNumber, grpcStatusNumber, SOCKET_TABLE, TLS_CERT_CODES, MQTT_CONNECT_TABLE, MQTT_PUBACK_TABLE, HTTP_TABLE, GRPC_TABLE,
  GRPC_OTHER, GRPC_TOO_LARGE, DEFAULT_BUSY_HINT_MS, type Failure, type RawFailure, type Rule,
} from '../agent/policy/classify.js';

type Want = [scope: Failure['scope'], retry: Failure['retry'], faultClass: Failure['faultClass'], hint?: number];
const LS_UP: Want = ['link', 'soft', 'upstream'];
const LH_UP: Want = ['link', 'hard', 'upstream'];
const PH: Want = ['payload', 'hard', 'payload'];
const BUSY: Want = ['link', 'soft', 'upstream', 5000];

const WANT_CONNECT: Record<number, Want> = {
  0x86: LH_UP, 0x87: LH_UP, 0x8c: LH_UP, 0x8a: LH_UP, 0x84: LH_UP, 0x85: LH_UP,
  0x88: LS_UP, 0x89: BUSY, 0x97: BUSY, 0x9f: BUSY, 0x8b: LS_UP, 0x8d: LS_UP, 0x8e: LS_UP, 0x80: LS_UP, 0x83: LS_UP,
};
const WANT_PUBACK: Record<number, Want> = {
  0x87: LH_UP, 0x99: PH, 0x95: PH, 0x90: PH, 0x97: BUSY, 0x80: LS_UP, 0x83: LS_UP,
};
const WANT_HTTP: Record<number, Want> = {
  400: PH, 413: PH, 415: PH, 422: PH, 401: LH_UP, 403: LH_UP, 404: LS_UP,
  408: LS_UP, 429: LS_UP, 500: LS_UP, 502: LS_UP, 503: LS_UP, 504: LS_UP,
};
/** gRPC statuses with a row of their own (GRPC_TABLE); the rest fall to WANT_GRPC_OTHER. */
const WANT_GRPC: Record<number, Want> = {
  1: LS_UP, 3: PH, 4: ['link', 'soft', 'network'], 7: LH_UP, 8: BUSY, 10: LS_UP, 11: LS_UP, 12: LH_UP, 14: LS_UP, 15: LS_UP, 16: LH_UP,
};
const WANT_GRPC_OTHER: Want = LS_UP;
/** Every named status, with the code it must get. */
const GRPC_NAMES: Record<number, string> = {
  1: 'GRPC_CANCELLED', 2: 'GRPC_UNKNOWN', 3: 'GRPC_INVALID_ARGUMENT', 4: 'GRPC_DEADLINE_EXCEEDED', 5: 'GRPC_NOT_FOUND',
  6: 'GRPC_ALREADY_EXISTS', 7: 'GRPC_PERMISSION_DENIED', 8: 'GRPC_RESOURCE_EXHAUSTED', 9: 'GRPC_FAILED_PRECONDITION',
  10: 'GRPC_ABORTED', 11: 'GRPC_OUT_OF_RANGE', 12: 'GRPC_UNIMPLEMENTED', 13: 'GRPC_INTERNAL', 14: 'GRPC_UNAVAILABLE',
  15: 'GRPC_DATA_LOSS', 16: 'GRPC_UNAUTHENTICATED',
};
const WANT_SOCKET = ['ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'];

const ruleWant = (r: Rule): Want => (r.defaultRetryAfterMs === undefined ? [r.scope, r.retry, r.faultClass] : [r.scope, r.retry, r.faultClass, r.defaultRetryAfterMs]);
const got = (f: Failure): Want => (f.retryAfterMs === undefined ? [f.scope, f.retry, f.faultClass] : [f.scope, f.retry, f.faultClass, f.retryAfterMs]);
const keys = (o: object) => Object.keys(o).map(Number).sort((a, b) => a - b);

t.test('the exported tables hold exactly the intended rules', async (t) => {
  t.equal(DEFAULT_BUSY_HINT_MS, 5000);
  t.same(Object.keys(SOCKET_TABLE).sort(), [...WANT_SOCKET].sort());
  for (const [name, table, want] of [['connect', MQTT_CONNECT_TABLE, WANT_CONNECT], ['puback', MQTT_PUBACK_TABLE, WANT_PUBACK], ['http', HTTP_TABLE, WANT_HTTP], ['grpc', GRPC_TABLE, WANT_GRPC]] as const) {
    t.same(keys(table), keys(want), `${name}: same rows`);
    for (const k of keys(want)) t.same(ruleWant((table as Record<number, Rule>)[k]), (want as Record<number, Want>)[k], `${name} ${k}`);
  }
  t.same(ruleWant(GRPC_OTHER), WANT_GRPC_OTHER, 'grpc: unlisted statuses');
  t.same(ruleWant(GRPC_TOO_LARGE), PH, 'grpc: a too-large RESOURCE_EXHAUSTED');
  for (const c of ['CERT_HAS_EXPIRED', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
    t.ok(TLS_CERT_CODES.includes(c), c);
  }
});

t.test('socket rows', async (t) => {
  for (const code of Object.keys(SOCKET_TABLE)) {
    for (const kind of ['socket', 'disconnect', 'http'] as const) {
      const f = classify({ kind, code, message: `boom ${code}` });
      t.same([f.code, f.message, ...got(f)], [code, `boom ${code}`, 'link', 'soft', 'network'], `${kind} ${code}`);
    }
  }
  const u = classify({ kind: 'socket', code: 'EWHATEVER', message: 'odd' });
  t.same([u.code, u.message, ...got(u)], ['UPLINK_ERROR', 'odd', 'link', 'soft', 'network']);
  t.equal(classify({ kind: 'socket', message: 'no code' }).code, 'UPLINK_ERROR');
});

t.test('TLS certificate rows', async (t) => {
  for (const code of TLS_CERT_CODES) {
    for (const kind of ['socket', 'tls'] as const) {
      const f = classify({ kind, code, message: 'cert', retryAfterMs: 100 });
      t.same([f.code, ...got(f)], ['TLS_CERT_INVALID', 'link', 'hard', 'upstream'], `${kind} ${code} (no hint on a hard failure)`);
    }
  }
  t.equal(classify({ kind: 'tls', message: 'handshake' }).code, 'TLS_CERT_INVALID');
  t.equal(classify({ kind: 'tls', code: 'ECONNRESET', message: 'reset in handshake' }).code, 'ECONNRESET', 'a reset during the handshake is a network fault');
});

t.test('MQTT CONNACK and DISCONNECT rows', async (t) => {
  for (const kind of ['connack', 'disconnect'] as const) {
    for (const n of keys(MQTT_CONNECT_TABLE)) {
      const f = classify({ kind, code: n, message: `reason ${n}` });
      t.same([f.code, f.message, ...got(f)], [mqttCode(n), `reason ${n}`, ...WANT_CONNECT[n]], `${kind} 0x${n.toString(16)}`);
    }
  }
  t.equal(classify({ kind: 'connack', code: 135, message: '' }).code, 'MQTT_0x87');
});

t.test('MQTT PUBACK rows', async (t) => {
  for (const n of keys(MQTT_PUBACK_TABLE)) {
    const f = classify({ kind: 'puback', code: n, message: `reason ${n}` });
    t.same([f.code, ...got(f)], [mqttCode(n), ...WANT_PUBACK[n]], `puback 0x${n.toString(16)}`);
  }
  const acl = classify({ kind: 'puback', code: 0x87, message: 'acl' });
  t.same([acl.scope, acl.retry], ['link', 'hard'], 'PUBACK 0x87 holds the data rather than dropping the message');
});

t.test('retryAfterMs: raw hint wins, rows give a default, hard failures carry none', async (t) => {
  const rows: [RawFailure, number | undefined][] = [
    [{ kind: 'connack', code: 0x89, message: 'busy' }, 5000],
    [{ kind: 'connack', code: 0x89, message: 'busy', retryAfterMs: 1234 }, 1234],
    [{ kind: 'disconnect', code: 0x9f, message: 'rate' }, 5000],
    [{ kind: 'puback', code: 0x97, message: 'quota' }, 5000],
    [{ kind: 'puback', code: 0x97, message: 'quota', retryAfterMs: 0 }, 0],
    [{ kind: 'connack', code: 0x88, message: 'unavailable' }, undefined],
    [{ kind: 'connack', code: 0x88, message: 'unavailable', retryAfterMs: 777 }, 777],
    [{ kind: 'http', code: 429, message: 'slow down', retryAfterMs: 30000 }, 30000],
    [{ kind: 'http', code: 503, message: 'down', retryAfterMs: 120000 }, 120000],
    [{ kind: 'http', code: 503, message: 'down' }, undefined],
    [{ kind: 'http', code: 503, message: 'down', retryAfterMs: NaN }, undefined],
    [{ kind: 'http', code: 503, message: 'down', retryAfterMs: -5 }, undefined],
    [{ kind: 'http', code: 401, message: 'no', retryAfterMs: 30000 }, undefined],
    [{ kind: 'connack', code: 0x86, message: 'bad password', retryAfterMs: 30000 }, undefined],
    [{ kind: 'http', code: 413, message: 'big', retryAfterMs: 30000 }, undefined],
  ];
  for (const [raw, want] of rows) t.equal(classify(raw).retryAfterMs, want, `${raw.kind} ${raw.code} hint ${raw.retryAfterMs}`);
});

t.test('MQTT reasons below 0x80 are not failures, and unlisted ones stay soft', async (t) => {
  for (const n of [0x00, 0x10]) {
    const f = classify({ kind: 'puback', code: n, message: 'ok?' });
    t.same([f.code, f.scope, f.retry], [mqttCode(n), 'link', 'soft'], `puback 0x${n.toString(16)} never drops data`);
  }
  t.same(got(classify({ kind: 'disconnect', code: 0x00, message: 'normal' })), ['link', 'soft', 'network']);
  t.equal(classify({ kind: 'disconnect', code: 0x00, message: 'normal' }).code, 'MQTT_DISCONNECTED');
  const d = classify({ kind: 'disconnect', message: 'socket closed' });
  t.same([d.code, d.message, ...got(d)], ['MQTT_DISCONNECTED', 'socket closed', 'link', 'soft', 'network']);
  for (const [kind, n] of [['connack', 0x82], ['disconnect', 0x95], ['puback', 0x91]] as const) {
    const f = classify({ kind, code: n, message: 'x' });
    t.same([f.code, ...got(f)], [mqttCode(n), ...LS_UP], `${kind} unlisted 0x${n.toString(16)}`);
  }
  t.equal(classify({ kind: 'connack', code: 'garbage', message: 'x' }).code, 'UPLINK_ERROR');
});

t.test('MQTT codes as strings', async (t) => {
  for (const code of [135, '135', '0x87', 'MQTT_0x87', 'mqtt_0X87']) {
    t.equal(classify({ kind: 'connack', code, message: '' }).code, 'MQTT_0x87', String(code));
  }
  t.same([codeNumber('HTTP_503'), codeNumber('0x10'), codeNumber(-1), codeNumber(1.5), codeNumber('x1'), codeNumber(undefined)], [503, 16, undefined, undefined, undefined, undefined]);
});

t.test('timeouts', async (t) => {
  for (const [code, want] of [[undefined, 'MQTT_ACK_TIMEOUT'], ['MQTT_ACK_TIMEOUT', 'MQTT_ACK_TIMEOUT'], ['ETIMEDOUT', 'ETIMEDOUT'], ['whatever', 'MQTT_ACK_TIMEOUT']] as const) {
    const f = classify({ kind: 'timeout', code, message: 'late' });
    t.same([f.code, ...got(f)], [want, 'link', 'soft', 'network'], `timeout ${code}`);
  }
});

t.test('a stored batch a driver cannot send is ours: PAYLOAD_UNREADABLE, payload, hard, local', async (t) => {
  const f = classify({ kind: 'unreadable', message: 'not a JSON array' });
  t.same([f.code, ...got(f)], ['PAYLOAD_UNREADABLE', 'payload', 'hard', 'local']);
  t.equal(f.message, 'not a JSON array');
});

t.test('HTTP rows and fallbacks', async (t) => {
  for (const n of keys(HTTP_TABLE)) {
    const f = classify({ kind: 'http', code: n, message: `status ${n}` });
    t.same([f.code, f.message, ...got(f)], [`HTTP_${n}`, `status ${n}`, ...WANT_HTTP[n]], `http ${n}`);
  }
  for (const n of [402, 405, 409, 410, 418, 451, 499]) {
    if (n in WANT_HTTP) continue;
    t.same([classify({ kind: 'http', code: n, message: '' }).code, ...got(classify({ kind: 'http', code: n, message: '' }))], [`HTTP_${n}`, ...PH], `other 4xx ${n}`);
  }
  for (const n of [501, 505, 507, 511, 599]) {
    t.same([classify({ kind: 'http', code: n, message: '' }).code, ...got(classify({ kind: 'http', code: n, message: '' }))], [`HTTP_${n}`, ...LS_UP], `other 5xx ${n}`);
  }
  t.equal(classify({ kind: 'http', code: '503', message: '' }).code, 'HTTP_503');
  t.equal(classify({ kind: 'http', code: 'HTTP_429', message: '' }).code, 'HTTP_429');
  t.same(got(classify({ kind: 'http', code: 302, message: '' })), LS_UP, 'a redirect is unexpected: soft');
  t.equal(classify({ kind: 'http', code: 42, message: '' }).code, 'UPLINK_ERROR');
  t.equal(classify({ kind: 'http', message: '' }).code, 'UPLINK_ERROR');
});

t.test('gRPC rows: every status 1..16 by its GRPC_<NAME> code', async (t) => {
  for (let n = 1; n <= 16; n++) {
    const f = classify({ kind: 'grpc', code: n, message: `status ${n}` });
    const want = WANT_GRPC[n] ?? WANT_GRPC_OTHER;
    t.same([f.code, f.message, ...got(f)], [GRPC_NAMES[n], `status ${n}`, ...want], `grpc ${n} ${GRPC_NAMES[n]}`);
  }
  const rows: [string, RawFailure, string, Want][] = [
    ['a status without a name keeps its number', { kind: 'grpc', code: 17, message: '' }, 'GRPC_STATUS_17', LS_UP],
    ['a large unknown number', { kind: 'grpc', code: 1000, message: '' }, 'GRPC_STATUS_1000', LS_UP],
    ['OK reported as a failure: unexpected, soft', { kind: 'grpc', code: 0, message: '' }, 'UPLINK_ERROR', LS_UP],
    ['no status at all', { kind: 'grpc', message: 'x' }, 'UPLINK_ERROR', LS_UP],
    ['a negative status', { kind: 'grpc', code: -3, message: 'x' }, 'UPLINK_ERROR', LS_UP],
    ['a status as a decimal string', { kind: 'grpc', code: '14', message: '' }, 'GRPC_UNAVAILABLE', LS_UP],
    ['a status by name', { kind: 'grpc', code: 'UNAUTHENTICATED', message: '' }, 'GRPC_UNAUTHENTICATED', LH_UP],
    ['a status by its code', { kind: 'grpc', code: 'GRPC_INVALID_ARGUMENT', message: '' }, 'GRPC_INVALID_ARGUMENT', PH],
    ['GRPC_STATUS_NN as a string', { kind: 'grpc', code: 'GRPC_STATUS_42', message: '' }, 'GRPC_STATUS_42', LS_UP],
    ['a name gRPC does not have', { kind: 'grpc', code: 'SHRUG', message: '' }, 'UPLINK_ERROR', LS_UP],
    ['a socket errno wins over the kind', { kind: 'grpc', code: 'ECONNREFUSED', message: '' }, 'ECONNREFUSED', ['link', 'soft', 'network']],
    ['a certificate code wins over the kind', { kind: 'grpc', code: 'CERT_HAS_EXPIRED', message: '' }, 'TLS_CERT_INVALID', LH_UP],
  ];
  for (const [name, raw, code, want] of rows) {
    const f = classify(raw);
    t.same([f.code, ...got(f)], [code, ...want], name);
  }
  t.same([grpcStatusNumber('0x0e'), grpcStatusNumber(1.5), grpcStatusNumber('GRPC_OK'), grpcStatusNumber(undefined)], [undefined, undefined, 0, undefined]);
});

t.test('gRPC hints: RetryInfo on soft rows, none on hard ones; RESOURCE_EXHAUSTED busy vs too large', async (t) => {
  const lsHint = (ms: number): Want => ['link', 'soft', 'upstream', ms];
  const TOO_LARGE = 'Received message larger than max (5000000 vs. 4194304)';
  const rows: [string, RawFailure, Want][] = [
    ['UNAVAILABLE without RetryInfo', { kind: 'grpc', code: 14, message: 'restarting' }, LS_UP],
    ['UNAVAILABLE with RetryInfo', { kind: 'grpc', code: 14, message: 'memory limiter', retryAfterMs: 2500 }, lsHint(2500)],
    ['DEADLINE_EXCEEDED with RetryInfo', { kind: 'grpc', code: 4, message: 'slow', retryAfterMs: 800 }, ['link', 'soft', 'network', 800]],
    ['RESOURCE_EXHAUSTED without RetryInfo: the busy hint', { kind: 'grpc', code: 8, message: 'queue full' }, lsHint(DEFAULT_BUSY_HINT_MS)],
    ['RESOURCE_EXHAUSTED with RetryInfo: the server wins', { kind: 'grpc', code: 8, message: 'rate limited', retryAfterMs: 1250 }, lsHint(1250)],
    ['RESOURCE_EXHAUSTED with RetryInfo 0', { kind: 'grpc', code: 8, message: 'rate limited', retryAfterMs: 0 }, lsHint(0)],
    ['RESOURCE_EXHAUSTED, message too large: payload hard', { kind: 'grpc', code: 8, message: TOO_LARGE }, PH],
    ['grpc-go wording of too large', { kind: 'grpc', code: 8, message: 'grpc: received message larger than max (9 vs. 4)' }, PH],
    ['too large but with RetryInfo: the server says wait, so busy', { kind: 'grpc', code: 8, message: TOO_LARGE, retryAfterMs: 3000 }, lsHint(3000)],
    ['a too-large wording on another status changes nothing', { kind: 'grpc', code: 14, message: TOO_LARGE }, LS_UP],
    ['UNAUTHENTICATED: no hint on a hard failure', { kind: 'grpc', code: 16, message: 'no token', retryAfterMs: 30000 }, LH_UP],
    ['PERMISSION_DENIED: no hint', { kind: 'grpc', code: 7, message: 'tenant', retryAfterMs: 30000 }, LH_UP],
    ['INVALID_ARGUMENT: no hint', { kind: 'grpc', code: 3, message: 'bad point', retryAfterMs: 30000 }, PH],
    ['a NaN hint is no hint', { kind: 'grpc', code: 14, message: 'x', retryAfterMs: NaN }, LS_UP],
    ['a negative hint is no hint', { kind: 'grpc', code: 8, message: 'x', retryAfterMs: -1 }, lsHint(DEFAULT_BUSY_HINT_MS)],
  ];
  for (const [name, raw, want] of rows) t.same(got(classify(raw)), want, name);
});

t.test('unknown input is a soft upstream link failure; messages are preserved', async (t) => {
  const f = classify({ kind: 'carrier-pigeon' as RawFailure['kind'], code: 7, message: 'lost' });
  t.same([f.code, f.message, ...got(f)], ['UPLINK_ERROR', 'lost', ...LS_UP]);
  t.ok(classify({ kind: 'http', code: 503, message: '' }).message.length > 0, 'an empty message is replaced by the row note');
});

t.test('every code classify() produces is in the error catalogue', async (t) => {
  const raws: RawFailure[] = [
    ...Object.keys(SOCKET_TABLE).map((code) => ({ kind: 'socket' as const, code, message: '' })),
    ...TLS_CERT_CODES.map((code) => ({ kind: 'tls' as const, code, message: '' })),
    ...Array.from({ length: 256 }, (_, n) => ({ kind: 'connack' as const, code: n, message: '' })),
    ...Array.from({ length: 256 }, (_, n) => ({ kind: 'puback' as const, code: n, message: '' })),
    ...Array.from({ length: 256 }, (_, n) => ({ kind: 'disconnect' as const, code: n, message: '' })),
    ...Array.from({ length: 500 }, (_, n) => ({ kind: 'http' as const, code: n + 100, message: '' })),
    ...Array.from({ length: 40 }, (_, n) => ({ kind: 'grpc' as const, code: n, message: '' })),
    ...['UNAVAILABLE', 'GRPC_DATA_LOSS', 'GRPC_STATUS_99', 'nonsense'].map((code) => ({ kind: 'grpc' as const, code, message: '' })),
    { kind: 'timeout', message: '' }, { kind: 'socket', code: 'EODD', message: '' },
  ];
  const missing = raws.map((r) => classify(r).code).filter((c) => familyOf(c) === undefined);
  t.same(missing, []);
});
