/**
 * The floor under the RTU figures (scripts/bench/field.ts): what one round trip over a socat pty
 * pair costs with nothing of Modbus in it, through the same serial I/O path as the master and the
 * simulator (drivers/serial/port.ts). A pty has no baud rate, but every byte still crosses a
 * write(2), socat's poll loop (on a socat pair), and a poll + read(2) on the far end, in each
 * direction. An RTU transaction over the pair crosses it twice (the request out, the answer's
 * last byte back), so the best any master can reach against a simulator that keeps the line's
 * timing exactly is line cycle + one round trip.
 *
 * echo(path) (in the simulator child process) answers every 8 bytes with 8 bytes at once;
 * roundTrips() (in the bench process) sends 8 bytes, waits for the 8 back, then keeps t3.5 of
 * silence before the next, as a master does: each end sits idle for about as long as in a
 * transaction (waking an idle process costs more than waking a busy one).
 */
import { performance } from 'node:perf_hooks';
import { serialPort, type SerialStream } from '../../drivers/serial/port.js';
import { waitUntil } from '../../drivers/modbus/wait.js';

const PING = 8;

async function openPort(path: string, baudRate: number, fd?: number): Promise<SerialStream> {
  const port = serialPort({ path, fd, baudRate, parity: 'none', dataBits: 8, stopBits: 1 });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  return port;
}

const closePort = (port: SerialStream) => new Promise<void>((r) => (port.isOpen ? port.close(() => r()) : r()));

/** The echo end (on `fd` when given, else `path` is opened): every PING bytes received go straight back. Returns its closer. */
export async function echo(path: string, baudRate: number, fd?: number): Promise<() => Promise<void>> {
  const port = await openPort(path, baudRate, fd);
  let held = 0;
  port.on('data', (d: Buffer) => {
    held += d.length;
    for (; held >= PING; held -= PING) port.write(Buffer.alloc(PING, 0xaa));
  });
  port.on('error', () => {});
  return () => closePort(port);
}

export interface RoundTrips {
  /** Round-trip times, ms. */
  ms: number[];
  lost: number;
}

/** Pings the echo end for `durationMs`, keeping `silenceMs` after each answer before the next. */
export async function roundTrips(path: string, baudRate: number, silenceMs: number, durationMs: number): Promise<RoundTrips> {
  const port = await openPort(path, baudRate);
  const ping = Buffer.alloc(PING, 0x55);
  let held = 0;
  let wake: ((at: number) => void) | null = null;
  port.on('data', (d: Buffer) => {
    const at = performance.now();
    held += d.length;
    if (held >= PING && wake) {
      held = 0;
      wake(at);
    }
  });
  const out: RoundTrips = { ms: [], lost: 0 };
  try {
    const t0 = performance.now();
    let last = t0;
    while (performance.now() - t0 < durationMs) {
      await waitUntil(last + silenceMs);
      held = 0;
      const sent = performance.now();
      const got = new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => ((wake = null), resolve(null)), 500);
        wake = (at) => ((wake = null), clearTimeout(timer), resolve(at));
      });
      port.write(ping);
      const at = await got;
      if (at === null) {
        out.lost++;
        last = performance.now();
        continue;
      }
      out.ms.push(at - sent);
      last = at;
    }
  } finally {
    await closePort(port);
  }
  return out;
}
