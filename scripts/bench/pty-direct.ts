/**
 * Pty pairs with no relay process between the two ends, for the RTU throughput figures
 * (scripts/bench/field.ts). A socat pair (test/helpers/socat.ts) is two ptys with socat copying
 * between their master ends: every byte wakes socat and then the reader, so a round trip costs
 * four process wake-ups. Here the process at the far end holds the pty's master end itself and
 * the master under test opens the slave (/dev/pts/N, a real tty with termios): two wake-ups a
 * round trip, as with a UART, whose driver hands bytes to the tty layer from its interrupt.
 *
 * Node cannot create a pty (that takes ioctls: unlockpt, ptsname), so python3's os.openpty()
 * makes them and then execs the far end's node process with the master descriptors inherited
 * (and the slave ones, kept open so that the master never reads a hang-up between two opens of
 * the slave). The descriptors reach that process in HOLDFAST_BENCH_PTYS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface DirectPty {
  /** The slave end: what the master under test opens. */
  path: string;
  /** The master end's descriptor, in the far end's process. */
  fd: number;
}

const PYTHON = '/usr/bin/python3';

const SCRIPT = `
import json, os, sys, tty
out = []
for _ in range(int(sys.argv[1])):
    m, s = os.openpty()
    tty.setraw(s)
    os.set_inheritable(m, True)
    os.set_inheritable(s, True)
    out.append({"path": os.ttyname(s), "fd": m})
print(json.dumps(out), flush=True)
os.execve(sys.argv[2], sys.argv[2:], dict(os.environ, HOLDFAST_BENCH_PTYS=json.dumps(out)))
`;

/** True when python3 is there to create the pairs (else the bench falls back to socat pairs). */
export const directPtysAvailable = (): boolean => process.platform === 'linux' && existsSync(PYTHON);

/**
 * Starts `node args...` as the far end of `n` pty pairs. Its stdout's first line is the pairs
 * (JSON, read by the caller with parsePtyLine); the process itself finds them with inheritedPtys().
 */
export function spawnOnPtys(n: number, args: string[]): ChildProcess {
  return spawn(PYTHON, ['-c', SCRIPT, String(n), process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The pairs announced on the first stdout line of spawnOnPtys' child. */
export function parsePtyLine(line: string): DirectPty[] {
  const v = JSON.parse(line) as unknown;
  if (!Array.isArray(v) || !v.every((p) => typeof p?.path === 'string' && Number.isInteger(p?.fd))) throw new Error(`not a pty list: ${line}`);
  return v as DirectPty[];
}

/** In the far end's process: the pairs it holds the master ends of ([] when not started so). */
export function inheritedPtys(): DirectPty[] {
  const v = process.env.HOLDFAST_BENCH_PTYS;
  return v ? parsePtyLine(v) : [];
}
