/**
 * A scripted serial terminal for console tests: opens one end of a socat pty pair at 9600 8N1
 * (the agent's console has the other) and types the way a technician does, a key at a time with
 * CR at the end of a line, and waits for what the console prints.
 */
import { serialPort, type SerialStream } from '../../drivers/serial/port.js';
import { waitFor } from './mosquitto.js';

export interface Terminal {
  /** Everything received so far. */
  text(): string;
  /** Types `s` key by key, then CR. */
  line(s: string): Promise<void>;
  /** Writes raw bytes at once. */
  raw(b: Buffer | string): Promise<void>;
  /** Waits until the output received after `from` matches; returns that output. */
  expect(re: RegExp, from: number, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function write(port: SerialStream, b: Buffer | string): Promise<void> {
  return new Promise((res, rej) => port.write(b, (e) => (e ? rej(e) : port.drain(() => res()))));
}

export async function openTerminal(path: string, baudRate = 9600): Promise<Terminal> {
  const port = serialPort({ path, baudRate, dataBits: 8, parity: 'none', stopBits: 1 });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  let out = '';
  port.on('data', (d: Buffer) => (out += d.toString('latin1')));
  return {
    text: () => out,
    async line(s) {
      for (const ch of s) {
        await write(port, ch);
        await sleep(1);
      }
      await write(port, '\r');
    },
    raw: (b) => write(port, b),
    async expect(re, from, timeoutMs = 30_000) {
      try {
        await waitFor(() => re.test(out.slice(from)), timeoutMs, String(re));
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- terminal output since ${from} ---\n${out.slice(from).slice(-3000)}`);
      }
      return out.slice(from);
    },
    close: () => new Promise<void>((res) => (port.isOpen ? port.close(() => res()) : res())),
  };
}
