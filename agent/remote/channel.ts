/**
 * The remote channel: `config/set` and `cmd/<name>` arrive on the MQTT uplink named by
 * remote.uplink (its driver only delivers them); each is verified (agent/remote/verify.ts), then
 * applied by the supervisor or run (agent/remote/commands.ts), and always answered, on
 * `config/ack` or `cmd/<name>/result`, with a status, a stable code and a reason. Retained
 * `config/state` says what runs. Messages are taken one at a time: a config/set or a command
 * that comes while a config is being applied is refused (REMOTE_BUSY), never queued.
 */
import type { KeyObject } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { Engine } from '../engine.js';
import { ConfigError } from '../config/load.js';
import { parseKeyring, sha256Hex } from './signing.js';
import { verifyCommand, verifyConfigSet, type Refusal, type VerifiedConfig, type VerifyContext } from './verify.js';
import { isCommandName, runCommand } from './commands.js';
import type { Supervisor } from './supervisor.js';
import type { KnownGood } from './state.js';

type RemoteConfig = NonNullable<Config['remote']>;

/** The uplink that carries the channel: remote.uplink, or the first enabled MQTT uplink. */
export function remoteUplinkOf(cfg: Config): string | undefined {
  return cfg.remote?.uplink ?? cfg.uplinks.find((u) => u.type === 'mqtt' && u.enabled)?.name;
}

/** Why `cfg` cannot carry the channel named `name` (null: it can). A remote config must keep it. */
export function channelProblem(cfg: Config, name: string): string | null {
  const u = cfg.uplinks.find((x) => x.name === name);
  if (!u) return `the remote channel's uplink ${JSON.stringify(name)} must stay in the config`;
  if (u.type !== 'mqtt') return `the remote channel's uplink ${JSON.stringify(name)} must be of type mqtt (is ${u.type})`;
  if (!u.enabled) return `the remote channel's uplink ${JSON.stringify(name)} must stay enabled`;
  return null;
}

export class RemoteChannel {
  private readonly keys: Map<string, KeyObject>;
  private readonly uplink: string;
  private busy = false;

  /** Throws ConfigError when the local file's remote section cannot work (bad key, no such uplink). */
  constructor(
    private readonly sup: Supervisor,
    private readonly rc: RemoteConfig,
    fileCfg: Config,
  ) {
    try {
      this.keys = parseKeyring(rc.trustedKeys);
    } catch (e) {
      throw new ConfigError('CONFIG_INVALID', [{ path: '/remote/trustedKeys', message: (e as Error).message }]);
    }
    const name = remoteUplinkOf(fileCfg);
    const p = name === undefined ? 'no enabled MQTT uplink to carry the remote channel' : channelProblem(fileCfg, name);
    if (p || name === undefined) throw new ConfigError('CONFIG_INVALID', [{ path: '/remote/uplink', message: p ?? '' }]);
    this.uplink = name;
  }

  private ctx(highest: number): VerifyContext {
    return { gatewayId: this.sup.cfg.gatewayId, keys: this.keys, maxBytes: this.rc.maxMessageBytes, highest };
  }

  /** Verifies a stored last known good again, with the keys trusted now (no replay check: it is ours). */
  reverify(g: KnownGood): VerifiedConfig | string {
    const v = verifyConfigSet(Buffer.from(JSON.stringify(g.message)), { ...this.ctx(0), maxBytes: Infinity });
    return v.ok ? v : `${v.code}: ${v.reason}`;
  }

  /** Subscribes on a new engine's channel uplink (before it starts, so the first connect subscribes). */
  attach(e: Engine): void {
    const d = e.mqttDriver(this.uplink);
    if (!d) return;
    const prefix = `${d.prefix}/`;
    // Twice the refusal limit: a bit over it is refused with a reason; far over it the broker drops it.
    const packetMax = 2 * this.rc.maxMessageBytes + 4096;
    d.onMessage(['config/set', 'cmd/+'], (topic, payload) => {
      if (this.sup.engine !== e || !topic.startsWith(prefix)) return;
      const suffix = topic.slice(prefix.length);
      e.guard.run('remote.message', () => (suffix === 'config/set' ? this.onConfigSet(payload) : this.onCommand(suffix.slice(4), payload)));
    }, packetMax);
  }

  private publish(suffix: string, body: Record<string, unknown>, retain = false): void {
    this.sup.engine.mqttDriver(this.uplink)?.publishEvent(suffix, { gatewayId: this.sup.cfg.gatewayId, ...body, at: Date.now() }, retain);
  }

  /** Retained config/state: the running version and the hash of its payload (of the local file for version 0). */
  publishState(): void {
    const r = this.sup.running;
    this.publish('config/state', { version: r.version, hash: r.hash, source: r.source, appliedAt: r.appliedAt }, true);
  }

  private refused(topic: string, r: Refusal, messageSha256: string, what: Record<string, unknown>): void {
    this.sup.log.warn({ code: r.code, topic, claimed: r.claimed, messageSha256 }, `remote ${topic} refused: ${r.reason}`);
    this.publish(topic, { status: 'rejected', ...what, code: r.code, reason: r.reason, messageSha256 });
  }

  private onConfigSet(raw: Buffer): void {
    const messageSha256 = sha256Hex(raw);
    const running = this.sup.running.version;
    if (this.busy) return this.refused('config/ack', { ok: false, code: 'REMOTE_BUSY', reason: 'a config is being applied; send it again after its config/ack' }, messageSha256, { running });
    const v = verifyConfigSet(raw, this.ctx(this.sup.state.highestVersion));
    if (!v.ok) return this.refused('config/ack', v, messageSha256, { version: v.claimed ?? null, running });
    const m = JSON.parse(raw.toString('utf8')) as KnownGood['message'];
    const message = { version: m.version, payload: m.payload, keyId: m.keyId, signature: m.signature };
    this.busy = true;
    this.sup.log.warn({ version: v.version, hash: v.hash, keyId: v.keyId, messageSha256 }, 'remote config received');
    void this.sup.engine.guard
      .runAsync('remote.apply', async () => {
        const o = await this.sup.apply(v, message, this.uplink, (c) => channelProblem(c, this.uplink));
        const body = { ...o, version: v.version, hash: v.hash, running: this.sup.running.version, messageSha256 };
        if (o.status === 'rejected') this.sup.log.warn({ code: o.code, version: v.version }, `remote config refused: ${o.reason}`);
        this.publish('config/ack', body);
        this.publishState();
      })
      .finally(() => (this.busy = false));
  }

  private onCommand(name: string, raw: Buffer): void {
    const messageSha256 = sha256Hex(raw);
    const topic = `cmd/${name}/result`;
    if (!isCommandName(name)) return this.refused(topic, { ok: false, code: 'REMOTE_COMMAND_UNKNOWN', reason: 'commands: status, breaker-reset, retry-reset, purge' }, messageSha256, {});
    if (this.busy) return this.refused(topic, { ok: false, code: 'REMOTE_BUSY', reason: 'a config is being applied; send it again after its config/ack' }, messageSha256, {});
    const v = verifyCommand(name, raw, this.ctx(this.sup.state.highestSeq));
    if (!v.ok) return this.refused(topic, v, messageSha256, { seq: v.claimed ?? null });
    // The sequence number is taken before the command runs: a crash after it cannot make it run twice.
    const why = this.sup.save({ ...this.sup.state, highestSeq: v.seq });
    if (why) return this.refused(topic, { ok: false, code: 'REMOTE_STATE_UNWRITABLE', reason: why }, messageSha256, { seq: v.seq });
    this.sup.log.warn({ command: name, seq: v.seq, keyId: v.keyId, args: v.args }, `remote command ${name}`);
    let r: ReturnType<typeof runCommand>;
    try {
      r = runCommand(name, v.args, this.sup.engine, Date.now());
    } catch (e) {
      r = { ok: false, code: 'REMOTE_COMMAND_FAILED', reason: (e as Error).message };
    }
    if (r.ok) this.publish(topic, { status: 'ok', seq: v.seq, result: r.result, messageSha256 });
    else this.refused(topic, { ok: false, code: r.code, reason: r.reason }, messageSha256, { seq: v.seq, status: 'failed' });
  }
}
