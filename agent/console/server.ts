/**
 * Serves the console (session.ts) on the serial port the config names (8N1 at console.baudRate;
 * one session that lives as long as the agent and returns to the login prompt after a logout)
 * and on a Unix socket in the data directory (mode 0600: only the agent's user, or root, may
 * attach; `holdfast console` does), one session per connection. The same session code for both.
 */
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { serialPort, type SerialStream } from '../../drivers/serial/port.js';
import type { ConsoleDeps } from './commands.js';
import { ConsoleAuth } from './auth.js';
import { ConsoleSession } from './session.js';

/** Connections at once on the socket: each holds a session; a console needs few. */
const MAX_SOCKET_SESSIONS = 4;

export function consoleSocketPath(cfg: ConsoleDeps['cfg']): string {
  return cfg.console.socket ?? join(cfg.dataDir, 'console.sock');
}

export class ConsoleServer {
  private server: Server | null = null;
  private port: SerialStream | null = null;
  private readonly sessions = new Set<ConsoleSession>();
  private readonly sockets = new Set<Socket>();
  private readonly auth: ConsoleAuth;

  constructor(private readonly deps: ConsoleDeps) {
    this.auth = new ConsoleAuth(deps.cfg.dataDir);
  }

  async start(): Promise<void> {
    const c = this.deps.cfg.console;
    if (!c.enabled) return;
    await this.listen(consoleSocketPath(this.deps.cfg));
    if (c.serialPort) await this.openSerial(c.serialPort, c.baudRate);
  }

  private async listen(path: string): Promise<void> {
    // A socket left by a killed agent: only a socket is removed, never another kind of file.
    if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
    const server = createServer((sock) => {
      if (this.sockets.size >= MAX_SOCKET_SESSIONS) {
        sock.end(`console busy: ${MAX_SOCKET_SESSIONS} sessions open\r\n`);
        return;
      }
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => sock.destroy());
      this.track(new ConsoleSession(sock, this.deps, this.auth, { channel: 'socket', baud: null, persistent: false }));
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(path, () => {
        server.off('error', rej);
        res();
      });
    });
    chmodSync(path, 0o600);
    this.server = server;
    this.deps.log.info({ socket: path }, 'console listening on its Unix socket (holdfast console)');
  }

  /** A port that cannot be opened is logged, not fatal: the agent's job is the data, not the console. */
  private async openSerial(path: string, baudRate: number): Promise<void> {
    const port = serialPort({ path, baudRate, dataBits: 8, parity: 'none', stopBits: 1 });
    const err = await new Promise<Error | null>((res) => port.open((e) => res(e ?? null)));
    if (err) {
      this.deps.log.error({ code: 'SERIAL_PORT_ERROR', port: path, err }, `console serial port not opened: ${err.message}`);
      return;
    }
    port.on('error', (e) => this.deps.log.warn({ code: 'SERIAL_PORT_ERROR', port: path, err: e }, 'console serial port error'));
    this.port = port;
    this.track(new ConsoleSession(port, this.deps, this.auth, { channel: `serial:${path}`, baud: baudRate, persistent: true }));
    this.deps.log.info({ port: path, baudRate }, 'console on the serial port');
  }

  private track(s: ConsoleSession): void {
    this.sessions.add(s);
    void s.done.finally(() => this.sessions.delete(s));
  }

  /** Says goodbye on every session, then closes the socket and the port. */
  async stop(): Promise<void> {
    for (const s of this.sessions) s.close('agent stopping: console closed');
    await Promise.all([...this.sessions].map((s) => Promise.race([s.out.flushed(), new Promise((r) => setTimeout(r, 500).unref())])));
    for (const s of this.sessions) s.out.close();
    for (const sock of this.sockets) sock.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((res) => server.close(() => res()));
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((res) => port.close(() => res()));
  }
}
