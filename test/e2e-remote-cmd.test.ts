/**
 * Signed remote commands and fuzzed remote input against a real Mosquitto and the real agent:
 * a signed `breaker-reset` resets the breaker of an uplink that is down, the same message
 * replayed is refused; seeded random bytes, truncated and oversized messages on config/set and
 * cmd/<name> are each answered with a refusal and a reason, and the agent runs on unharmed.
 */
import t from 'tap';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { cli, count, telemetry, withDb } from './helpers/agent.js';
import { answers, lastState, operatorKey, remoteAgentDir, remoteBroker, send, startRemoteAgent } from './helpers/remote.js';
import { signCommand, signConfig } from '../agent/remote/signing.js';
import { mulberry32 } from './helpers/rand.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

t.test('remote commands: breaker reset works, its replay is refused; status; unknown names', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  const op = operatorKey();
  const a = remoteAgentDir(broker.url, op.publicB64);
  // A second uplink that cannot connect: its breaker opens.
  const dead = await freePort();
  const main = (a.config.uplinks as Record<string, unknown>[])[0];
  a.config.uplinks = [main, { ...main, name: 'down', url: `mqtt://127.0.0.1:${dead}`, topicPrefix: 'holdfast/gw-test/down', breaker: { minCalls: 2, failureRate: 0.5, openMs: 60000 } }];
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = await startRemoteAgent(t, a);
  const breaker = () =>
    count(a, `SELECT count(*) FROM sqlite_master WHERE name = 'recovery_events'`) === 0
      ? []
      : withDb(a, (db) => (db.prepare(`SELECT detail FROM recovery_events WHERE kind = 'breaker' AND subject = 'down' ORDER BY id`).pluck().all() as string[]).map((d) => JSON.parse(d) as { transition?: string; reset?: string }));
  await waitFor(() => breaker().some((d) => d.transition === 'closed->open'), 30_000, "the 'down' uplink's breaker opens");

  const reset = signCommand(op.key, 'ops', 'gw-test', 'breaker-reset', 1000, { uplink: 'down' });
  const r = await send(rec, 'cmd/breaker-reset', reset, 'cmd/breaker-reset/result');
  t.equal(r.status, 'ok', `breaker reset: ${r.reason ?? ''}`);
  await waitFor(() => breaker().some((d) => d.reset === 'manual'), 10_000, 'the reset is recorded');
  const replay = await send(rec, 'cmd/breaker-reset', reset, 'cmd/breaker-reset/result');
  t.equal(replay.status, 'rejected', 'the same message again: refused');
  t.equal(replay.code, 'REMOTE_REPLAY');
  t.equal(breaker().filter((d) => d.reset === 'manual').length, 1, 'and not applied twice');

  // The CLI signs commands the same way.
  const keyFile = join(a.dir, 'op.key');
  writeFileSync(keyFile, op.privatePem, { mode: 0o600 });
  const signed = cli(['cmd', 'sign', 'status', '--key', keyFile, '--key-id', 'ops', '--seq', '1001', '--gateway', 'gw-test']);
  t.equal(signed.code, 0, signed.stderr);
  const st = await send(rec, 'cmd/status', signed.stdout.trim(), 'cmd/status/result');
  t.equal(st.status, 'ok');
  const lanes = (st.result as { lanes: { uplink: string; connected: boolean }[] }).lanes;
  t.same(lanes.map((l) => [l.uplink, l.connected]), [['broker', true], ['down', false]], 'status names each lane');
  const bad = await send(rec, 'cmd/breaker-reset', signCommand(op.key, 'ops', 'gw-test', 'breaker-reset', 1002, { uplink: 'nope' }), 'cmd/breaker-reset/result');
  t.same([bad.status, bad.code], ['failed', 'REMOTE_COMMAND_FAILED'], `an unknown uplink: ${bad.reason}`);
  const unknown = await send(rec, 'cmd/reboot', signCommand(op.key, 'ops', 'gw-test', 'reboot', 1003), 'cmd/reboot/result');
  t.equal(unknown.code, 'REMOTE_COMMAND_UNKNOWN');
  t.equal(await agent.stop(), 0);
});

t.test('fuzz: random bytes, truncated and oversized messages are each refused with a reason; the agent runs on', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  const op = operatorKey();
  const a = remoteAgentDir(broker.url, op.publicB64, { maxMessageBytes: 4096 });
  const agent = await startRemoteAgent(t, a, rec);
  const rand = mulberry32(0x16);
  const goodCfg = JSON.stringify(signConfig(op.key, 'ops', 'gw-test', 5, Buffer.from('{"batch":{"maxReadings":50}}')));
  const goodCmd = JSON.stringify(signCommand(op.key, 'ops', 'gw-test', 'status', 5));
  const N = 90;
  for (let i = 0; i < N; i++) {
    const onCmd = i % 2 === 1;
    const good = onCmd ? goodCmd : goodCfg;
    let body: Buffer;
    switch (i % 3) {
      case 0:
        body = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 2000) }, () => Math.floor(rand() * 256)));
        break;
      case 1:
        body = Buffer.from(good.slice(0, Math.floor(rand() * (good.length - 1))));
        break;
      default:
        // Over the limit, under twice it: delivered by the broker, refused unread.
        body = Buffer.concat([Buffer.from(good), Buffer.alloc(4097 + Math.floor(rand() * 3000), 0x20)]);
    }
    const ans = onCmd ? await send(rec, 'cmd/status', body, 'cmd/status/result') : await send(rec, 'config/set', body, 'config/ack');
    if (ans.status !== 'rejected' || !ans.code || !ans.reason) t.fail(`message ${i}: ${JSON.stringify(ans)}`);
    if (i % 3 === 2 && ans.code !== 'REMOTE_TOO_LARGE') t.fail(`message ${i}: oversized but ${ans.code}`);
  }
  t.equal(answers(rec, 'config/ack').length + answers(rec, 'cmd/status/result').length, N, `${N} messages, ${N} refusals`);
  t.equal(answers(rec, 'config/ack').filter((x) => x.status !== 'rejected').length, 0, 'none accepted');
  // Far over the limit: the broker does not deliver it (Maximum Packet Size); no answer, no harm.
  await rec.client.publishAsync('holdfast/gw-test/config/set', Buffer.alloc(64 * 1024, 0x7b), { qos: 1 });
  t.equal(agent.proc.exitCode, null, 'the agent runs');
  t.equal(lastState(rec)?.version, 0, 'the running config unchanged');
  const mark = rec.messages.length;
  await waitFor(() => telemetry(rec.messages.slice(mark)).length > 3, 20_000, 'telemetry goes on');
  const ok = await send(rec, 'config/set', goodCfg, 'config/ack', 30_000);
  t.equal(ok.status, 'accepted', 'and a good config is still taken');
  t.equal(await agent.stop(), 0);
});
