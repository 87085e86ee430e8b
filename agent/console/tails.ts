/**
 * What `readings tail` and `log tail` show. Readings: the last few of each device, kept in
 * memory as they are acquired (the stored batches are compressed and encrypted: not worth
 * opening for a look). The log: the end of the agent's pino file, read backwards in blocks so a
 * large log costs no more than its tail, each JSON line made short for a 72-column terminal.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Reading } from '../reading.js';

const PER_DEVICE = 20;
const MAX_DEVICES = 256;

export class RecentReadings {
  private readonly by = new Map<string, Reading[]>();

  add(device: string, readings: readonly Reading[]): void {
    let ring = this.by.get(device);
    if (!ring) {
      if (this.by.size >= MAX_DEVICES) return;
      ring = [];
      this.by.set(device, ring);
    }
    ring.push(...readings.slice(-PER_DEVICE));
    if (ring.length > PER_DEVICE) ring.splice(0, ring.length - PER_DEVICE);
  }

  devices(): string[] {
    return [...this.by.keys()].sort();
  }

  /** The newest `n` readings of one device, or of all, oldest first. */
  tail(device: string | undefined, n: number): Reading[] {
    const all = device === undefined ? [...this.by.values()].flat() : (this.by.get(device) ?? []);
    return [...all].sort((a, b) => a.ts - b.ts).slice(-n);
  }
}

/** The last `n` lines of a file (at most `maxBytes` of it are read). */
export function tailLines(file: string, n: number, maxBytes = 1 << 20): string[] {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let pos = size;
    let text = '';
    while (pos > 0 && size - pos < maxBytes && text.split('\n').length <= n + 1) {
      const len = Math.min(64 * 1024, pos);
      pos -= len;
      const b = Buffer.alloc(len);
      readSync(fd, b, 0, len, pos);
      text = b.toString('utf8') + text;
    }
    return text.split('\n').filter((l) => l !== '').slice(-n);
  } finally {
    closeSync(fd);
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino line as "hh:mm:ss LEVEL msg code=..", or the raw text when it is not JSON. */
export function shortLog(line: string): string {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.replace(/[^\x20-\x7e]/g, '?');
  }
  // pino stamps epoch ms by default, an ISO string with the agent's timestamp option.
  const at = typeof j.time === 'number' || typeof j.time === 'string' ? new Date(j.time) : null;
  const t = at && !Number.isNaN(at.getTime()) ? at.toTimeString().slice(0, 8) : '--:--:--';
  const code = typeof j.code === 'string' ? ` ${j.code}` : '';
  const msg = String(j.msg ?? '').replace(/[^\x20-\x7e]/g, '?');
  return `${t} ${LEVELS[j.level as number] ?? '?'}${code} ${msg}`;
}
