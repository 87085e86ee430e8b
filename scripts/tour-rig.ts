/**
 * The processes of the tour (scripts/tour.ts): a private Mosquitto, the Modbus TCP simulator, the
 * agent, and a subscriber that records what the broker hands out. Loopback only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Received } from './tour-verdict.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
  });
}

export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`tour: gave up after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

/** A child process whose output goes to a file; killed when the tour exits, however it exits. */
export class Proc {
  child: ChildProcess | null = null;
  private static all = new Set<Proc>();
  static killAll(): void {
    for (const p of Proc.all) p.child?.kill('SIGKILL');
  }
  constructor(readonly name: string, private readonly cmd: string, private readonly args: string[],
    private readonly outFile: string, private readonly env: NodeJS.ProcessEnv = process.env) {}

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    const fd = openSync(this.outFile, 'a');
    this.child = spawn(this.cmd, this.args, { stdio: ['ignore', fd, fd], env: this.env });
    closeSync(fd);
    Proc.all.add(this);
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<number | string | null> {
    const c = this.child;
    if (!c || !this.running) return c?.exitCode ?? null;
    const exited = new Promise<number | string | null>((r) => c.once('exit', (code, sig) => r(code ?? sig)));
    c.kill(signal);
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    const how = await exited;
    clearTimeout(t);
    Proc.all.delete(this);
    return how;
  }
}

/** A private broker with persistence, so that the recorder's session outlives a restart. */
export class Broker {
  readonly proc: Proc;
  constructor(readonly dir: string, readonly port: number) {
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      'max_queued_messages 0',
      `log_dest file ${join(dir, 'mosquitto.log')}`,
      // As root, mosquitto would drop to user "mosquitto", who cannot write this folder.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
    ].join('\n') + '\n');
    this.proc = new Proc('mosquitto', '/usr/sbin/mosquitto', ['-c', conf], join(dir, 'mosquitto.out'));
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc.start();
    await waitUntil(() => portOpen(this.port), 10_000, `mosquitto on port ${this.port}`);
  }

  stop(): Promise<unknown> {
    return this.proc.stop('SIGTERM');
  }
}

/** A persistent QoS 1 subscriber on the gateway's topics: every telemetry message, with its arrival. */
export class Recorder {
  readonly messages: Received[] = [];
  readonly statuses: { at: number; state: string }[] = [];
  private client: mqtt.MqttClient | null = null;
  connected = false;

  constructor(private readonly url: string, private readonly prefix: string, private readonly t0: number) {}

  start(): Promise<void> {
    const c = mqtt.connect(this.url, {
      clientId: 'holdfast-tour-recorder',
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 500,
    });
    this.client = c;
    c.on('connect', (ack) => {
      this.connected = true;
      if (!ack.sessionPresent) c.subscribe(`${this.prefix}/#`, { qos: 1 });
    });
    c.on('close', () => (this.connected = false));
    c.on('error', () => {});
    c.on('message', (topic, payload) => this.take(topic, payload));
    return waitUntil(() => this.connected, 10_000, 'the recorder to connect');
  }

  private take(topic: string, payload: Buffer): void {
    const at = Date.now() - this.t0;
    if (topic.endsWith('/status')) {
      try {
        this.statuses.push({ at, state: String((JSON.parse(payload.toString()) as { state?: unknown }).state) });
      } catch { /* not ours */ }
      return;
    }
    if (!topic.endsWith('/telemetry')) return;
    const m = JSON.parse(payload.toString()) as {
      key: string; part?: number; parts?: number; historical: boolean; device: string;
      readings: { device?: string; point: string; ts: number }[];
    };
    this.messages.push({
      key: m.key, part: m.part ?? 1, parts: m.parts ?? 1, historical: m.historical, at,
      readings: m.readings.map((r) => ({ device: r.device ?? m.device, point: r.point, ts: r.ts })),
    });
  }

  close(): Promise<void> {
    return new Promise((r) => (this.client ? this.client.end(true, {}, () => r()) : r()));
  }
}

process.on('exit', () => Proc.killAll());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    Proc.killAll();
    process.exit(130);
  });
}
