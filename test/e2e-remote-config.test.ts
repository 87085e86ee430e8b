/**
 * Signed remote configuration against a real Mosquitto and the real agent: a config made with
 * the operator's CLI tools (`holdfast keypair`, `holdfast config sign`) applied and acknowledged,
 * each refusal with the running config unchanged, the last known good kept across a restart,
 * and a config whose uplink cannot connect rolled back with every reading delivered once.
 */
import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { checkCounters, cli, count, telemetry } from './helpers/agent.js';
import { answers, lastState, operatorKey, remoteAgentDir, remoteBroker, send, startRemoteAgent } from './helpers/remote.js';
import { parsePrivateKey, sha256Hex, signConfig } from '../agent/remote/signing.js';

const devicesSeen = (rec: Parameters<typeof telemetry>[0], since = 0) => new Set(telemetry(rec.slice(since)).map((m) => m.device));

t.test('apply, refusals, restart: the last known good is kept', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  // The trusted keys are filled in below, from the operator's key pair.
  const dir0 = remoteAgentDir(broker.url, 'placeholder-replaced-below-xxxxxxxxxxxxxxxxxxxxxxxx');
  // The operator's key pair, made with the CLI as an operator would.
  const prefix = join(dir0.dir, 'ops');
  const kp = cli(['keypair', '--out', prefix]);
  t.equal(kp.code, 0, kp.stderr);
  t.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600, 'private key 0600');
  const publicB64 = /trustedKeys value: (\S+)/.exec(kp.stdout)![1];
  (dir0.config.remote as { trustedKeys: Record<string, string> }).trustedKeys = { ops: publicB64, pem: readFileSync(`${prefix}.pub`, 'utf8') };
  writeFileSync(dir0.configFile, JSON.stringify(dir0.config));
  const a = dir0;
  let agent = await startRemoteAgent(t, a, rec, 'config/state: version 0 (the local file)');
  t.equal(lastState(rec)?.source, 'file');

  // v1 adds a second source: signed with the CLI.
  const layer = join(a.dir, 'layer.json');
  writeFileSync(layer, JSON.stringify({ sources: [...(a.config.sources as object[]), { type: 'simulated', device: 'sim-2', intervalMs: 20, points: 2 }] }));
  const signed = cli(['config', 'sign', '--key', `${prefix}.key`, '--key-id', 'ops', '--version', '1', '--gateway', 'gw-test', layer]);
  t.equal(signed.code, 0, signed.stderr);
  const v1 = JSON.parse(signed.stdout) as { version: number; payload: string; keyId: string; signature: string };
  const ack = await send(rec, 'config/set', signed.stdout.trim(), 'config/ack', 30_000);
  t.equal(ack.status, 'accepted', `accepted: ${ack.reason ?? ''}`);
  t.equal(ack.version, 1);
  t.equal(ack.hash, sha256Hex(readFileSync(layer)), 'the hash is the SHA-256 of the signed payload');
  await waitFor(() => lastState(rec)?.version === 1, 10_000, 'config/state: version 1');
  const mark = rec.messages.length;
  await waitFor(() => devicesSeen(rec.messages, mark).has('sim-2'), 20_000, 'the new setting in effect: sim-2 delivers');
  // Retained: a subscriber that comes later reads it.
  const late = await subscribe(broker.url, 'holdfast/gw-test/config/state');
  await waitFor(() => late.messages.length > 0, 10_000, 'retained config/state');
  const st = JSON.parse(late.messages[0].payload.toString()) as { version: number; hash: string };
  t.ok(late.messages[0].retain, 'retained');
  t.same([st.version, st.hash], [1, ack.hash], 'retained state: version 1 and its hash');
  await late.close();

  // Refusals, each with its code; nothing changes.
  const key = parsePrivateKey(readFileSync(`${prefix}.key`, 'utf8'));
  const other = operatorKey();
  const bytes = (o: object) => Buffer.from(JSON.stringify(o));
  const cases: [string, Buffer | string, string][] = [
    ['bad signature (payload changed after signing)', bytes({ ...signConfig(key, 'ops', 'gw-test', 2, Buffer.from('{}')), payload: Buffer.from('{"batch":{}}').toString('base64') }), 'REMOTE_SIGNATURE_INVALID'],
    ['signed by an untrusted key under a trusted id', bytes(signConfig(other.key, 'ops', 'gw-test', 2, Buffer.from('{}'))), 'REMOTE_SIGNATURE_INVALID'],
    ['missing signature', bytes({ ...signConfig(key, 'ops', 'gw-test', 2, Buffer.from('{}')), signature: undefined }), 'REMOTE_SIGNATURE_INVALID'],
    ['unknown key id', bytes(signConfig(other.key, 'someone', 'gw-test', 2, Buffer.from('{}'))), 'REMOTE_KEY_UNKNOWN'],
    ['replayed v1', signed.stdout.trim(), 'REMOTE_REPLAY'],
    ['schema-invalid', bytes(signConfig(key, 'ops', 'gw-test', 2, Buffer.from('{"batch":{"maxReadings":"many"}}'))), 'CONFIG_REJECTED'],
    ['the trust anchor changed remotely', bytes(signConfig(key, 'ops', 'gw-test', 2, Buffer.from(JSON.stringify({ remote: { trustedKeys: { evil: other.publicB64 } } })))), 'CONFIG_REJECTED'],
    ['oversized', bytes(signConfig(key, 'ops', 'gw-test', 2, Buffer.from(JSON.stringify({ sources: [], pad: 'x'.repeat(9000) })))), 'REMOTE_TOO_LARGE'],
    ['malformed JSON', '{"version": 2, "payload": ', 'REMOTE_MALFORMED'],
  ];
  for (const [what, body, code] of cases) {
    const r = await send(rec, 'config/set', body, 'config/ack');
    t.equal(r.status, 'rejected', `${what}: rejected`);
    t.equal(r.code, code, `${what}: ${code} (${r.reason})`);
    t.ok(typeof r.reason === 'string' && r.reason.length > 5, `${what}: with a reason`);
    t.equal(r.running, 1, `${what}: version 1 still runs`);
  }
  t.equal(answers(rec, 'config/ack').filter((x) => x.status === 'accepted').length, 1, 'nothing else accepted');
  t.equal(lastState(rec)?.version, 1, 'config/state unchanged');
  const stateFile = join(a.dataDir, 'remote-state.json');
  t.equal(statSync(stateFile).mode & 0o777, 0o600, 'the state file is 0600');
  const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { good: { version: number; message: unknown }; highestVersion: number };
  t.equal(saved.good.version, 1, 'last known good on disk: v1');
  t.same(saved.good.message, v1, 'the signed message itself');

  // A restart runs the last known good (sim-2 goes on), not the bare local file.
  t.equal(await agent.stop(), 0, 'stopped cleanly');
  const before = rec.messages.length;
  agent = await startRemoteAgent(t, a);
  await waitFor(() => rec.messages.slice(before).some((m) => m.topic.endsWith('/config/state') && JSON.parse(m.payload.toString()).version === 1), 20_000, 'config/state v1 after the restart');
  await waitFor(() => devicesSeen(rec.messages, before).has('sim-2'), 20_000, 'sim-2 delivers after the restart');
  const replay = await send(rec, 'config/set', signed.stdout.trim(), 'config/ack');
  t.equal(replay.code, 'REMOTE_REPLAY', 'the replay mark survived the restart too');
  t.equal(await agent.stop(), 0);
});

t.test('a config whose uplink cannot connect is rolled back; the data buffered meanwhile is delivered once', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  const op = operatorKey();
  const TOTAL = 400;
  const a = remoteAgentDir(broker.url, op.publicB64, { healthDeadlineMs: 2500 }, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3, stopAfter: TOTAL }] });
  const agent = await startRemoteAgent(t, a, rec);
  await waitFor(() => telemetry(rec.messages).length > 3, 20_000, 'some telemetry');
  const dead = await freePort();
  const uplinks = (a.config.uplinks as Record<string, unknown>[]).map((u) => ({ ...u, url: `mqtt://127.0.0.1:${dead}` }));
  const ack = await send(rec, 'config/set', signConfig(op.key, 'ops', 'gw-test', 1, Buffer.from(JSON.stringify({ uplinks }))), 'config/ack', 40_000);
  t.equal(ack.status, 'rolled_back', 'rolled back');
  t.equal(ack.code, 'REMOTE_ROLLED_BACK');
  t.match(ack.reason, /uplink broker not connected/, `the reason names the uplink: ${ack.reason}`);
  t.equal(ack.running, 0, 'the local file runs again');
  await waitFor(() => count(a, 'SELECT max(cursor) FROM source_state') >= TOTAL, 40_000, 'the source finished');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) === 0, 30_000, 'nothing pending');
  const batches = count(a, 'SELECT count(*) FROM payloads');
  await waitFor(() => new Set(telemetry(rec.messages).map((m) => m.key)).size === batches, 10_000, 'every batch at the subscriber');
  const c = checkCounters(telemetry(rec.messages));
  t.same(c.problems, [], 'no gap, no batch duplicated with other readings');
  t.equal(c.counters.get('sim-1')?.length, TOTAL, `counter 1..${TOTAL}: none lost across the switch and the rollback`);
  t.match(JSON.parse(readFileSync(join(a.dataDir, 'remote-state.json'), 'utf8')), { good: null, highestVersion: 1 }, 'no known good but the file; v1 is taken');
  t.equal(await agent.stop(), 0);
});
