/**
 * Owns the running Engine and switches it for a verified remote config, all or nothing. A switch
 * is the ordered stop the agent does on SIGTERM (acquisition stopped, last group commit, in-flight
 * acknowledgements awaited, store closed), then a new Engine on the same data directory: the
 * store is the one store, so every batch stays pending or delivered, none lost, and a message
 * whose acknowledgement did not come back is re-sent under its own key. Then the health check
 * (agent/remote/health.ts) within remote.healthDeadlineMs; if it fails, the same switch back to
 * the last known good. Only a config that passed its check becomes the known good on disk.
 */
import type { Logger } from 'pino';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Engine } from '../engine.js';
import { loadDrivers } from '../uplinks.js';
import { buildConfig, ConfigError } from '../config/load.js';
import { readJsonFile } from '../config/json-file.js';
import type { Config } from '../config/types.js';
import { sha256Hex } from './signing.js';
import type { VerifiedConfig } from './verify.js';
import { readState, writeState, type RemoteState } from './state.js';
import { missing, required, type Observed } from './health.js';

export interface Running {
  version: number;
  hash: string;
  source: 'file' | 'remote';
  appliedAt: number;
}

export type ApplyOutcome =
  | { status: 'accepted'; version: number; hash: string }
  | { status: 'rejected'; code: 'CONFIG_REJECTED' | 'REMOTE_STATE_UNWRITABLE'; reason: string }
  | { status: 'rolled_back'; code: 'REMOTE_ROLLED_BACK'; reason: string };

/** How often the health check looks. */
const HEALTH_POLL_MS = 200;

export class Supervisor {
  engine!: Engine;
  cfg: Config;
  running: Running;
  state: RemoteState = { good: null, highestVersion: 0, highestSeq: 0 };
  private readonly fileDoc: unknown;
  private readonly baseDir: string;
  private stopping = false;
  private switching: Promise<unknown> = Promise.resolve();

  /**
   * `attach` is called with each new engine before it starts (the remote channel subscribes on
   * its MQTT driver); `fatal` when not even the last known good can be started again.
   */
  constructor(
    fileCfg: Config,
    configFile: string | undefined,
    readonly log: Logger,
    private readonly attach: (e: Engine) => void,
    private readonly fatal: (e: unknown) => void,
  ) {
    this.cfg = fileCfg;
    this.fileDoc = configFile ? readJsonFile(configFile) : null;
    this.baseDir = configFile ? dirname(resolve(configFile)) : process.cwd();
    this.running = { version: 0, hash: configFile ? sha256Hex(readFileSync(configFile)) : '', source: 'file', appliedAt: Date.now() };
  }

  /** The local file merged with a remote layer (file < env < remote), validated as a file is. */
  build(doc: Record<string, unknown>, label: string): Config {
    if (this.fileDoc === null) throw new ConfigError('CONFIG_REJECTED', [{ path: '/', message: 'no local config file to merge the remote layer onto' }], label);
    return buildConfig(this.fileDoc, { baseDir: this.baseDir, remote: doc }, label);
  }

  /** Reads the remote state and the last known good (re-verified by `reverify`), then starts. */
  async start(reverify: (good: NonNullable<RemoteState['good']>) => VerifiedConfig | string): Promise<number | null> {
    if (this.cfg.remote) {
      const r = readState(this.cfg.dataDir);
      if (r.problem) this.log.error({ code: 'REMOTE_STATE_UNWRITABLE' }, `remote state: ${r.problem}; starting without it`);
      this.state = r.state;
      const g = r.state.good;
      if (g) {
        const v = reverify(g);
        try {
          if (typeof v === 'string') throw new Error(v);
          this.cfg = this.build(v.doc, `last known good remote config v${v.version}`);
          this.running = { version: v.version, hash: v.hash, source: 'remote', appliedAt: g.appliedAt };
          this.log.info({ version: v.version, hash: v.hash }, 'running the last known good remote config');
        } catch (e) {
          this.log.error({ code: 'CONFIG_REJECTED', version: g.version, err: e }, 'the last known good remote config is not usable now; running the local file');
        }
      }
    }
    await loadDrivers(this.cfg);
    this.engine = new Engine(this.cfg, this.log);
    this.attach(this.engine);
    return this.engine.start();
  }

  /** Stops whichever engine runs; a switch under way finishes first. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    await this.switching;
    await this.engine.stop(timeoutMs);
  }

  /** Uplinks connected and devices answering on the running engine now. */
  observe(): Observed {
    const e = this.engine;
    return { connected: new Set(e.lanes.filter((l) => l.snapshot().connected).map((l) => l.name)), answered: e.answered };
  }

  /** Applies a verified config: build and check, mark the version taken, switch, health check, keep or roll back. */
  async apply(v: VerifiedConfig, message: NonNullable<RemoteState['good']>['message'], remoteUplink: string, remoteCheck: (c: Config) => string | null): Promise<ApplyOutcome> {
    let next: Config;
    try {
      next = this.build(v.doc, `remote config v${v.version}`);
      const p = remoteCheck(next);
      if (p) throw new ConfigError('CONFIG_REJECTED', [{ path: '/uplinks', message: p }]);
      await loadDrivers(next);
    } catch (e) {
      const reason = e instanceof ConfigError ? e.problems.slice(0, 10).map((p) => `${p.path}: ${p.message}`).join('; ') : (e as Error).message;
      return { status: 'rejected', code: 'CONFIG_REJECTED', reason };
    }
    // The version is taken before the switch: after a crash mid-switch the same message is a replay.
    const mark = this.save({ ...this.state, highestVersion: v.version });
    if (mark) return { status: 'rejected', code: 'REMOTE_STATE_UNWRITABLE', reason: mark };
    const prev = this.cfg;
    const before = this.observe();
    this.log.warn({ version: v.version, hash: v.hash, keyId: v.keyId }, 'remote config: switching');
    const failed = await this.switchTo(next);
    const req = required(next, prev, before, remoteUplink);
    const miss = failed ? [failed] : await this.healthy(req, next.remote?.healthDeadlineMs ?? 30_000);
    if (this.stopping) return { status: 'rolled_back', code: 'REMOTE_ROLLED_BACK', reason: 'the agent is stopping' };
    if (miss.length > 0) {
      const reason = `health check failed: ${miss.join('; ')}`;
      this.log.error({ code: 'REMOTE_ROLLED_BACK', version: v.version, reason }, 'remote config: rolling back to the last known good');
      const back = await this.switchTo(prev);
      if (back) this.fatal(new Error(`the last known good config did not start again: ${back}`));
      return { status: 'rolled_back', code: 'REMOTE_ROLLED_BACK', reason };
    }
    this.running = { version: v.version, hash: v.hash, source: 'remote', appliedAt: Date.now() };
    const kept = this.save({ ...this.state, good: { version: v.version, hash: v.hash, appliedAt: this.running.appliedAt, message } });
    if (kept) this.log.error({ code: 'REMOTE_STATE_UNWRITABLE', version: v.version }, `remote config applied but not saved as the last known good: ${kept}`);
    this.log.warn({ version: v.version, hash: v.hash }, 'remote config applied');
    return { status: 'accepted', version: v.version, hash: v.hash };
  }

  /** Writes the state; returns why not, or null. The in-memory state follows only a good write. */
  save(s: RemoteState): string | null {
    try {
      writeState(this.cfg.dataDir, s);
      this.state = s;
      return null;
    } catch (e) {
      return `${(e as Error).message}`;
    }
  }

  /** Stops the engine in order and starts one on `cfg`; returns why it did not start, or null. */
  private switchTo(cfg: Config): Promise<string | null> {
    const run = async (): Promise<string | null> => {
      await this.engine.stop(this.engine.cfg.shutdownTimeoutMs);
      let e: Engine;
      try {
        e = new Engine(cfg, this.log);
      } catch (err) {
        return `engine not built: ${(err as Error).message}`;
      }
      this.engine = e;
      this.cfg = cfg;
      this.attach(e);
      try {
        await e.start();
        return null;
      } catch (err) {
        return `engine not started: ${(err as Error).message}`;
      }
    };
    const p = run();
    this.switching = p;
    return p;
  }

  /** Waits until nothing required is missing, or the deadline; returns what is still missing. */
  private async healthy(req: ReturnType<typeof required>, deadlineMs: number): Promise<string[]> {
    const until = performance.now() + deadlineMs;
    for (;;) {
      const m = missing(req, this.observe());
      if (m.length === 0 || this.stopping) return m;
      if (performance.now() >= until) return m.map((x) => `${x} within ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
    }
  }
}
