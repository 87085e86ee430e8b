/**
 * Test harness: a pair of connected pseudo-terminals from a REAL socat (Debian's `socat`
 * package, installed by scripts/test.sh), so RTU code runs against a serial device node
 * with its real termios and open/close behaviour, without hardware:
 *
 *   const pty = await ptyPair();
 *   // the simulator opens pty.a, the master (or mbpoll) opens pty.b
 *   await pty.close();
 *
 * socat creates the ptys and the symlinks <tmp>/ttyA and <tmp>/ttyB. Ready means both links
 * exist AND socat logged "starting data transfer loop" (with -d -d): before that, bytes
 * written to one end may not reach the other. socat stays up when a client closes its end,
 * so one pair serves several opens (e.g. one mbpoll run after another).
 *
 * A pty has no baud rate: bytes cross with no line timing whatever the termios say. Timing
 * tests use the RTU simulator's line-rate emulation (drivers/modbus/simulator/rtu.ts). They do not
 * cross for free: each way goes through socat's poll loop and a wake-up of each end, a
 * fraction of a millisecond that grows with the machine's load;
 * `npm run bench` measures the round trip (scripts/bench/pty.ts).
 *
 * socat never outlives the test process: killed on close(), on process exit, and (when
 * util-linux `setpriv` is available) by the kernel if the test process dies abruptly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './mosquitto.js';

export const SOCAT_BIN = process.env.HOLDFAST_SOCAT_BIN ?? '/usr/bin/socat';
const SETPRIV_BIN = '/usr/bin/setpriv';
const START_TIMEOUT_MS = 10_000;

export interface PtyPair {
  /** Path of one end (a symlink to /dev/pts/N). */
  a: string;
  /** Path of the other end. */
  b: string;
  /** socat's stderr so far (for failure messages). */
  log(): string;
  /** Kills socat and removes the links. Idempotent. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

export async function ptyPair(): Promise<PtyPair> {
  if (!existsSync(SOCAT_BIN)) {
    throw new Error(`${SOCAT_BIN} not found: the RTU tests need Debian's socat package. Run the tests with \`bash scripts/test.sh\`, which installs it.`);
  }
  installExitHook();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'holdfast-pty-'));
  dirs.add(dir);
  const a = path.join(dir, 'ttyA');
  const b = path.join(dir, 'ttyB');
  const socatArgs = ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`];
  const useSetpriv = process.platform === 'linux' && existsSync(SETPRIV_BIN);
  const child = useSetpriv
    ? spawn(SETPRIV_BIN, ['--pdeathsig', 'SIGKILL', '--', SOCAT_BIN, ...socatArgs], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(SOCAT_BIN, socatArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let output = '';
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString('utf8');
    if (output.length > 64 * 1024) output = output.slice(-32 * 1024);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    const done = () => {
      exited = true;
      live.delete(child);
      resolve();
    };
    child.once('exit', done);
    child.once('error', (e) => {
      output += `\nspawn error: ${e.message}\n`;
      done();
    });
  });

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };

  try {
    await waitFor(() => exited || (existsSync(a) && existsSync(b) && /starting data transfer loop/.test(output)), START_TIMEOUT_MS, 'socat pty pair');
    if (exited) throw new Error('socat exited during startup');
  } catch (e) {
    await close();
    throw new Error(`${(e as Error).message}\n--- socat stderr ---\n${output}`);
  }
  return { a, b, log: () => output, close };
}
