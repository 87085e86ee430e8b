/**
 * Checks a remote message before anything acts on it: pure functions of the raw bytes, the
 * trusted keys and the replay state, each refusal a stable code and a sentence. The order is
 * cheapest first and nothing unauthenticated is parsed beyond the envelope: size (before any
 * parsing), JSON envelope, key id, signature, replay; only then the signed payload.
 */
import type { KeyObject } from 'node:crypto';
import { commandSignedBytes, configSignedBytes, sha256Hex, verifyBytes } from './signing.js';

export type RefusalCode =
  | 'REMOTE_TOO_LARGE' | 'REMOTE_MALFORMED' | 'REMOTE_KEY_UNKNOWN' | 'REMOTE_SIGNATURE_INVALID' | 'REMOTE_REPLAY'
  | 'CONFIG_REJECTED' | 'REMOTE_BUSY' | 'REMOTE_COMMAND_UNKNOWN' | 'REMOTE_COMMAND_FAILED' | 'REMOTE_STATE_UNWRITABLE';

export interface Refusal {
  ok: false;
  code: RefusalCode;
  reason: string;
  /** The version or sequence number the message claimed, when it could be read. */
  claimed?: number;
}

export interface VerifyContext {
  gatewayId: string;
  keys: ReadonlyMap<string, KeyObject>;
  maxBytes: number;
  /** The highest version (configs) or sequence number (commands) seen with a valid signature. */
  highest: number;
}

export interface VerifiedConfig {
  ok: true;
  version: number;
  keyId: string;
  /** The signed payload bytes (the config JSON) and their SHA-256. */
  payload: Buffer;
  hash: string;
  /** The payload parsed: a JSON object of top-level config keys. */
  doc: Record<string, unknown>;
}

export interface VerifiedCommand {
  ok: true;
  seq: number;
  keyId: string;
  args: Record<string, unknown>;
}

/** Top-level keys a remote config may not set: the trust anchor, the gateway's identity and store, and the log (opened once per process). */
export const LOCAL_ONLY_KEYS = ['remote', 'gatewayId', 'dataDir', 'logFile', 'logLevel'] as const;

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function refuse(code: RefusalCode, reason: string, claimed?: number): Refusal {
  return claimed === undefined ? { ok: false, code, reason } : { ok: false, code, reason, claimed };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type Envelope = { n: number; payload: Buffer; keyId: string; signature: string };

/** Size, JSON, shape, key id: what every signed message shares. `counter` is 'version' or 'seq'. */
function envelope(raw: Buffer, ctx: VerifyContext, counter: 'version' | 'seq', payloadRequired: boolean): Envelope | Refusal {
  if (raw.length > ctx.maxBytes) return refuse('REMOTE_TOO_LARGE', `message of ${raw.length} bytes; at most ${ctx.maxBytes} (remote.maxMessageBytes)`);
  let m: unknown;
  try {
    m = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return refuse('REMOTE_MALFORMED', `not JSON: ${(e as Error).message.slice(0, 120)}`);
  }
  if (!isObject(m)) return refuse('REMOTE_MALFORMED', 'not a JSON object');
  const n = m[counter];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) return refuse('REMOTE_MALFORMED', `${counter} must be an integer >= 1`);
  let payload = Buffer.alloc(0);
  if (m.payload !== undefined || payloadRequired) {
    if (typeof m.payload !== 'string' || m.payload.length % 4 !== 0 || !B64.test(m.payload)) return refuse('REMOTE_MALFORMED', 'payload must be a base64 string', n);
    payload = Buffer.from(m.payload, 'base64');
    // Canonical only: stray padding bits would give one payload several spellings.
    if (payload.toString('base64') !== m.payload) return refuse('REMOTE_MALFORMED', 'payload is not canonical base64', n);
  }
  if (typeof m.keyId !== 'string' || m.keyId === '') return refuse('REMOTE_KEY_UNKNOWN', 'no keyId', n);
  if (!ctx.keys.has(m.keyId)) return refuse('REMOTE_KEY_UNKNOWN', `key ${JSON.stringify(m.keyId.slice(0, 64))} is not in remote.trustedKeys`, n);
  if (typeof m.signature !== 'string' || m.signature === '') return refuse('REMOTE_SIGNATURE_INVALID', 'no signature', n);
  return { n, payload, keyId: m.keyId, signature: m.signature };
}

/** A config/set message: verified, not a replay, its payload a JSON object that leaves the local-only keys alone. */
export function verifyConfigSet(raw: Buffer, ctx: VerifyContext): VerifiedConfig | Refusal {
  const e = envelope(raw, ctx, 'version', true);
  if ('ok' in e) return e;
  if (!verifyBytes(ctx.keys.get(e.keyId)!, configSignedBytes(ctx.gatewayId, e.n, e.payload), e.signature)) {
    return refuse('REMOTE_SIGNATURE_INVALID', `signature does not verify with key ${e.keyId} for gateway ${ctx.gatewayId}`, e.n);
  }
  if (e.n <= ctx.highest) return refuse('REMOTE_REPLAY', `version ${e.n} is not above ${ctx.highest}, the highest this gateway has taken`, e.n);
  let doc: unknown;
  try {
    doc = JSON.parse(e.payload.toString('utf8'));
  } catch (err) {
    return refuse('CONFIG_REJECTED', `payload is not JSON: ${(err as Error).message.slice(0, 120)}`, e.n);
  }
  if (!isObject(doc)) return refuse('CONFIG_REJECTED', 'payload must be a JSON object of configuration keys', e.n);
  const local = LOCAL_ONLY_KEYS.filter((k) => Object.hasOwn(doc as object, k));
  if (local.length > 0) return refuse('CONFIG_REJECTED', `${local.map((k) => `/${k}`).join(', ')}: set in the local file only, never remotely`, e.n);
  return { ok: true, version: e.n, keyId: e.keyId, payload: e.payload, hash: sha256Hex(e.payload), doc };
}

/** A cmd/<name> message: verified for this command name, not a replay, its args a JSON object. */
export function verifyCommand(name: string, raw: Buffer, ctx: VerifyContext): VerifiedCommand | Refusal {
  const e = envelope(raw, ctx, 'seq', false);
  if ('ok' in e) return e;
  if (!verifyBytes(ctx.keys.get(e.keyId)!, commandSignedBytes(ctx.gatewayId, name, e.n, e.payload), e.signature)) {
    return refuse('REMOTE_SIGNATURE_INVALID', `signature does not verify with key ${e.keyId} for command ${name} on gateway ${ctx.gatewayId}`, e.n);
  }
  if (e.n <= ctx.highest) return refuse('REMOTE_REPLAY', `seq ${e.n} is not above ${ctx.highest}, the highest this gateway has taken`, e.n);
  let args: unknown = {};
  if (e.payload.length > 0) {
    try {
      args = JSON.parse(e.payload.toString('utf8'));
    } catch {
      return refuse('REMOTE_MALFORMED', 'payload (the arguments) is not JSON', e.n);
    }
  }
  if (!isObject(args)) return refuse('REMOTE_MALFORMED', 'payload (the arguments) must be a JSON object', e.n);
  return { ok: true, seq: e.n, keyId: e.keyId, args };
}
