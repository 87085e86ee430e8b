/**
 * The console's pure parts: the verdict table (one line per fact, worst first, the number that
 * proves it), the lockout policy on an injected clock, the line discipline (backspace, overlong,
 * control characters, CRLF, seeded random bytes) and paced output that honours backpressure.
 */
import t from 'tap';
import { PassThrough, Writable } from 'node:stream';
import { verdicts, type VerdictFacts } from '../agent/status/verdicts.js';
import { afterFailure, afterSuccess, lockedForS, lockoutDelayS, NO_LOCKOUT } from '../agent/policy/lockout.js';
import { LineEditor, MAX_LINE } from '../agent/console/line.js';
import { PacedOutput, wrap } from '../agent/console/output.js';
import { configLines } from '../agent/console/config-show.js';
import { mulberry32 } from './helpers/rand.js';
import type { Config } from '../agent/config/types.js';

const base = (): VerdictFacts => ({
  store: { available: true, spoolFiles: 0 },
  space: { usedBytes: 10, budgetBytes: 100, bound: 'quota', full: false, policy: 'drop-oldest' },
  thermal: { tempC: 50, throttled: false },
  uplinks: [{ name: 'mqtt', connected: true, breaker: 'closed', downSince: null, code: null, pendingReadings: 0 }],
  faults: [],
});

t.test('verdicts: one row per condition, with its number', async (t) => {
  const at1203 = new Date(2026, 0, 1, 12, 3).getTime();
  const rows: [string, (f: VerdictFacts) => void, string][] = [
    ['all well', () => {}, 'OK'],
    ['store', (f) => (f.store = { available: false, spoolFiles: 3 }), 'STORE UNAVAILABLE, spooling (3 file(s) waiting)'],
    ['disk full', (f) => (f.space = { usedBytes: 93, budgetBytes: 100, bound: 'quota', full: true, policy: 'drop-oldest' }), 'DISK 93% of quota, dropping oldest'],
    ['disk high', (f) => (f.space!.usedBytes = 95), 'DISK 95% of quota, reclaiming delivered data'],
    ['wiring', (f) => f.faults.push({ scope: 'bus', bus: 'rs485-1', code: 'RS485_VOLTAGE_LOW', faultClass: 'physical', detail: { volts: 1.9, min: 2.5, max: 5 } }), 'WIRING FAULT bus rs485-1: 1.9 V (window 2.5-5.0 V)'],
    ['crc', (f) => f.faults.push({ scope: 'bus', bus: 'b', code: 'MODBUS_CRC', faultClass: 'physical', detail: { rate: 0.4 } }), 'WIRING FAULT bus b: 40% CRC/framing errors'],
    ['device', (f) => f.faults.push({ scope: 'device', bus: 'b', device: 'meter3', code: 'MODBUS_TIMEOUT', faultClass: 'device', detail: { timeouts: 12 } }), 'DEVICE meter3 not answering (MODBUS_TIMEOUT x12)'],
    ['uplink', (f) => Object.assign(f.uplinks[0], { connected: false, downSince: at1203, code: 'ECONNREFUSED', pendingReadings: 18240 }), 'UPLINK mqtt DOWN since 12:03 (ECONNREFUSED), 18,240 readings buffered'],
    ['breaker', (f) => (f.uplinks[0].breaker = 'open'), 'UPLINK mqtt breaker open, 0 readings buffered'],
    ['hot', (f) => (f.thermal = { tempC: 81.2, throttled: true }), 'HOT 81 C, drain throttled'],
  ];
  for (const [what, set, want] of rows) {
    const f = base();
    set(f);
    t.same(verdicts(f), [want], what);
  }
});

t.test('verdicts: worst first, whatever the order of the facts', async (t) => {
  const f = base();
  f.thermal = { tempC: 90, throttled: true };
  Object.assign(f.uplinks[0], { connected: false });
  f.faults.push({ scope: 'device', bus: 'b', device: 'd', code: 'MODBUS_TIMEOUT', faultClass: 'device', detail: { timeouts: 3 } });
  f.faults.push({ scope: 'bus', bus: 'b', code: 'RS485_VOLTAGE_HIGH', faultClass: 'physical', detail: { volts: 6.1, min: 2.5, max: 5 } });
  f.store.available = false;
  const kinds = verdicts(f).map((l) => l.split(' ')[0]);
  t.same(kinds, ['STORE', 'WIRING', 'DEVICE', 'UPLINK', 'HOT']);
});

t.test('lockout: 3 failures lock 30 s, doubling, capped; success clears; the clock is injected', async (t) => {
  const c = { failures: 3, firstS: 30, maxS: 100 };
  t.same([1, 2, 3, 4, 5, 6].map((n) => lockoutDelayS(n, c)), [0, 0, 30, 60, 100, 100]);
  let s = { ...NO_LOCKOUT };
  for (let i = 0; i < 3; i++) s = afterFailure(s, 1000, c);
  t.equal(lockedForS(s, 1000), 30, 'locked 30 s after the third');
  t.equal(lockedForS(s, 1000 + 29_500), 1, 'still locked just before');
  t.equal(lockedForS(s, 1000 + 30_000), 0, 'open after');
  s = afterFailure(s, 31_000, c);
  t.equal(lockedForS(s, 31_000), 60, 'the next failure doubles');
  t.same(afterSuccess(), NO_LOCKOUT);
});

const feed = (e: LineEditor, s: string | Buffer) => e.feed(Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1'));

t.test('line editor: backspace, DEL, CRLF, escape sequences, Ctrl-C', async (t) => {
  const e = new LineEditor();
  const r = feed(e, 'stx\x08a\x7fatus\r\n');
  t.same(r.events, [{ type: 'line', text: 'status', ignored: 0 }], 'BS and DEL erase; CRLF is one line end');
  t.ok(r.echo.includes('\b \b'), 'the erase is echoed');
  t.same(feed(e, 'he\x1b[Dlp\r').events, [{ type: 'line', text: 'help', ignored: 0 }], 'an arrow key is skipped');
  t.same(feed(e, 'purge\x03').events, [{ type: 'cancel' }], 'Ctrl-C abandons the line');
  e.echo = false;
  t.equal(feed(e, 'secret').echo, '', 'no echo while a password is typed');
});

t.test('line editor: overlong and control characters refused with a reason', async (t) => {
  const e = new LineEditor();
  const long = feed(e, `${'x'.repeat(MAX_LINE + 5)}\r`);
  t.match(long.events[0], { type: 'refused', reason: /too long/ });
  t.ok(long.echo.includes('\x07'), 'a bell at the first character too many');
  t.same(feed(e, 'a\x01b\x80\r').events, [{ type: 'line', text: 'ab', ignored: 2 }], 'counted, for the session to refuse');
});

t.test('line editor: seeded random bytes never throw, never make a line over the limit', async (t) => {
  const rand = mulberry32(7);
  const e = new LineEditor();
  let lines = 0;
  for (let i = 0; i < 200; i++) {
    const r = feed(e, Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256))));
    for (const ev of r.events) {
      if (ev.type !== 'line') continue;
      lines++;
      if (ev.text.length > MAX_LINE || [...ev.text].some((c) => c < ' ' || c > '~')) t.fail(`bad line ${JSON.stringify(ev.text)}`);
    }
  }
  t.ok(lines > 0, `${lines} lines came out of the noise, all printable and short`);
});

t.test('output: wrapped at 72 columns, CRLF, nothing lost under backpressure', async (t) => {
  t.ok(wrap('word '.repeat(40)).every((l) => l.length <= 72));
  let got = '';
  let calls = 0;
  // A sink that says "full" at every other write and drains later: the writer must wait.
  const sink = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _e, cb) {
      got += chunk.toString('latin1');
      calls++;
      setTimeout(cb, 1);
    },
  });
  const out = new PacedOutput(sink, null);
  const lines = Array.from({ length: 300 }, (_, i) => `line ${i} ${'-'.repeat(i % 60)}`);
  out.lines(...lines);
  await out.flushed();
  t.equal(got, lines.map((l) => `${l}\r\n`).join(''), 'every byte, in order');
  t.ok(calls > 10, 'in chunks');
  const p = new PassThrough();
  const paced = new PacedOutput(p, 9600);
  paced.raw('x'.repeat(200));
  t.ok(paced.pending > 0, 'at 9600 baud the rest waits for the line');
  paced.close();
});

t.test('config show: secrets never, file paths yes', async (t) => {
  const cfg = { uplinks: [{ url: 'mqtt://u:hunter2@h', password: 'x', passwordFile: '/etc/p' }] } as unknown as Config;
  const text = configLines(cfg).join('\n');
  t.notMatch(text, /hunter2|= "x"/);
  t.match(text, /passwordFile = "\/etc\/p"/);
  t.match(text, /password = \[redacted\]/);
});
