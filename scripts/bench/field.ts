/**
 * Field benchmark: the RTU master and the poll schedule, each figure beside the limit measured in
 * the same run. runFieldBench() returns rows and prints nothing (scripts/bench/bench.ts prints them);
 * run alone it prints the rows as a table:
 *
 *   node dist/scripts/bench/field.js
 *
 * 1. RTU transactions/s at 9600 and 115200 baud, 8N1 (10 bits a character), reading 10 holding
 *    registers of a counter device: our RtuMaster against the RTU simulator with line-rate
 *    emulation (emulateLineRate: the answer is paced at the baud, after the request's own line
 *    time and t3.5) over a pty pair, vs the line's theoretical maximum:
 *      (request 8 B + response 25 B) x 10 bit / baud  +  2 x t3.5 (frame.ts t35Ms, 10-bit chars)
 *    The simulator keeps the line's timing (the answer's last byte at its moment to within tens
 *    of microseconds, drivers/modbus/wait.ts), but the pty adds its own latency: every
 *    transaction crosses the pair twice. The pair is direct where python3 can make one (the
 *    simulator holds the pty's master end, the master opens /dev/pts/N: scripts/bench/pty-direct.ts),
 *    as a UART has no relay process in its path; else a socat pair (a relay: two more process
 *    wake-ups per round trip). Two more limits, measured in the same rounds:
 *    - the simulator alone, driven by a minimal raw client (write, collect 25 bytes, wait exactly
 *      t3.5 with a spin for the last millisecond, write again);
 *    - the floor of the pair (scripts/bench/pty.ts): an 8-byte echo round trip over a second
 *      pair with our serial I/O path at both ends and t3.5 of silence between pings, no Modbus in
 *      it; line cycle + its mean is the best any master and simulator can reach here.
 *    Both clients check every answer's CRC and that the device's read counter moved by exactly
 *    one. Master, raw client and echo alternate over rounds; the best round of each is kept.
 * 2. Poll jitter: 50 devices on 4 RTU buses (4 socat pairs, units 1..13, 1..13, 1..12, 1..12;
 *    odd units counter, even units meter; 115200 8N1, no line emulation), one real RtuMaster per
 *    bus, one DevicePoller per device (pollMs 1000, started staggered over the period as
 *    agent/acquisition/field.ts does), a sink that counts (and checks the counters are contiguous).
 *    DevicePoller.stats.lateMs (start of a poll vs its slot, Date.now() ms) p50/p99/max and
 *    skipped slots, vs Node's own setTimeout lateness measured the same way with 50 plain timers
 *    on the same grid: alone (the floor) and, for context, beside the pollers. The floor and the
 *    pollers alternate in windows of 3 periods (first 3 slots of each timer counted), so the
 *    load of a shared machine falls on both alike.
 *
 * The simulators run in a child process (this file with --sim), as `holdfast simulate` would:
 * the master's event loop holds only what the agent's would.
 *
 * Env: BENCH_FIELD_ROUND_MS (per throughput round, default 2500; 3 rounds each), BENCH_FIELD_JITTER_MS
 * (default 15000), BENCH_FIELD_ONLY=tx,jitter.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { serialPort } from '../../drivers/serial/port.js';
import type { Reading } from '../../agent/reading.js';
import { DevicePoller } from '../../agent/acquisition/poller.js';
import { lineMs, parseRtuResponse, registers, rtuRequest, rtuResponseLength, t35Ms, type ReadRequest } from '../../drivers/modbus/frame.js';
import { RtuMaster } from '../../drivers/modbus/rtu-master.js';
import type { DeviceMap, PointDef } from '../../drivers/modbus/types.js';
import { ptyPair, type PtyPair } from '../../test/helpers/socat.js';
import { echo, roundTrips, type RoundTrips } from './pty.js';
import { directPtysAvailable, inheritedPtys, parsePtyLine, spawnOnPtys, type DirectPty } from './pty-direct.js';
import { simulate, type Simulation } from '../../agent/cli/simulate.js';
import { runIfMain } from '../run-main.js';

export interface FieldRow {
  name: string;
  value: string;
  limit: string;
  ratio?: string;
  target?: string;
  verdict?: 'PASS' | 'FAIL' | `FAIL (${string})` | '-';
}

const here = path.dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const METER_MAP = path.resolve(here, '..', '..', '..', 'config', 'devices', 'generic-energy-meter.json');

const envInt = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : def;
};
const ROUND_MS = envInt('BENCH_FIELD_ROUND_MS', 2500);
const ROUNDS = 3;
const JITTER_MS = envInt('BENCH_FIELD_JITTER_MS', 15000);
const ONLY = new Set((process.env.BENCH_FIELD_ONLY ?? 'tx,jitter').split(',').map((s) => s.trim()));
const TARGET_TX = 0.9;
const BITS = 10; // 8N1: start + 8 data + stop
const TEN: ReadRequest = { unit: 1, fn: 3, address: 0, count: 10 };
const POLL_MS = 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmt1 = (n: number) => (Math.round(n * 10) / 10).toFixed(1);
const fmt2 = (n: number) => n.toFixed(2);
const pct = (n: number) => `${Math.round(n * 100)}%`;
const pct1 = (n: number) => `${(n * 100).toFixed(1)}%`;

const mean = (xs: readonly number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Nearest-rank percentile of an unsorted list. */
function pctl(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

// ---------------------------------------------------------------------------------------------
// The simulator child

interface SimSpec {
  /** `serial`: a path, or `pty:i` for the i-th pair the child holds the master end of (pty-direct.ts). */
  buses: { serial: string; units: string }[];
  baud: number;
  lineRate: boolean;
  /** A pty end to run the round-trip echo on (bench-pty.ts), same forms as `serial`. */
  echo?: string;
}

interface SimChild {
  /** The pairs the child holds the master ends of (startSimChild's `ptys` > 0). */
  ptys: DirectPty[];
  stats(): Promise<unknown[]>;
  stop(): Promise<void>;
}

/** A `serial` of a SimSpec, in the child: the path to open, or the held pty's slave path and master descriptor. */
function serialOf(ref: string): { path: string; fd?: number } {
  const m = /^pty:(\d+)$/.exec(ref);
  if (!m) return { path: ref };
  const p = inheritedPtys()[Number(m[1])];
  if (!p) throw new Error(`${ref}: this process holds no such pty`);
  return p;
}

const children = new Set<ChildProcess>();
let exitHooked = false;

/** Starts the simulators in a child process; with `ptys` > 0, as the far end of that many direct pty pairs. */
async function startSimChild(spec: SimSpec, ptys = 0): Promise<SimChild> {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  const args = [SELF, '--sim', JSON.stringify(spec)];
  const child = ptys > 0 ? spawnOnPtys(ptys, args) : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const exited = new Promise<void>((r) => child.once('exit', () => (children.delete(child), r())));
  const next = (what: string, ms = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`simulator child: no ${what} in ${ms} ms; stderr: ${stderr}`)), ms);
      void exited.then(() => (clearTimeout(timer), reject(new Error(`simulator child exited; stderr: ${stderr}`))));
      waiting.push((l) => (clearTimeout(timer), resolve(l)));
    });
  const held = ptys > 0 ? parsePtyLine(await next('pty line')) : [];
  const ready = await next('ready line');
  if (ready !== 'ready') throw new Error(`simulator child: ${ready}; stderr: ${stderr}`);
  return {
    ptys: held,
    async stats() {
      child.stdin!.write('stats\n');
      return JSON.parse(await next('stats')) as unknown[];
    },
    async stop() {
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Child side: the simulators, "ready", then "stats" -> one JSON line; stdin closed -> exit. */
async function simChildMain(spec: SimSpec): Promise<void> {
  const sims: Simulation[] = [];
  for (const b of spec.buses) {
    const s = serialOf(b.serial);
    sims.push(await simulate({ mode: 'modbus-rtu', serial: s.path, serialFd: s.fd, baud: spec.baud, parity: 'none', units: b.units, lineRate: spec.lineRate, print: () => {} }));
  }
  const e = spec.echo ? serialOf(spec.echo) : null;
  const closeEcho = e ? await echo(e.path, spec.baud, e.fd) : null;
  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (l) => {
    if (l.trim() === 'stats') process.stdout.write(`${JSON.stringify(sims.map((s) => s.rtu?.stats))}\n`);
  });
  await new Promise<void>((r) => rl.once('close', () => r()));
  for (const s of sims) await s.close();
  await closeEcho?.();
}

// ---------------------------------------------------------------------------------------------
// Figure 1: RTU transactions/s

interface TxRun {
  ok: number;
  failed: number;
  /** Answers whose counter did not move by exactly one from the previous answer. */
  counterJumps: number;
  ms: number;
  perSec: number;
}

/** The counter value (holding 0-1) of a 10-register answer. */
const counterOf = (regs: number[]) => ((regs[0] << 16) | regs[1]) >>> 0;

async function runMaster(serial: string, baud: number, ms: number): Promise<TxRun> {
  const m = new RtuMaster({ path: serial, baudRate: baud, parity: 'none', dataBits: 8, stopBits: 1, maxQueue: 8, frameGapMs: 20 });
  const o = await m.open();
  if (!o.ok) throw new Error(`open ${serial}: ${o.errno} ${o.message}`);
  try {
    let prev = -1;
    let jumps = 0;
    for (let i = 0; i < 5; i++) {
      const r = await m.read(TEN, 500); // warm-up
      if (r.ok) prev = counterOf(r.registers!);
    }
    let ok = 0;
    let failed = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      const r = await m.read(TEN, 500);
      if (!r.ok || !r.registers) {
        failed++;
        prev = -1;
        continue;
      }
      ok++;
      const c = counterOf(r.registers);
      if (prev >= 0 && c !== prev + 1) jumps++;
      prev = c;
    }
    const el = performance.now() - t0;
    return { ok, failed, counterJumps: jumps, ms: el, perSec: (ok * 1000) / el };
  } finally {
    await m.close();
  }
}

/** The minimal client: write, collect the answer by length, wait exactly t3.5, write again. */
async function runRaw(serial: string, baud: number, ms: number): Promise<TxRun> {
  const port = serialPort({ path: serial, baudRate: baud, parity: 'none', dataBits: 8, stopBits: 1 });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  const req = rtuRequest(TEN);
  const want = rtuResponseLength(TEN);
  const t35 = t35Ms(baud, BITS);
  let buf: Buffer = Buffer.alloc(0);
  let lastAt = 0;
  let wake: (() => void) | null = null;
  port.on('data', (d: Buffer) => {
    lastAt = performance.now();
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    if (buf.length >= want) wake?.();
  });
  const once = async (): Promise<Buffer | null> => {
    const due = lastAt + t35;
    const left = due - performance.now();
    if (left > 1.5) await sleep(left - 1.2);
    while (performance.now() < due) {
      /* spin: the last millisecond of t3.5 */
    }
    buf = Buffer.alloc(0);
    port.write(req);
    const got = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => ((wake = null), resolve(false)), 500);
      wake = () => ((wake = null), clearTimeout(timer), resolve(true));
    });
    if (!got) {
      lastAt = performance.now();
      return null;
    }
    return buf;
  };
  try {
    let prev = -1;
    let jumps = 0;
    for (let i = 0; i < 5; i++) {
      const b = await once();
      const p = b && parseRtuResponse(TEN, b);
      if (p && p.ok) prev = counterOf(registers(p.data));
    }
    let ok = 0;
    let failed = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      const b = await once();
      const p = b && parseRtuResponse(TEN, b);
      if (!p || !p.ok) {
        failed++;
        prev = -1;
        continue;
      }
      ok++;
      const c = counterOf(registers(p.data));
      if (prev >= 0 && c !== prev + 1) jumps++;
      prev = c;
    }
    const el = performance.now() - t0;
    return { ok, failed, counterJumps: jumps, ms: el, perSec: (ok * 1000) / el };
  } finally {
    await new Promise<void>((r) => port.close(() => r()));
  }
}

interface TxFigure {
  baud: number;
  /** What joins master and simulator: a direct pty pair (pty-direct.ts) or a socat pair. */
  rig: string;
  theory: { lineMs: number; t35: number; cycleMs: number; perSec: number };
  master: TxRun;
  raw: TxRun;
  masters: TxRun[];
  raws: TxRun[];
  /** The echo round with the lowest mean round trip. */
  rtt: RoundTrips;
}

async function txFigure(baud: number): Promise<TxFigure> {
  const bytes = 8 + rtuResponseLength(TEN);
  const line = lineMs(bytes, baud, BITS);
  const t35 = t35Ms(baud, BITS);
  const cycle = line + 2 * t35;
  // Direct pty pairs (the simulator holds the master ends: pty-direct.ts) where python3 can make
  // them, else socat pairs; the echo floor is measured on the same kind of pair.
  const direct = directPtysAvailable();
  const pty = direct ? null : await ptyPair();
  let floor: PtyPair | null = null;
  let sim: SimChild | null = null;
  try {
    if (!direct) floor = await ptyPair();
    sim = direct
      ? await startSimChild({ buses: [{ serial: 'pty:0', units: '1:counter' }], baud, lineRate: true, echo: 'pty:1' }, 2)
      : await startSimChild({ buses: [{ serial: pty!.a, units: '1:counter' }], baud, lineRate: true, echo: floor!.a });
    const busPath = direct ? sim.ptys[0].path : pty!.b;
    const echoPath = direct ? sim.ptys[1].path : floor!.b;
    const masters: TxRun[] = [];
    const raws: TxRun[] = [];
    const rtts: RoundTrips[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      masters.push(await runMaster(busPath, baud, ROUND_MS));
      await sleep(50);
      raws.push(await runRaw(busPath, baud, ROUND_MS));
      await sleep(50);
      rtts.push(await roundTrips(echoPath, baud, t35, Math.min(ROUND_MS, 1500)));
      await sleep(50);
    }
    const best = (xs: TxRun[]) => xs.reduce((a, b) => (b.perSec > a.perSec ? b : a));
    const rtt = rtts.reduce((a, b) => (mean(b.ms) < mean(a.ms) ? b : a));
    return { baud, rig: direct ? 'direct pty' : 'socat pty pair', theory: { lineMs: line, t35, cycleMs: cycle, perSec: 1000 / cycle }, master: best(masters), raw: best(raws), masters, raws, rtt };
  } finally {
    await sim?.stop();
    await floor?.close();
    await pty?.close();
  }
}

function txRows(f: TxFigure): FieldRow[] {
  const { theory: th, master: m, raw, rtt } = f;
  const bytes = 8 + rtuResponseLength(TEN);
  const r = m.perSec / th.perSec;
  const rttMean = mean(rtt.ms);
  const floorPerSec = 1000 / (th.cycleMs + rttMean);
  const checks = (x: TxRun) => (x.failed + x.counterJumps > 0 ? `; ${x.failed} failed, ${x.counterJumps} counter jumps` : '');
  return [
    {
      name: `RTU tx/s @${f.baud} 8N1 (fn 3, 10 regs, ${f.rig})`,
      value: `${fmt1(m.perSec)}/s (${fmt1(1000 / m.perSec)} ms/tx${checks(m)})`,
      limit: `line max ${fmt1(th.perSec)}/s: (8+${bytes - 8} B) x ${BITS} bit / ${f.baud} = ${fmt1(th.lineMs)} ms + 2 x t3.5 ${fmt2(th.t35)} ms = ${fmt1(th.cycleMs)} ms`,
      ratio: pct1(r),
      target: `>=${pct(TARGET_TX)} of line`,
      verdict: r >= TARGET_TX && m.failed === 0 && m.counterJumps === 0 ? 'PASS' : floorPerSec / th.perSec < TARGET_TX ? `FAIL (pty floor ${pct1(floorPerSec / th.perSec)}, below)` : 'FAIL',
    },
    {
      name: '  same master vs the simulator alone',
      value: `${fmt1(m.perSec)}/s`,
      limit: `raw client + simulator ${fmt1(raw.perSec)}/s (${fmt1(1000 / raw.perSec)} ms/tx${checks(raw)}), ${pct1(raw.perSec / th.perSec)} of line`,
      ratio: pct1(m.perSec / raw.perSec),
      target: '-',
      verdict: '-',
    },
    {
      name: '  same master vs line + pty round trip',
      value: `${fmt1(m.perSec)}/s`,
      limit:
        `floor ${fmt1(floorPerSec)}/s, ${pct1(floorPerSec / th.perSec)} of line: ${fmt2(th.cycleMs)} ms + pty round trip ${fmt2(rttMean)} ms ` +
        `(mean; p50 ${fmt2(pctl(rtt.ms, 0.5))}, p90 ${fmt2(pctl(rtt.ms, 0.9))}; ${rtt.ms.length} echoes of 8 B, t3.5 apart, drivers/serial, ${f.rig}, no Modbus${rtt.lost ? `; ${rtt.lost} lost` : ''}) = ${fmt2(th.cycleMs + rttMean)} ms`,
      ratio: pct1(m.perSec / floorPerSec),
      target: '-',
      verdict: '-',
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Figure 2: poll jitter

/** A plain timer on DevicePoller's fixed-rate grid, late measured the same way (Date.now()). */
class PlainTimer {
  readonly lateMs: number[] = [];
  private t0 = 0;
  private k = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  constructor(private readonly periodMs: number) {}
  start(at: number): void {
    this.t0 = at;
    this.k = 0;
    this.arm(at);
  }
  private arm(when: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(when), Math.max(0, when - Date.now()));
  }
  private tick(scheduled: number): void {
    const now = Date.now();
    this.lateMs.push(now - scheduled);
    this.k = Math.max(this.k + 1, Math.ceil((now - this.t0) / this.periodMs));
    this.arm(this.t0 + this.k * this.periodMs);
  }
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

const BUS_UNITS = [13, 13, 12, 12];

/** Start offsets as agent/acquisition/field.ts gives them: each bus's devices spread over one period. */
function offsets(): number[] {
  return BUS_UNITS.flatMap((n) => Array.from({ length: n }, (_, i) => Math.floor((i * POLL_MS) / n)));
}

/** Slots per device per window, and the windows: the floor and the pollers alternate, so a shared machine's load hits both alike. */
const SLOTS = 3;
const WINDOWS = Math.max(1, Math.round(JITTER_MS / (SLOTS * POLL_MS)));
const START_DELAY = 200;
/** Long enough for every device's SLOTS-th slot (offset < period) to fire even 500 ms late; later slots are not counted. */
const WINDOW_MS = START_DELAY + SLOTS * POLL_MS + 500;

async function plainTimers(): Promise<PlainTimer[]> {
  const t0 = Date.now() + START_DELAY;
  const timers = offsets().map((o) => {
    const p = new PlainTimer(POLL_MS);
    p.start(t0 + o);
    return p;
  });
  await sleep(WINDOW_MS);
  for (const p of timers) p.stop();
  return timers;
}

interface JitterFigure {
  pollerLate: number[];
  skipped: number;
  polls: number;
  okPolls: number;
  failedPolls: number;
  readings: number;
  counterGaps: number;
  readMs: number[];
  floorLate: number[];
  alongLate: number[];
  devices: number;
}

async function jitterFigure(): Promise<JitterFigure> {
  const ptys: PtyPair[] = [];
  const masters: RtuMaster[] = [];
  let sim: SimChild | null = null;
  const log = pino({ level: 'silent' });
  try {
    for (let b = 0; b < BUS_UNITS.length; b++) ptys.push(await ptyPair());
    const unitsOf = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}:${(i + 1) % 2 ? 'counter' : 'meter'}`).join(',');
    sim = await startSimChild({ buses: ptys.map((p, b) => ({ serial: p.a, units: unitsOf(BUS_UNITS[b]) })), baud: 115200, lineRate: false });

    const counterPoints: PointDef[] = [{ name: 'counter', kind: 'holding', address: 0, type: 'uint32' }];
    if (!existsSync(METER_MAP)) throw new Error(`${METER_MAP} not found`);
    // The shipped map, read as JSON (test/devicemap.test.ts validates it): no dependency on the config loader.
    const meter = JSON.parse(readFileSync(METER_MAP, 'utf8')) as DeviceMap;
    let readings = 0;
    let counterGaps = 0;
    const lastCounter = new Map<string, number>();
    const sink = (device: string, rs: Reading[]) => {
      readings += rs.length;
      const c = rs.find((r) => r.point === 'counter');
      if (c && typeof c.value === 'number') {
        const prev = lastCounter.get(device);
        if (prev !== undefined && c.value !== prev + 1) counterGaps++;
        lastCounter.set(device, c.value);
      }
      return true;
    };
    const readMs: number[] = [];
    const readers: { read(req: ReadRequest, timeoutMs: number): ReturnType<RtuMaster['read']> }[] = [];
    for (let b = 0; b < BUS_UNITS.length; b++) {
      const m = new RtuMaster({ path: ptys[b].b, baudRate: 115200, parity: 'none', dataBits: 8, stopBits: 1, maxQueue: 256, frameGapMs: 20 });
      const o = await m.open();
      if (!o.ok) throw new Error(`open ${ptys[b].b}: ${o.errno} ${o.message}`);
      masters.push(m);
      readers.push({
        async read(req: ReadRequest, timeoutMs: number) {
          const s = performance.now();
          const r = await m.read(req, timeoutMs);
          readMs.push(performance.now() - s);
          return r;
        },
      });
    }
    const makePollers = () =>
      BUS_UNITS.flatMap((n, b) =>
        Array.from({ length: n }, (_, i) => {
          const u = i + 1;
          const isCounter = u % 2 === 1;
          return new DevicePoller(
            {
              bus: `bus${b}`, device: `bus${b}-u${u}`, unitId: u, pollMs: POLL_MS, timeoutMs: 200,
              points: isCounter ? counterPoints : meter.points, gap: isCounter ? 0 : (meter.coalesceGap ?? 0),
              retry: { strategy: 'EXPONENTIAL_BACKOFF', baseMs: 100, maxMs: 1000, jitter: 0.2 }, soonerFactor: 0.25,
            },
            readers[b], sink, () => {}, log,
          );
        }),
      );

    // Windows of SLOTS periods: 50 plain timers alone (the floor), then the 50 pollers with 50
    // plain timers beside them (context: what the loop gives a timer at that moment).
    const offs = offsets();
    const pollers: DevicePoller[] = [];
    const floor: PlainTimer[] = [];
    const along: PlainTimer[] = [];
    for (let w = 0; w < WINDOWS; w++) {
      floor.push(...(await plainTimers()));
      const ps = makePollers();
      const t0 = Date.now() + START_DELAY;
      ps.forEach((p, i) => p.start(t0 + offs[i]));
      along.push(...(await plainTimers()));
      for (const p of ps) p.stop();
      pollers.push(...ps);
      await sleep(300); // polls in flight finish
    }
    const first = (xs: number[]) => xs.slice(0, SLOTS);
    return {
      pollerLate: pollers.flatMap((p) => first(p.stats.lateMs)),
      skipped: pollers.reduce((n, p) => n + p.stats.skippedSlots, 0),
      polls: pollers.reduce((n, p) => n + p.stats.polls, 0),
      okPolls: pollers.reduce((n, p) => n + p.stats.okPolls, 0),
      failedPolls: pollers.reduce((n, p) => n + p.stats.failedPolls, 0),
      readings,
      counterGaps,
      readMs,
      floorLate: floor.flatMap((p) => first(p.lateMs)),
      alongLate: along.flatMap((p) => first(p.lateMs)),
      devices: BUS_UNITS.reduce((a, b) => a + b, 0),
    };
  } finally {
    for (const m of masters) await m.close();
    await sim?.stop();
    for (const p of ptys) await p.close();
  }
}

function jitterRows(f: JitterFigure): FieldRow[] {
  const tri = (xs: number[]) => `p50 ${pctl(xs, 0.5)} / p99 ${pctl(xs, 0.99)} / max ${Math.max(...xs)} ms`;
  return [
    {
      name: `poll lateness, ${f.devices} devices / 4 RTU buses`,
      value: `${tri(f.pollerLate)} (${f.pollerLate.length} slots counted, ${f.skipped} skipped)`,
      limit: `Node setTimeout alone, 50 timers, same grid, alternating windows: ${tri(f.floorLate)} (${f.floorLate.length} ticks)`,
      ratio: `p99 ${pctl(f.pollerLate, 0.99) - pctl(f.floorLate, 0.99) >= 0 ? '+' : ''}${pctl(f.pollerLate, 0.99) - pctl(f.floorLate, 0.99)} ms`,
      target: 'none set',
      verdict: '-',
    },
    {
      name: '  (context) plain timers beside the pollers',
      value: tri(f.alongLate),
      limit: `same 50-timer grid, same loop, same windows as the pollers (${f.alongLate.length} ticks)`,
      ratio: '',
      target: '',
      verdict: '-',
    },
    {
      name: '  (context) polls and reads',
      value: `${f.okPolls}/${f.polls} polls ok, ${f.failedPolls} failed, ${f.readings} readings, ${f.counterGaps} counter gaps`,
      limit: `read (queue + transaction) p50 ${fmt1(pctl(f.readMs, 0.5))} / p99 ${fmt1(pctl(f.readMs, 0.99))} / max ${fmt1(Math.max(...f.readMs))} ms, ${f.readMs.length} reads`,
      ratio: '',
      target: '',
      verdict: '-',
    },
  ];
}

// ---------------------------------------------------------------------------------------------

function errRow(name: string, e: unknown, verdict: FieldRow['verdict']): FieldRow {
  return { name, value: `ERROR: ${(e as Error)?.message?.split('\n')[0] ?? String(e)}`, limit: '-', ratio: '-', target: '-', verdict };
}

/** Runs the field figures; returns the rows (prints nothing). Never throws: a failed figure is an ERROR row. */
export async function runFieldBench(): Promise<FieldRow[]> {
  const rows: FieldRow[] = [];
  if (ONLY.has('tx')) {
    for (const baud of [9600, 115200]) {
      try {
        rows.push(...txRows(await txFigure(baud)));
      } catch (e) {
        rows.push(errRow(`RTU tx/s @${baud} 8N1 (fn 3, 10 regs)`, e, 'FAIL'));
      }
    }
  }
  if (ONLY.has('jitter')) {
    try {
      rows.push(...jitterRows(await jitterFigure()));
    } catch (e) {
      rows.push(errRow('poll lateness, 50 devices / 4 RTU buses', e, '-'));
    }
  }
  return rows;
}

export function fieldTable(rows: readonly FieldRow[]): string {
  const keys = ['name', 'value', 'limit', 'ratio', 'target', 'verdict'] as const;
  const head: Record<(typeof keys)[number], string> = { name: 'figure', value: 'holdfast', limit: 'limit (same run)', ratio: 'ratio', target: 'target', verdict: 'verdict' };
  const all = [head, ...rows.map((r) => ({ ...r, ratio: r.ratio ?? '', target: r.target ?? '', verdict: r.verdict ?? '' }))];
  const w = keys.map((k) => Math.max(...all.map((r) => r[k].length)));
  return all.map((r) => keys.map((k, i) => r[k].padEnd(w[i])).join('   ').trimEnd()).join('\n');
}

async function main(): Promise<void> {
  const sim = process.argv.indexOf('--sim');
  if (sim > 0) return simChildMain(JSON.parse(process.argv[sim + 1]) as SimSpec);
  const t0 = performance.now();
  const cpu = os.cpus()[0]?.model ?? '?';
  const nproc = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  process.stdout.write(`holdfast field bench: ${cpu}; nproc ${nproc}; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; node ${process.version}\n`);
  const rows = await runFieldBench();
  process.stdout.write(`${fieldTable(rows)}\n`);
  process.stdout.write(`total ${fmt1((performance.now() - t0) / 1000)} s; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
}

runIfMain(import.meta.url, main);
