/**
 * Remote messages checked as pure functions (agent/remote/verify.ts, signing.ts), the health
 * check's rules (health.ts) and the state file (state.ts): each refusal has its code, and a
 * message signed for another gateway, kind or version does not verify.
 */
import t from 'tap';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newKeyPair, parseKeyring, parsePrivateKey, signCommand, signConfig, configSignedBytes, sha256Hex } from '../agent/remote/signing.js';
import { verifyCommand, verifyConfigSet, type VerifyContext } from '../agent/remote/verify.js';
import { missing, required } from '../agent/remote/health.js';
import { readState, writeState, STATE_FILE } from '../agent/remote/state.js';
import type { Config } from '../agent/config/types.js';
import { mulberry32 } from './helpers/rand.js';

const a = newKeyPair();
const b = newKeyPair();
const keyA = parsePrivateKey(a.privatePem);
const keyB = parsePrivateKey(b.privatePem);
const ctx = (highest = 0): VerifyContext => ({ gatewayId: 'gw-1', keys: parseKeyring({ ops: a.publicB64, pem: a.publicPem }), maxBytes: 4096, highest });
const cfgBytes = Buffer.from(JSON.stringify({ batch: { maxReadings: 10 } }));
const msg = (o: object) => Buffer.from(JSON.stringify(o));

t.test('the signed bytes are kind, gateway, version and the payload hash', async (t) => {
  t.equal(configSignedBytes('gw-1', 7, cfgBytes).toString(), `holdfast-config\ngw-1\n7\n${sha256Hex(cfgBytes)}`);
});

t.test('a valid config/set verifies, with either form of the public key', async (t) => {
  for (const keyId of ['ops', 'pem']) {
    const v = verifyConfigSet(msg(signConfig(keyA, keyId, 'gw-1', 3, cfgBytes)), ctx(2));
    t.ok(v.ok, keyId);
    if (v.ok) {
      t.equal(v.version, 3);
      t.same(v.doc, { batch: { maxReadings: 10 } });
      t.equal(v.hash, sha256Hex(cfgBytes));
    }
  }
});

t.test('each refusal has its code', async (t) => {
  const good = signConfig(keyA, 'ops', 'gw-1', 5, cfgBytes);
  const code = (raw: Buffer, c = ctx()) => {
    const v = verifyConfigSet(raw, c);
    return v.ok ? 'ok' : v.code;
  };
  t.equal(code(Buffer.alloc(5000, 0x20)), 'REMOTE_TOO_LARGE', 'oversized, before parsing');
  t.equal(code(Buffer.from('{"version": 5,')), 'REMOTE_MALFORMED', 'truncated JSON');
  t.equal(code(Buffer.from('[1,2]')), 'REMOTE_MALFORMED', 'not an object');
  t.equal(code(msg({ ...good, version: 0 })), 'REMOTE_MALFORMED', 'version 0');
  t.equal(code(msg({ ...good, version: '5' })), 'REMOTE_MALFORMED', 'version as a string');
  t.equal(code(msg({ ...good, payload: 'not base64!' })), 'REMOTE_MALFORMED', 'payload not base64');
  t.equal(code(msg({ ...good, keyId: undefined })), 'REMOTE_KEY_UNKNOWN', 'no key id');
  t.equal(code(msg({ ...good, keyId: 'nobody' })), 'REMOTE_KEY_UNKNOWN', 'unknown key id');
  t.equal(code(msg({ ...good, signature: undefined })), 'REMOTE_SIGNATURE_INVALID', 'no signature');
  t.equal(code(msg({ ...good, signature: 'AAAA' })), 'REMOTE_SIGNATURE_INVALID', 'short signature');
  t.equal(code(msg(signConfig(keyB, 'ops', 'gw-1', 5, cfgBytes))), 'REMOTE_SIGNATURE_INVALID', 'signed by another key under a trusted id');
  t.equal(code(msg(signConfig(keyA, 'ops', 'gw-2', 5, cfgBytes))), 'REMOTE_SIGNATURE_INVALID', 'signed for another gateway');
  t.equal(code(msg({ ...good, version: 6 })), 'REMOTE_SIGNATURE_INVALID', 'version changed after signing');
  t.equal(code(msg({ ...good, payload: Buffer.from('{"batch":{}}').toString('base64') })), 'REMOTE_SIGNATURE_INVALID', 'payload changed after signing');
  t.equal(code(msg(good), ctx(5)), 'REMOTE_REPLAY', 'version equal to the highest taken');
  t.equal(code(msg(good), ctx(9)), 'REMOTE_REPLAY', 'version below it');
  t.equal(code(msg(signConfig(keyA, 'ops', 'gw-1', 5, Buffer.from('[1]')))), 'CONFIG_REJECTED', 'payload not an object');
  t.equal(code(msg(signConfig(keyA, 'ops', 'gw-1', 5, Buffer.from('{"remote":{}}')))), 'CONFIG_REJECTED', 'the trust anchor cannot be changed remotely');
  t.equal(code(msg(signConfig(keyA, 'ops', 'gw-1', 5, Buffer.from('{"gatewayId":"x"}')))), 'CONFIG_REJECTED', 'nor the gateway id');
  t.equal(code(msg(good)), 'ok');
});

t.test('commands: bound to their name, replay-protected by seq', async (t) => {
  const m = signCommand(keyA, 'ops', 'gw-1', 'breaker-reset', 10, { uplink: 'broker' });
  const v = verifyCommand('breaker-reset', msg(m), ctx(9));
  t.ok(v.ok && v.seq === 10 && v.args.uplink === 'broker', 'verified with its arguments');
  const code = (name: string, raw: Buffer, h = 0) => {
    const r = verifyCommand(name, raw, ctx(h));
    return r.ok ? 'ok' : r.code;
  };
  t.equal(code('purge', msg(m)), 'REMOTE_SIGNATURE_INVALID', 'a breaker reset is not a purge');
  t.equal(code('breaker-reset', msg(m), 10), 'REMOTE_REPLAY', 'the same seq again');
  t.equal(code('status', msg(signCommand(keyA, 'ops', 'gw-1', 'status', 1))), 'ok', 'no arguments');
  const cfgAsCmd = signConfig(keyA, 'ops', 'gw-1', 11, Buffer.from('{}'));
  t.equal(code('status', msg({ ...cfgAsCmd, seq: 11 })), 'REMOTE_SIGNATURE_INVALID', 'a config signature is not a command signature');
});

t.test('fuzz: random, truncated and mutated messages are refused with a code, never thrown', async (t) => {
  const rand = mulberry32(16);
  const good = JSON.stringify(signConfig(keyA, 'ops', 'gw-1', 5, cfgBytes));
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    let raw: Buffer;
    const kind = i % 3;
    if (kind === 0) raw = Buffer.from(Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)));
    else if (kind === 1) raw = Buffer.from(good.slice(0, Math.floor(rand() * (good.length - 1))));
    else {
      const chars = [...good];
      chars[Math.floor(rand() * chars.length)] = String.fromCharCode(32 + Math.floor(rand() * 95));
      raw = Buffer.from(chars.join(''));
    }
    const v = verifyConfigSet(raw, ctx());
    const c = verifyCommand('status', raw, ctx());
    if (!v.ok && !c.ok) refused++;
    else if (v.ok && raw.toString() !== good) t.fail(`accepted a mutated message: ${raw.toString()}`);
    if (!v.ok) t.ok(v.reason.length > 0 || t.fail('no reason'));
  }
  t.ok(refused > 1900, `${refused} of 2000 refused (a mutation of an unsigned field may keep it valid)`);
});

t.test('the health check asks what worked before, plus the channel and anything new', async (t) => {
  const cfg = (uplinks: string[], devices: string[]) =>
    ({ uplinks: uplinks.map((name) => ({ name, enabled: true })), sources: devices.map((device) => ({ device })), buses: [] }) as unknown as Config;
  const prev = cfg(['broker', 'otlp'], ['sim-1', 'sim-2']);
  const next = cfg(['broker', 'otlp', 'new'], ['sim-1', 'sim-2', 'sim-3']);
  const req = required(next, prev, { connected: new Set(['broker']), answered: new Set(['sim-1']) }, 'broker');
  t.same(req, { uplinks: ['broker', 'new'], devices: ['sim-1', 'sim-3'] }, 'otlp and sim-2 were failing already');
  t.same(missing(req, { connected: new Set(['broker']), answered: new Set(['sim-1', 'sim-3']) }), ['uplink new not connected']);
  t.same(missing(req, { connected: new Set(['broker', 'new']), answered: new Set(['sim-1', 'sim-3']) }), []);
  const req2 = required(next, prev, { connected: new Set(), answered: new Set() }, 'broker');
  t.ok(req2.uplinks.includes('broker'), 'the channel uplink is always required');
});

t.test('the state file: atomic, 0600, a bad one is the empty state with a problem', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-remote-'));
  t.same(readState(dir).state, { good: null, highestVersion: 0, highestSeq: 0 }, 'none yet');
  const message = signConfig(keyA, 'ops', 'gw-1', 4, cfgBytes);
  writeState(dir, { good: { version: 4, hash: 'h', appliedAt: 1, message }, highestVersion: 6, highestSeq: 9 });
  t.equal(statSync(join(dir, STATE_FILE)).mode & 0o777, 0o600);
  const r = readState(dir);
  t.equal(r.state.good?.version, 4);
  t.equal(r.state.highestVersion, 6);
  t.equal(r.state.highestSeq, 9);
  writeFileSync(join(dir, STATE_FILE), '{"good": ');
  const bad = readState(dir);
  t.same(bad.state.good, null);
  t.match(bad.problem, /not JSON/);
});
