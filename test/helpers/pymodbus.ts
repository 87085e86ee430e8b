/**
 * Test harness: one Modbus unit served by Debian's python3-pymodbus (another project's server,
 * installed by `scripts/system-deps.sh test`), over TCP on a free loopback port or over RTU on a
 * serial device node (one end of a socat pty pair, test/helpers/socat.ts). The unit's registers
 * are in test/helpers/pymodbus_unit.py; every request the server answers is logged with the
 * connection it came on, so a test can see which TCP connection carried which reads.
 *
 *   const unit = await pymodbusUnit({ tcp: true });      // unit.port
 *   const unit = await pymodbusUnit({ serial: pty.a });
 *   unit.requests()   // [{ peer, unit, fn, address, count }]
 *   await unit.close();
 *
 * The server never outlives the test process: killed on close() and on process exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from './mosquitto.js';
import { ROOT } from './agent.js';

export const PYTHON_BIN = '/usr/bin/python3';
const SCRIPT = join(ROOT, 'test/helpers/pymodbus_unit.py');

export interface PymodbusRequest {
  /** The client's TCP port (one per connection), or 'serial'. */
  peer: string;
  unit: number;
  fn: number;
  address: number;
  count: number;
}

export interface PymodbusUnit {
  /** TCP port (tcp mode). */
  port?: number;
  /** Every request answered so far, in order. */
  requests(): PymodbusRequest[];
  /** TCP connections accepted so far (their client ports). */
  connections(): string[];
  /** The server's output so far (for failure messages). */
  output(): string;
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

export async function pymodbusUnit(where: { tcp: true } | { serial: string }): Promise<PymodbusUnit> {
  if (!existsSync(PYTHON_BIN)) throw new Error(`${PYTHON_BIN} not found: run \`bash scripts/system-deps.sh test\` (python3-pymodbus)`);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const port = 'tcp' in where ? await freePort() : undefined;
  const args = port !== undefined ? ['tcp', String(port)] : ['rtu', (where as { serial: string }).serial];
  const py = spawn(PYTHON_BIN, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(py);
  let out = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  py.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<void>((res) => py.once('exit', () => res()));
  let gone = false;
  void exited.then(() => {
    gone = true;
    live.delete(py);
  });
  const close = async () => {
    if (!gone) {
      py.kill('SIGKILL');
      await exited;
    }
  };
  try {
    await waitFor(() => gone || /^READY$/m.test(out), 20_000, 'pymodbus server');
    if (gone) throw new Error('the pymodbus server exited during startup');
  } catch (e) {
    await close();
    throw new Error(`${(e as Error).message}\n--- pymodbus output ---\n${out}`);
  }
  const lines = (prefix: string) => out.split('\n').filter((l) => l.startsWith(prefix));
  return {
    port,
    requests: () => lines('REQ ').map((l) => {
      const [, peer, ...kv] = l.split(' ');
      const f = Object.fromEntries(kv.map((x) => x.split('=')));
      return { peer, unit: Number(f.unit), fn: Number(f.fn), address: Number(f.addr), count: Number(f.count) };
    }),
    connections: () => lines('CONN ').map((l) => l.slice(5)),
    output: () => out,
    close,
  };
}
