/**
 * Test helper for remote configuration and commands: a broker with a recorder on everything the
 * gateway publishes, an operator key pair, an agent folder whose local file trusts it, the agent
 * started and seen running, and a publisher that sends a message on <prefix>/<suffix> (and, with
 * `send`, waits for the answer the agent publishes about exactly that message, matched by its
 * SHA-256).
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { newKeyPair, parsePrivateKey } from '../../agent/remote/signing.js';
import { launchAgent, log, makeAgentDir, type AgentDir, type RunningAgent } from './agent.js';
import { startBroker, waitFor, type Broker } from './mosquitto.js';
import { subscribe, type Recorder } from './mqtt-sub.js';

export const PREFIX = 'holdfast/gw-test';

type TestLike = { teardown(fn: () => unknown): void; passing(): boolean };

/** A broker and a recorder on everything under PREFIX; both closed at the test's teardown. */
export async function remoteBroker(t: TestLike): Promise<{ broker: Broker; rec: Recorder }> {
  const broker = await startBroker();
  const rec = await subscribe(broker.url, `${PREFIX}/#`);
  t.teardown(async () => {
    await rec.close();
    await broker.stop();
  });
  return { broker, rec };
}

/**
 * Starts the agent (launchAgent: its output printed on a failed test, killed -9 at teardown)
 * and, given the recorder, waits until its config/state says it runs the local file (version 0).
 */
export async function startRemoteAgent(t: TestLike, a: AgentDir, rec?: Recorder, what = 'running'): Promise<RunningAgent> {
  const agent = launchAgent(t, a);
  if (rec) await waitFor(() => lastState(rec)?.version === 0, 20_000, what);
  return agent;
}

export function operatorKey(): { key: ReturnType<typeof parsePrivateKey>; publicB64: string; privatePem: string } {
  const k = newKeyPair();
  return { key: parsePrivateKey(k.privatePem), publicB64: k.publicB64, privatePem: k.privatePem };
}

/** An agent folder with `remote` trusting `publicB64` as key id "ops". */
export function remoteAgentDir(brokerUrl: string, publicB64: string, remote: Record<string, unknown> = {}, patch: Record<string, unknown> = {}): AgentDir {
  const a = makeAgentDir(brokerUrl, patch);
  a.config.remote = { trustedKeys: { ops: publicB64 }, maxMessageBytes: 8192, healthDeadlineMs: 5000, ...remote };
  writeFileSync(a.configFile, JSON.stringify(a.config, null, 2));
  return a;
}

export type Answer = Record<string, unknown> & { status: string; code?: string; reason?: string };

/** The answers (acks, results) a recorder holds, by message SHA-256. */
export function answers(rec: Recorder, suffix: string): Answer[] {
  return rec.messages.filter((m) => m.topic === `${PREFIX}/${suffix}`).map((m) => JSON.parse(m.payload.toString()) as Answer);
}

/** Publishes `body` (bytes as given) on <prefix>/<suffix> without waiting for an answer; returns its bytes and their SHA-256. */
export async function publish(rec: Recorder, suffix: string, body: Buffer | string | object): Promise<{ bytes: Buffer; sha: string }> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  await rec.client.publishAsync(`${PREFIX}/${suffix}`, bytes, { qos: 1 });
  return { bytes, sha: createHash('sha256').update(bytes).digest('hex') };
}

/** Publishes `body` (bytes as given) and waits for the answer on `answerSuffix` that names it. */
export async function send(rec: Recorder, suffix: string, body: Buffer | string | object, answerSuffix: string, timeoutMs = 20_000): Promise<Answer> {
  // Only answers that come after this publish: the same bytes sent twice (a replay) get two.
  const from = rec.messages.length;
  const { bytes, sha } = await publish(rec, suffix, body);
  const fresh = (): Recorder => ({ ...rec, messages: rec.messages.slice(from) });
  let found: Answer | undefined;
  await waitFor(() => (found = answers(fresh(), answerSuffix).find((a) => a.messageSha256 === sha)) !== undefined, timeoutMs, `the answer on ${answerSuffix} to a ${bytes.length}-byte message`);
  return found!;
}

/** The last config/state the recorder saw. */
export function lastState(rec: Recorder): { version: number; hash: string; source: string } | undefined {
  const s = rec.messages.filter((m) => m.topic === `${PREFIX}/config/state`);
  return s.length ? (JSON.parse(s[s.length - 1].payload.toString()) as { version: number; hash: string; source: string }) : undefined;
}

/** The seqs of the commands `name` the agent ran, from its `remote command <name>` log lines. */
export function commandsRun(a: AgentDir, name: string): number[] {
  return log(a)
    .split('\n')
    .filter((l) => l.includes(`"remote command ${name}"`))
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
}
