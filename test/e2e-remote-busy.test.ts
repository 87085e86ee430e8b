/**
 * One config at a time, against a real Mosquitto and the real agent: while a signed config is
 * being applied (old engine stopped, new one started, health check), signed `cmd/status`
 * messages and a second signed `config/set` are each refused on their answer topic with
 * REMOTE_BUSY, never run and never queued; after the first config's `config/ack` a new command
 * runs again and the refused config, sent again, is applied.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from './helpers/mosquitto.js';
import type { Received } from './helpers/mqtt-sub.js';
import { answers, commandsRun, lastState, operatorKey, PREFIX, publish, remoteAgentDir, remoteBroker, send, startRemoteAgent, type Answer } from './helpers/remote.js';
import { signCommand, signConfig } from '../agent/remote/signing.js';

/** The poll interval of the device v1 adds: its first reading, and so the health check, comes this long after the new engine starts. */
const SLOW_MS = 4000;

const body = (m: Received) => JSON.parse(m.payload.toString()) as Answer;
const on = (suffix: string) => (m: Received) => m.topic === `${PREFIX}/${suffix}`;

t.test('cmd/<name> and config/set during an apply: refused REMOTE_BUSY, not queued; taken again after the config/ack', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  const op = operatorKey();
  const a = remoteAgentDir(broker.url, op.publicB64, { healthDeadlineMs: 30_000 });
  const agent = await startRemoteAgent(t, a, rec);
  const status = (seq: number) => signCommand(op.key, 'ops', 'gw-test', 'status', seq);
  const first = await send(rec, 'cmd/status', status(1), 'cmd/status/result');
  t.equal(first.status, 'ok', `before any config a command runs: ${first.reason ?? ''}`);

  // v1 adds a device polled every SLOW_MS: the apply lasts at least that long once the new engine is up.
  const sources = [...(a.config.sources as object[]), { type: 'simulated', device: 'sim-slow', intervalMs: SLOW_MS, points: 1 }];
  const v1 = signConfig(op.key, 'ops', 'gw-test', 1, Buffer.from(JSON.stringify({ sources })));
  // v2 sets only the batch (the file's sources again): valid, and above v1.
  const v2 = signConfig(op.key, 'ops', 'gw-test', 2, Buffer.from(JSON.stringify({ batch: { maxReadings: 100, maxAgeMs: 200 } })));

  const mark = rec.messages.length;
  const since = () => rec.messages.slice(mark);
  const { sha: v1Sha } = await publish(rec, 'config/set', v1);
  const v1AckAt = () => since().findIndex((m) => on('config/ack')(m) && body(m).messageSha256 === v1Sha);
  // The new engine is up and subscribed once a command is refused after its `online` status.
  const newEngineRefuses = () => {
    const online = since().findIndex((m) => on('status')(m) && body(m).state === 'online');
    return online >= 0 && since().slice(online).some((m) => on('cmd/status/result')(m) && body(m).code === 'REMOTE_BUSY');
  };
  // Freshly signed commands (seq rising) until the ack; a message that comes while no engine is
  // subscribed (during the switch) is lost, so keep sending. The second config goes once.
  const sent: { seq: number; sha: string }[] = [];
  let v2Sha: string | undefined;
  const deadline = Date.now() + 60_000;
  for (let seq = 2; v1AckAt() < 0; seq++) {
    if (Date.now() > deadline) throw new Error(`no config/ack for v1 within 60 s (${sent.length} commands sent)`);
    sent.push({ seq, sha: (await publish(rec, 'cmd/status', status(seq))).sha });
    if (v2Sha === undefined && newEngineRefuses()) v2Sha = (await publish(rec, 'config/set', v2)).sha;
    await sleep(150);
  }
  const ackAt = v1AckAt();
  const ack = body(since()[ackAt]);
  t.equal(ack.status, 'accepted', `v1 accepted: ${ack.reason ?? ''}`);
  t.equal(ack.running, 1, 'v1 runs');

  // In the agent's publish order (one connection): every command answer before the ack is a refusal.
  const during = since().slice(0, ackAt).filter(on('cmd/status/result')).map(body);
  t.ok(during.length >= 1, `${during.length} of ${sent.length} commands answered during the apply`);
  t.equal(during.filter((x) => x.status === 'ok').length, 0, 'no command ran during the apply');
  t.same(during.filter((x) => x.status !== 'rejected' || x.code !== 'REMOTE_BUSY'), [], 'each refused REMOTE_BUSY');
  t.match(during[0], { status: 'rejected', code: 'REMOTE_BUSY', reason: /a config is being applied; send it again after its config\/ack/ }, 'with the reason');
  t.ok(during.every((x) => sent.some((s) => s.sha === x.messageSha256)), 'each answer names a command sent (messageSha256)');

  t.ok(v2Sha, 'a second config/set was sent while the new engine refused commands');
  await waitFor(() => answers(rec, 'config/ack').some((x) => x.messageSha256 === v2Sha), 20_000, 'the answer to the second config/set');
  const v2Answers = answers(rec, 'config/ack').filter((x) => x.messageSha256 === v2Sha);
  t.equal(v2Answers.length, 1, 'the second config/set: answered once');
  t.match(v2Answers[0], { status: 'rejected', code: 'REMOTE_BUSY', reason: /a config is being applied/, running: 0 }, 'refused REMOTE_BUSY while version 0 still ran');
  await waitFor(() => lastState(rec)?.version === 1, 10_000, 'config/state: version 1');

  // After the ack: a new command runs.
  const next = sent[sent.length - 1].seq + 1;
  const after = await send(rec, 'cmd/status', status(next), 'cmd/status/result');
  t.equal(after.status, 'ok', `after the ack a command runs again: ${after.reason ?? ''}`);
  t.equal(after.seq, next, 'its answer names its seq');

  // Never queued: each refused command has its one answer only, and the agent ran exactly the
  // commands answered ok (its log line per command run).
  const results = answers(rec, 'cmd/status/result');
  const refused = new Set(results.filter((x) => x.code === 'REMOTE_BUSY').map((x) => x.messageSha256));
  t.equal(results.filter((x) => refused.has(x.messageSha256)).length, refused.size, `each of the ${refused.size} refused commands answered once, never run later`);
  const runs = () => commandsRun(a, 'status');
  await waitFor(() => runs().includes(next), 10_000, 'the log line of the last command');
  const okSeqs = results.filter((x) => x.status === 'ok').map((x) => x.seq as number);
  t.same(runs().sort((x, y) => x - y), okSeqs.sort((x, y) => x - y), `the agent ran exactly the ${okSeqs.length} commands answered ok`);

  // The refused config, sent again after the ack, is applied.
  const again = await send(rec, 'config/set', v2, 'config/ack', 40_000);
  t.equal(again.status, 'accepted', `the refused config sent again: applied ${again.reason ?? ''}`);
  t.equal(again.running, 2, 'version 2 runs');
  t.equal(await agent.stop(), 0, 'stopped cleanly');
});
