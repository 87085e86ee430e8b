/**
 * `holdfast console`: attaches this terminal to the running agent's console over its Unix
 * socket (console.socket, default <dataDir>/console.sock). The terminal is put in raw mode so
 * that keystrokes reach the console's own line editing, as on the serial port; the agent echoes.
 * Ends when the console closes the connection (exit, idle logout) or on Ctrl-] .
 */
import { connect } from 'node:net';
import { HoldfastError } from '../errors.js';
import { consoleSocketPath } from '../console/server.js';
import type { Command } from './commands.js';
import { CONFIG_HELP, configFrom, configOpt, noPositionals } from './args.js';

/** Ctrl-]: telnet's escape, leaves the console from a stuck session. */
const ESCAPE = 0x1d;

export const consoleCommand: Command = {
  name: 'console',
  usage: 'console --config FILE',
  summary: "attach to the running agent's technician console (its local Unix socket)",
  help: `${CONFIG_HELP}\n\nThe same console as on the serial port (docs/console.md). Ctrl-] leaves it.`,
  options: configOpt,
  async run(v, p) {
    noPositionals(p);
    const path = consoleSocketPath(configFrom(v));
    const sock = connect(path);
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', (e: NodeJS.ErrnoException) =>
        rej(new HoldfastError('CONSOLE_UNAVAILABLE', `CONSOLE_UNAVAILABLE: cannot attach to ${path} (${e.code ?? e.message}): is the agent running, with console.enabled, and are you its user?`)));
    });
    const stdin = process.stdin;
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.on('data', (d: Buffer) => {
      if (d.includes(ESCAPE)) return sock.end();
      sock.write(d);
    });
    sock.pipe(process.stdout);
    await new Promise<void>((res) => sock.once('close', () => res()));
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
    return 0;
  },
};
