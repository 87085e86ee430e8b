/**
 * REMOTE_STATE_UNWRITABLE, against a real Mosquitto and the real agent: the replay marks in
 * `<dataDir>/remote-state.json` are written before a signed command runs or a signed config is
 * switched to, so when they cannot be written the message is refused with that code, nothing
 * runs and nothing is taken: the same message, sent again once the disk is writable, runs. A
 * state that cannot be read at start is logged and the agent runs the local file.
 *
 * The fault is a directory where the agent writes a file (EISDIR), which holds when the tests run
 * as root, unlike a chmod.
 */
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './helpers/mosquitto.js';
import { log, type AgentDir } from './helpers/agent.js';
import { commandsRun, lastState, operatorKey, remoteAgentDir, remoteBroker, send, startRemoteAgent } from './helpers/remote.js';
import { signCommand, signConfig } from '../agent/remote/signing.js';
import { STATE_FILE } from '../agent/remote/state.js';

const ran = (a: AgentDir) => commandsRun(a, 'status');

t.test('a state file that cannot be written: command and config refused, nothing taken; sent again once writable, both run', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  const op = operatorKey();
  const a = remoteAgentDir(broker.url, op.publicB64);
  const agent = await startRemoteAgent(t, a, rec);
  const tmp = join(a.dataDir, `${STATE_FILE}.tmp`);
  mkdirSync(tmp);

  const cmd = signCommand(op.key, 'ops', 'gw-test', 'status', 1);
  const refused = await send(rec, 'cmd/status', cmd, 'cmd/status/result');
  t.match(refused, { status: 'rejected', code: 'REMOTE_STATE_UNWRITABLE', seq: 1, reason: /EISDIR.*remote-state\.json\.tmp/ }, 'the command: refused, naming the file and why');
  t.notOk('result' in refused, 'with no result: it did not run');

  const v1 = signConfig(op.key, 'ops', 'gw-test', 1, Buffer.from(JSON.stringify({ batch: { maxReadings: 100, maxAgeMs: 200 } })));
  const ack = await send(rec, 'config/set', v1, 'config/ack');
  t.match(ack, { status: 'rejected', code: 'REMOTE_STATE_UNWRITABLE', running: 0, reason: /EISDIR/ }, 'the config: refused while version 0 runs');
  t.equal(lastState(rec)?.version, 0, 'config/state: still the local file');
  t.same(ran(a), [], 'no command ran');
  t.notOk(existsSync(join(a.dataDir, STATE_FILE)), 'no state written');

  rmSync(tmp, { recursive: true });
  const again = await send(rec, 'cmd/status', cmd, 'cmd/status/result');
  t.equal(again.status, 'ok', `the same command sent again runs: seq 1 was not taken ${again.reason ?? ''}`);
  const applied = await send(rec, 'config/set', v1, 'config/ack', 40_000);
  t.match(applied, { status: 'accepted', running: 1 }, `the same config sent again is applied ${applied.reason ?? ''}`);
  await waitFor(() => ran(a).length > 0, 10_000, 'the log line of the command');
  t.same(ran(a), [1], 'the command ran once, after the disk came back');
  t.match(JSON.parse(readFileSync(join(a.dataDir, STATE_FILE), 'utf8')), { highestSeq: 1, highestVersion: 1, good: { version: 1 } }, 'the marks and the known good are kept');
  t.equal(await agent.stop(), 0, 'stopped cleanly');
});

t.test('a state that cannot be read at start: logged with the code, the local file runs, commands refused until it can be written', async (t) => {
  const { broker, rec } = await remoteBroker(t);
  const op = operatorKey();
  const a = remoteAgentDir(broker.url, op.publicB64);
  mkdirSync(a.dataDir, { mode: 0o700 });
  mkdirSync(join(a.dataDir, STATE_FILE));
  const agent = await startRemoteAgent(t, a, rec, 'running on the local file despite the state');
  t.match(log(a), /"code":"REMOTE_STATE_UNWRITABLE".*remote state: cannot read remote-state\.json: EISDIR.*starting without it/, 'logged with the code and why');

  // The rename onto the directory fails too: a command cannot take its seq.
  const r = await send(rec, 'cmd/status', signCommand(op.key, 'ops', 'gw-test', 'status', 1), 'cmd/status/result');
  t.match(r, { status: 'rejected', code: 'REMOTE_STATE_UNWRITABLE', seq: 1 }, 'a command is refused while the state cannot be written');
  t.same(ran(a), [], 'and did not run');
  t.equal(await agent.stop(), 0, 'stopped cleanly');
});
