/**
 * A local Mosquitto for the fleet bench: its own config in a temp folder, a fixed port across
 * stop() and start() (the outage), no persistence (every gateway connects with a clean session).
 * Unlimited queues, so a slow subscriber sees every message instead of mosquitto dropping some.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const MOSQUITTO = process.env.HOLDFAST_MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port free on 127.0.0.1 now. */
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

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class FleetBroker {
  private child: ChildProcess | null = null;
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'holdfast-fleet-broker-'));

  private constructor(readonly port: number) {
    const lines = [
      `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_queued_messages 0',
      'max_inflight_messages 0', 'max_connections -1', 'log_dest none',
    ];
    if (process.getuid?.() === 0) lines.push('user root');
    writeFileSync(path.join(this.dir, 'mosquitto.conf'), lines.join('\n') + '\n');
  }

  static async create(): Promise<FleetBroker> {
    const b = new FleetBroker(await freePort());
    await b.start();
    return b;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(MOSQUITTO, ['-c', path.join(this.dir, 'mosquitto.conf')], { stdio: 'ignore' });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    for (let i = 0; i < 400; i++) {
      if (await accepts(this.port)) return;
      if (!this.child) break;
      await sleep(25);
    }
    throw new Error(`mosquitto did not start on port ${this.port}`);
  }

  /** SIGTERM and wait: the outage begins (every connection is closed by the broker). */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    await Promise.race([gone, sleep(5000).then(() => c.kill('SIGKILL'))]);
    await gone;
    this.child = null;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
