/**
 * One console session over any duplex stream (a serial port or a Unix socket connection: the
 * same code for both). Login (the factory password forces a change before anything else;
 * lockout from agent/policy/lockout.ts, persisted by auth.ts), then commands until `exit` or the
 * idle logout. Every command, login and refusal is an audit line in the agent's log (user,
 * channel, what; pino stamps when), never a password. On a serial line the session starts over
 * at the login prompt after a logout; a socket connection is closed.
 */
import type { Duplex } from 'node:stream';
import { afterFailure, afterSuccess, lockedForS } from '../policy/lockout.js';
import { ConsoleAuth } from './auth.js';
import { CONSOLE_COMMANDS, parseCommand, type CommandContext, type ConsoleDeps } from './commands.js';
import { LineEditor } from './line.js';
import { PacedOutput } from './output.js';

export const CONSOLE_USER = 'technician';

class Logout extends Error {}

export interface SessionOptions {
  /** 'serial:/dev/ttyS0' or 'socket'. */
  channel: string;
  /** Serial line speed (output paced to it); null for a socket. */
  baud: number | null;
  /** Start over at the login prompt after a logout (serial) instead of closing (socket). */
  persistent: boolean;
}

export class ConsoleSession {
  readonly out: PacedOutput;
  private readonly editor = new LineEditor();
  private readonly lines: string[] = [];
  private waiting: { resolve: (s: string) => void; reject: (e: Error) => void } | null = null;
  private idle: NodeJS.Timeout | null = null;
  private closed = false;
  private loggedIn = false;
  readonly done: Promise<void>;

  constructor(
    private readonly stream: Duplex,
    private readonly deps: ConsoleDeps,
    private readonly auth: ConsoleAuth,
    private readonly o: SessionOptions,
  ) {
    this.out = new PacedOutput(stream, o.baud);
    stream.on('data', (d: Buffer) => this.onData(d));
    stream.on('close', () => this.close());
    stream.on('error', () => this.close());
    this.done = this.run();
  }

  private audit(what: string, extra: Record<string, unknown> = {}): void {
    this.deps.log.info({ audit: 'console', user: CONSOLE_USER, channel: this.o.channel, what, ...extra }, `console: ${what}`);
  }

  private onData(d: Buffer): void {
    this.touch();
    const r = this.editor.feed(d);
    this.out.raw(r.echo);
    for (const e of r.events) {
      if (e.type === 'cancel') this.lines.push('\x03');
      else if (e.type === 'refused') this.lines.push(`\x00${e.reason}`);
      else if (e.ignored > 0) this.lines.push(`\x00line refused: ${e.ignored} control or non-ASCII byte(s) in it, nothing done`);
      else this.lines.push(e.text);
    }
    this.deliver();
  }

  private deliver(): void {
    if (!this.waiting || this.lines.length === 0) return;
    const w = this.waiting;
    this.waiting = null;
    w.resolve(this.lines.shift()!);
  }

  /** Idle logout: while logged in, `idleLogoutS` without a byte ends the session. */
  private touch(): void {
    if (this.idle) clearTimeout(this.idle);
    // A serial line waiting at the login prompt stays there; a socket nobody types on is closed.
    this.idle = setTimeout(() => {
      if (this.loggedIn || !this.o.persistent) this.fail(new Logout('idle'));
    }, this.deps.cfg.console.idleLogoutS * 1000);
    this.idle.unref();
  }

  private fail(e: Error): void {
    const w = this.waiting;
    this.waiting = null;
    w?.reject(e);
  }

  /** The next line, after `prompt`; a refused line is answered with its reason and asked again. */
  private async ask(prompt: string, echo = true): Promise<string> {
    for (;;) {
      this.editor.echo = echo;
      this.out.raw(prompt);
      const line = await new Promise<string>((resolve, reject) => {
        if (this.closed) return reject(new Logout('closed'));
        this.waiting = { resolve, reject };
        this.deliver();
      });
      this.editor.echo = true;
      if (line.startsWith('\x00')) {
        this.out.lines(line.slice(1));
        this.audit('refused input', { reason: line.slice(1) });
        continue;
      }
      return line;
    }
  }

  private async run(): Promise<void> {
    try {
      do {
        this.touch();
        try {
          await this.login();
          await this.shell();
        } catch (e) {
          if (!(e instanceof Logout)) throw e;
          if (e.message === 'idle' && !this.closed && this.loggedIn) {
            this.out.lines('', `logged out: idle for ${this.deps.cfg.console.idleLogoutS} s`);
            this.audit('idle logout');
          }
        }
        this.loggedIn = false;
      } while (this.o.persistent && !this.closed);
    } catch (e) {
      this.deps.log.error({ err: e, channel: this.o.channel }, 'console session failed');
    } finally {
      if (this.idle) clearTimeout(this.idle);
      if (!this.o.persistent) {
        await this.out.flushed();
        this.stream.end();
      }
    }
  }

  private async login(): Promise<void> {
    this.out.lines('', `holdfast ${this.deps.cfg.gatewayId} console (${this.o.channel}). Type the password.`);
    for (;;) {
      const pw = await this.ask('Password: ', false);
      if (pw === '\x03') continue;
      const now = this.deps.now();
      const wait = lockedForS(this.auth.lockout, now);
      if (wait > 0) {
        this.out.lines(`login locked for ${wait} s more (${this.auth.lockout.failures} wrong passwords); password not checked`);
        this.audit('login refused: locked', { waitS: wait });
        continue;
      }
      if (await this.auth.verify(pw)) {
        this.auth.setLockout(afterSuccess());
        this.audit('login');
        break;
      }
      const s = afterFailure(this.auth.lockout, now, this.deps.cfg.console.lockout);
      this.auth.setLockout(s);
      this.audit('login failed', { failures: s.failures });
      const locked = lockedForS(s, now);
      this.out.lines(locked > 0 ? `wrong password; login locked for ${locked} s` : 'wrong password');
    }
    if (this.auth.mustChange) {
      this.out.lines('This is the factory password: choose a new one before anything else.');
      while (this.auth.mustChange) if (!(await this.newPassword())) throw new Logout('cancelled');
    }
    this.loggedIn = true;
    this.out.lines(`logged in. Type help for the commands.`);
  }

  /** Asks a new password twice; false when cancelled (Ctrl-C). */
  private async newPassword(): Promise<boolean> {
    for (;;) {
      const a = await this.ask('New password: ', false);
      if (a === '\x03') return false;
      const weak = ConsoleAuth.weak(a);
      if (weak) {
        this.out.lines(`refused: ${weak}`);
        continue;
      }
      const b = await this.ask('Again: ', false);
      if (b === '\x03') return false;
      if (a !== b) {
        this.out.lines('refused: the two differ');
        continue;
      }
      await this.auth.setPassword(a);
      this.audit('password changed');
      this.out.lines('password changed');
      return true;
    }
  }

  private async shell(): Promise<void> {
    const ctx: CommandContext = {
      out: this.out, deps: this.deps, color: false,
      setColor: (on) => {
        ctx.color = on;
      },
      passwd: async () => {
        const old = await this.ask('Current password: ', false);
        if (old === '\x03') return;
        if (!(await this.auth.verify(old))) {
          this.audit('passwd refused: wrong current password');
          return this.out.lines('refused: wrong current password');
        }
        await this.newPassword();
      },
    };
    for (;;) {
      const line = await this.ask(`${this.deps.cfg.gatewayId}> `);
      if (line === '\x03' || line.trim() === '') continue;
      const p = parseCommand(line);
      // The command line is logged as typed: passwords are only ever typed at prompts, never in it.
      this.audit(p ? p.cmd.name : 'unknown command', { line: line.slice(0, 72) });
      if (!p) {
        this.out.lines(`unknown command "${line.trim().split(/\s+/)[0]}": type help (${CONSOLE_COMMANDS.length} commands)`);
        continue;
      }
      if (p.cmd.name === 'exit') {
        this.out.lines('logged out');
        this.audit('logout');
        throw new Logout('exit');
      }
      try {
        await p.cmd.run(ctx, p.args);
      } catch (e) {
        if (e instanceof Logout) throw e;
        this.out.lines(`failed: ${(e as Error).message}`);
        this.deps.log.warn({ err: e, channel: this.o.channel }, `console command ${p.cmd.name} failed`);
      }
      await this.out.flushed();
    }
  }

  /** Ends the session (the stream closed, or the agent stops). */
  close(message?: string): void {
    if (this.closed) return;
    if (message) this.out.lines('', message);
    this.closed = true;
    if (this.idle) clearTimeout(this.idle);
    this.fail(new Logout('closed'));
  }

  get active(): boolean {
    return this.loggedIn;
  }
}
