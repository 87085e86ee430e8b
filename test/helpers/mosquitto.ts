/**
 * Test harness: runs a REAL Mosquitto broker (Debian's `mosquitto` package)
 * on a free loopback port, with its own config, log and persistence files in
 * a fresh temporary directory.
 *
 *   const broker = await startBroker({ persistence: true });
 *   ... connect to broker.url ...
 *   await broker.stop();   // SIGTERM: clean shutdown, persistence saved
 *   await broker.start();  // same port, dir and config: "link restored"
 *   await broker.kill();   // SIGKILL: crash, nothing saved
 *
 * Brokers never outlive the test process: they are killed on process exit,
 * and (when util-linux `setpriv` is available) they also receive SIGKILL from
 * the kernel if the test process dies abruptly.
 *
 * Set HOLDFAST_KEEP_BROKER_DIRS=1 to keep the temp dirs (config, log,
 * database) after the test process exits, for debugging.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface BrokerOptions {
  /** Fixed port; default: a free loopback port. */
  port?: number;
  /** `persistence true` with the database in the broker's temp dir. */
  persistence?: boolean;
  /** username -> password; when given, anonymous access is refused. */
  users?: Record<string, string>;
  /** `max_packet_size` in bytes. */
  maxPacketSize?: number;
  /** Extra mosquitto.conf lines, appended verbatim. */
  extraConf?: string[];
  /**
   * `log_type` lines (default ['all']). A broker under thousands of publishes a second logs less:
   * ['error', 'warning', 'notice'] keeps the "running" line that start() waits for, and
   * connections, not every packet.
   */
  logTypes?: string[];
}

export interface Broker {
  port: number;
  /** mqtt://127.0.0.1:<port> */
  url: string;
  /** Temp dir holding mosquitto.conf, mosquitto.log, passwd, mosquitto.db. */
  dir: string;
  /** (Re)start the broker with the same port, dir and config. */
  start(): Promise<void>;
  /** SIGTERM and wait for exit (persistence is saved). No-op if not running. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (nothing saved). No-op if not running. */
  kill(): Promise<void>;
  /** SIGSTOP: a hung broker (connections stay open, nothing is answered) until resume(). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  running: boolean;
  /** Whole broker log (all runs of this broker), '' if none yet. */
  log(): string;
  /**
   * Number of CONNECT packets the broker has answered, over all runs of this
   * broker: counts "Sending CONNACK to" log lines, which mosquitto writes once
   * per CONNECT, whether accepted or refused (bad credentials, not
   * authorised...). Plain TCP connections that never send CONNECT (like the
   * harness's own readiness probe) are not counted.
   */
  connectCount(): number;
}

export const MOSQUITTO_BIN = process.env.HOLDFAST_MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
const SETPRIV_BIN = '/usr/bin/setpriv';
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(Math.min(intervalMs, left));
  }
}

const handedOutPorts = new Set<number>();

/** A TCP port that is free on 127.0.0.1 right now (never the same one twice per process). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOutPorts.has(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused port');
}

/** Resolves true if something accepts TCP connections on 127.0.0.1:port. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------
// Cleanup: no broker outlives the test process.

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    liveChildren.clear();
    if (!process.env.HOLDFAST_KEEP_BROKER_DIRS) {
      for (const dir of tempDirs) {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
    }
  });
}

function findExecutable(name: string, candidates: string[]): string | undefined {
  for (const c of candidates) if (existsSync(c)) return c;
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) {
    if (d && existsSync(path.join(d, name))) return path.join(d, name);
  }
  return undefined;
}

function missingTool(what: string): Error {
  return new Error(
    `${what} not found: the tests need Debian's mosquitto package. ` +
      `Run the tests with \`bash scripts/test.sh\`, which installs it (apt-get install mosquitto).`,
  );
}

function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------

class MosquittoBroker implements Broker {
  port: number;
  readonly dir: string;
  private readonly opts: BrokerOptions;
  private readonly autoPort: boolean;
  private child: ChildProcess | null = null;
  private exited: Promise<void> | null = null;
  private output = '';
  private startedOnce = false;

  constructor(dir: string, port: number, opts: BrokerOptions) {
    this.dir = dir;
    this.port = port;
    this.opts = opts;
    this.autoPort = opts.port === undefined;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get confPath(): string {
    return path.join(this.dir, 'mosquitto.conf');
  }

  get logPath(): string {
    return path.join(this.dir, 'mosquitto.log');
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  writeConfig(): void {
    const o = this.opts;
    const lines = [
      `# generated by test/helpers/mosquitto.ts`,
      `listener ${this.port} 127.0.0.1`,
      `log_dest file ${this.logPath}`,
      ...(o.logTypes ?? ['all']).map((t) => `log_type ${t}`),
      `log_timestamp true`,
      `connection_messages true`,
      // 0 = no limit: queue everything for offline persistent sessions.
      `max_queued_messages 0`,
      // 0 = no limit on in-flight QoS 1/2 messages per client.
      `max_inflight_messages 0`,
    ];
    // Started as root, mosquitto 2 drops privileges to user "mosquitto" (which
    // could not write to our 0700 temp dir) unless told to stay root.
    if (typeof process.getuid === 'function' && process.getuid() === 0) lines.push('user root');
    if (o.users && Object.keys(o.users).length > 0) {
      lines.push('allow_anonymous false', `password_file ${path.join(this.dir, 'passwd')}`);
    } else {
      lines.push('allow_anonymous true');
    }
    if (o.persistence) {
      lines.push('persistence true', `persistence_location ${this.dir}${path.sep}`, 'persistence_file mosquitto.db');
    } else {
      lines.push('persistence false');
    }
    if (o.maxPacketSize !== undefined) lines.push(`max_packet_size ${o.maxPacketSize}`);
    lines.push(...(o.extraConf ?? []));
    writeFileSync(this.confPath, lines.join('\n') + '\n');
  }

  writePasswordFile(): void {
    const users = this.opts.users;
    if (!users || Object.keys(users).length === 0) return;
    const tool = findExecutable('mosquitto_passwd', ['/usr/bin/mosquitto_passwd']);
    if (!tool) throw missingTool('mosquitto_passwd');
    const file = path.join(this.dir, 'passwd');
    let first = true;
    for (const [user, password] of Object.entries(users)) {
      const args = first ? ['-c', '-b', file, user, password] : ['-b', file, user, password];
      const r = spawnSync(tool, args, { encoding: 'utf8' });
      if (r.error || r.status !== 0) {
        throw new Error(
          `mosquitto_passwd failed for user ${user}: ${r.error?.message ?? `exit ${r.status}`} ${r.stderr ?? ''}`,
        );
      }
      first = false;
    }
    // Newer mosquitto 2.x versions complain about group/world readable password files.
    chmodSync(file, 0o600);
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  connectCount(): number {
    const m = this.log().match(/: Sending CONNACK to /g);
    return m ? m.length : 0;
  }

  private describeFailure(msg: string): Error {
    return new Error(
      `${msg} (mosquitto on 127.0.0.1:${this.port}, dir ${this.dir})\n` +
        `--- mosquitto stdout/stderr ---\n${tail(this.output)}\n` +
        `--- ${this.logPath} (tail) ---\n${tail(this.log())}`,
    );
  }

  private spawnOnce(): { child: ChildProcess; exited: Promise<void> } {
    if (!existsSync(MOSQUITTO_BIN)) throw missingTool(MOSQUITTO_BIN);
    installExitHook();
    const useSetpriv = process.platform === 'linux' && existsSync(SETPRIV_BIN);
    const cmd = useSetpriv ? SETPRIV_BIN : MOSQUITTO_BIN;
    const args = useSetpriv
      ? ['--pdeathsig', 'SIGKILL', '--', MOSQUITTO_BIN, '-c', this.confPath]
      : ['-c', this.confPath];
    const child = spawn(cmd, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (b: Buffer) => {
      this.output += b.toString('utf8');
      if (this.output.length > 64 * 1024) this.output = this.output.slice(-32 * 1024);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    liveChildren.add(child);
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        liveChildren.delete(child);
        resolve();
      });
      child.once('error', (err) => {
        this.output += `\nspawn error: ${err.message}\n`;
        liveChildren.delete(child);
        resolve();
      });
    });
    return { child, exited };
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`broker on port ${this.port} is already running`);
    for (let attempt = 1; ; attempt++) {
      this.output = '';
      const logOffset = this.log().length;
      const { child, exited } = this.spawnOnce();
      this.child = child;
      this.exited = exited;
      let hasExited = false;
      void exited.then(() => {
        hasExited = true;
      });
      const deadline = Date.now() + START_TIMEOUT_MS;
      // Ready = this run logged "mosquitto version X running" (written after
      // all listeners are bound; mosquitto 2 line-buffers its log file) and
      // the port accepts connections. Checking the log too means a port held
      // by some other process is not mistaken for our broker.
      let up = false;
      let portSeenAt = 0;
      while (!hasExited && Date.now() < deadline) {
        const saysRunning = / running\s*$/m.test(this.log().slice(logOffset));
        if (await portOpen(this.port)) {
          portSeenAt ||= Date.now();
          // Fallback for builds that buffer their log: port open and the
          // process still alive 2 s later.
          if (saysRunning || Date.now() - portSeenAt >= 2000) {
            up = !hasExited;
            break;
          }
        }
        await sleep(25);
      }
      if (up) {
        this.startedOnce = true;
        return;
      }
      if (!hasExited) {
        child.kill('SIGKILL');
        await exited;
        throw this.describeFailure(`mosquitto did not accept connections within ${START_TIMEOUT_MS} ms`);
      }
      // Exited during startup. If our auto-chosen port was grabbed by
      // someone else before mosquitto bound it, pick another one and retry.
      const why = this.output + tail(this.log(), 10);
      if (this.autoPort && !this.startedOnce && attempt < 5 && /address already in use/i.test(why)) {
        this.port = await freePort();
        this.writeConfig();
        continue;
      }
      throw this.describeFailure(
        `mosquitto exited during startup (code ${child.exitCode}, signal ${child.signalCode})`,
      );
    }
  }

  private async terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited) return;
    if (this.running) {
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        child.kill('SIGKILL');
        await exited;
      }
    } else {
      await exited;
    }
    this.child = null;
    this.exited = null;
  }

  stop(): Promise<void> {
    return this.terminate('SIGTERM');
  }

  kill(): Promise<void> {
    return this.terminate('SIGKILL');
  }

  pause(): void {
    if (this.child && this.running) this.child.kill('SIGSTOP');
  }

  resume(): void {
    if (this.child && this.running) this.child.kill('SIGCONT');
  }
}

export async function startBroker(opts: BrokerOptions = {}): Promise<Broker> {
  if (!existsSync(MOSQUITTO_BIN)) throw missingTool(MOSQUITTO_BIN);
  installExitHook();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'holdfast-mosquitto-'));
  tempDirs.add(dir);
  const port = opts.port ?? (await freePort());
  const broker = new MosquittoBroker(dir, port, opts);
  broker.writePasswordFile();
  broker.writeConfig();
  await broker.start();
  return broker;
}
