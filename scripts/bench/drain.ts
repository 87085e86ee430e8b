/**
 * Figure 2 of `npm run bench`: the drain (a real Lane + MqttDriver emptying the store's backlog
 * into a local mosquitto) against its limit, a raw mqtt.js QoS 1 publisher sending the same bytes.
 *
 * Each side runs in a child process of its own (scripts/bench/drain-child.ts, `raw` or `lane`), started with the
 * bench's node flags and environment (production's), and the parent alternates their rounds on
 * one broker, after one untimed warm-up round of each. The lane child keeps one Lane (and its
 * MqttDriver and connection) for all its rounds, as an agent does: the warm-up connects and
 * drains (lane.start()), each timed round re-admits the whole backlog (lane.rescan(), the
 * sweeper's path after the SQL repair). The raw child connects a new client each round and times
 * from its CONNACK: a reused mqtt.js client (default store) runs full collections that a fresh
 * one does not. No collection is forced between rounds.
 *
 * Why two processes: in one, both sides would share one V8 heap and JIT. The raw side's prepared
 * envelopes would sit in the lane's heap, the two would train the shared code (streams, mqtt.js)
 * with different types, and forced collections would drop the lane's optimized code. A gateway
 * runs one lane for months, never next to a raw publisher, and never forces a GC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../agent/config/types.js';

/** GC pauses on the main thread (count and ms by kind) during a round. */
export interface GcTally {
  minor: number;
  minorMs: number;
  major: number;
  majorMs: number;
}

export interface DrainRun {
  /** CPU time of the side's process (user + system, all its threads) during the round, ms. */
  cpuMs: number;
  /** CPU time of the broker during the round, ms (NaN when unknown). */
  brokerMs: number;
  /** CPU time of the side's main thread, ms (NaN when unknown): the rest of cpuMs is the decode worker's and V8's GC and compiler threads'. */
  mainMs: number;
  gc: GcTally;
  messages: number;
  readings: number;
  ms: number;
  perSec: number;
}

export interface DrainSetup {
  cfg: Config;
  /** The broker's CPU time so far, ms. */
  brokerCpuMs: () => number;
  /** Timed rounds of each side (after one warm-up round each). */
  rounds: number;
  /** Unacknowledged messages at most, both sides. */
  window: number;
  /** Called after each pair of rounds (raw, lane); round 0 is the warm-up. */
  onRound?: (round: number, raw: DrainRun, lane: DrainRun) => void;
}

export type ToChild = { type: 'round' } | { type: 'exit' };
/** `ready`: the raw side gives the envelopes' bytes, the lane side the opening cost. */
export type FromChild = { type: 'ready'; messages: number; readings: number; bytes?: number; decodeUs?: number } | { type: 'run'; run: Omit<DrainRun, 'brokerMs'> } | { type: 'error'; message: string };

/** On-CPU time so far from a schedstat file (/proc/<pid>/schedstat, /proc/thread-self/schedstat), ms; NaN when /proc cannot tell. */
export function schedCpuMs(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return NaN;
  }
}

export const gcText = (g: GcTally, messages: number) =>
  `GC ${Math.round((1000 * (g.minorMs + g.majorMs)) / messages)} us/msg: ${g.minor} scavenges ${Math.round(g.minorMs)} ms, ${g.major} other ${Math.round(g.majorMs)} ms`;

// ---------------------------------------------------------------------------------------------
// Parent side

class Side {
  private waiting: ((m: FromChild) => void) | null = null;
  private exited: Error | null = null;

  constructor(
    readonly name: 'raw' | 'lane',
    private readonly child: ChildProcess,
  ) {
    child.on('message', (m: FromChild) => {
      const w = this.waiting;
      this.waiting = null;
      w?.(m);
    });
    child.once('exit', (code, sig) => {
      this.exited = new Error(`${name} child exited (${code ?? sig})`);
      const w = this.waiting;
      this.waiting = null;
      w?.({ type: 'error', message: this.exited.message });
    });
  }

  next(send?: ToChild): Promise<FromChild> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting = (m) => (m.type === 'error' ? reject(new Error(`${this.name}: ${m.message}`)) : resolve(m));
      if (send) this.child.send(send);
    });
  }

  async round(brokerCpuMs: () => number): Promise<DrainRun> {
    const b0 = brokerCpuMs();
    const m = await this.next({ type: 'round' });
    if (m.type !== 'run') throw new Error(`${this.name}: unexpected ${m.type}`);
    return { ...m.run, brokerMs: brokerCpuMs() - b0 };
  }

  stop(): void {
    if (this.exited) return;
    this.child.send({ type: 'exit' } satisfies ToChild);
    setTimeout(() => this.child.kill('SIGKILL'), 5000).unref();
  }
}

/**
 * Runs the two children and alternates their rounds (warm-up first): raw then lane, `rounds`
 * times. The store's backlog must be pending; the lane child puts it back to pending before each
 * of its rounds.
 */
export async function runDrainRounds(s: DrainSetup): Promise<{ raws: DrainRun[]; lanes: DrainRun[]; messages: number; readings: number; bytes: number; decodeUs: number }> {
  const file = fileURLToPath(new URL('./drain-child.js', import.meta.url));
  const start = (role: 'raw' | 'lane') =>
    new Side(role, fork(file, [role], { execArgv: process.execArgv, env: { ...process.env, BENCH_DRAIN_SETUP: JSON.stringify({ cfg: s.cfg, window: s.window }) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const raw = start('raw');
  const lane = start('lane');
  try {
    const [r, l] = await Promise.all([raw.next(), lane.next()]);
    if (r.type !== 'ready' || l.type !== 'ready') throw new Error('a drain child did not start');
    if (r.messages !== l.messages || r.readings !== l.readings) throw new Error(`raw has ${r.messages} messages (${r.readings} readings), the lane's store ${l.messages} (${l.readings})`);
    const raws: DrainRun[] = [];
    const lanes: DrainRun[] = [];
    for (let round = 0; round <= s.rounds; round++) {
      const a = await raw.round(s.brokerCpuMs);
      const b = await lane.round(s.brokerCpuMs);
      if (round > 0) {
        raws.push(a);
        lanes.push(b);
      }
      s.onRound?.(round, a, b);
    }
    return { raws, lanes, messages: r.messages, readings: r.readings, bytes: r.bytes ?? NaN, decodeUs: l.decodeUs ?? NaN };
  } finally {
    raw.stop();
    lane.stop();
  }
}
