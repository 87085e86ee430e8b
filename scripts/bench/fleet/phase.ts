/**
 * One strategy's run: N gateways in W worker processes through the counting proxy, connected,
 * then the broker stopped for T seconds, then restored; measured until every gateway's backlog
 * (its tasks pending at the restore) is delivered, then the live tail settles and the stores are
 * compared with what the subscriber received.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetBroker } from './broker.js';
import type { CountingProxy } from './proxy.js';
import type { Subscriber } from './subscriber.js';
import type { Strategy } from './strategies.js';
import type { GatewaySpec } from './gateway.js';
import type { FromWorker, ToWorker } from './worker.js';
import type { PhaseInput } from './stats.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface PhaseOptions {
  gateways: number;
  workers: number;
  outageS: number;
  batchMs: number;
  messagesPerSec: number;
  dir: string;
  keyFile: string;
  sysfsRoot: string;
  proxyUrl: string;
  /** Give up waiting for the drain after this long (s). */
  maxDrainS: number;
  log: (s: string) => void;
}

class Worker {
  private readonly child: ChildProcess;
  private waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void }[] = [];
  constructor() {
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, RETRY_STRATEGY: '' } });
    this.child.on('message', (m: FromWorker) => this.waiting.shift()?.resolve(m));
    // A worker that dies fails the phase at once instead of leaving the coordinator waiting.
    this.child.on('exit', (code, signal) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`fleet worker ${this.child.pid} exited (${signal ?? code})`));
    });
  }
  ask<T extends FromWorker['type']>(m: ToWorker, _expect: T): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return reject(new Error(`fleet worker ${this.child.pid} is gone`));
      this.waiting.push({ resolve: (r) => resolve(r as Extract<FromWorker, { type: T }>), reject });
      this.child.send(m);
    });
  }
  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export async function runPhase(st: Strategy, o: PhaseOptions, broker: FleetBroker, proxy: CountingProxy, sub: Subscriber): Promise<PhaseInput> {
  const specs: GatewaySpec[] = Array.from({ length: o.gateways }, (_, i) => ({
    id: `${st.name}-${i}`, dir: path.join(o.dir, st.name, String(i)), brokerUrl: o.proxyUrl, keyFile: o.keyFile,
    uplink: st.uplink, batchMs: o.batchMs, sysfsRoot: o.sysfsRoot,
  }));
  sub.reset();
  proxy.reset();
  proxy.open = true;
  const workers = Array.from({ length: o.workers }, () => new Worker());
  try {
    const share = (w: number) => specs.filter((_, i) => i % o.workers === w);
    const t0 = Date.now();
    await Promise.all(workers.map((w, i) => w.ask({ type: 'start', specs: share(i), pinRandom: st.pinRandom }, 'started')));
    const t1 = Date.now();
    const statuses = () => Promise.all(workers.map((w) => w.ask({ type: 'status' }, 'status')));
    for (let i = 0; i < 120; i++) {
      const n = (await statuses()).reduce((a, s) => a + s.connected, 0);
      if (n === o.gateways) break;
      await sleep(500);
    }
    o.log(`  ${st.name}: ${o.gateways} gateways started in ${((t1 - t0) / 1000).toFixed(1)} s, connected ${((Date.now() - t1) / 1000).toFixed(1)} s later`);
    await sleep(3000);
    o.log(`  ${st.name}: broker stopped for ${o.outageS} s`);
    const outageAt = proxy.elapsed();
    proxy.cut();
    await broker.stop();
    await sleep(o.outageS * 1000);
    await broker.start();
    await sub.connect();
    const marked = await Promise.all(workers.map((w) => w.ask({ type: 'status', mark: true }, 'status')));
    const backlog = marked.reduce((a, s) => a + s.backlog, 0);
    const restoreAt = proxy.elapsed();
    proxy.open = true;
    o.log(`  ${st.name}: broker restored, backlog ${backlog} batches`);
    let drainedAt: number | null = null;
    let last = marked;
    while (proxy.elapsed() - restoreAt < o.maxDrainS) {
      await sleep(250);
      last = await statuses();
      if (last.reduce((a, s) => a + s.backlog, 0) === 0) {
        drainedAt = proxy.elapsed();
        break;
      }
    }
    o.log(`  ${st.name}: ${drainedAt === null ? 'NOT drained' : `drained in ${(drainedAt - restoreAt).toFixed(1)} s`}; settling`);
    const series = { connects: [...proxy.series.connects], publishes: [...proxy.series.publishes] };
    const done = await Promise.all(workers.map((w) => w.ask({ type: 'finish' }, 'finished')));
    const counts: Record<string, number> = {};
    let lost = 0;
    let leftPending = 0;
    for (const d of done) {
      for (const [k, v] of Object.entries(d.counts)) counts[k] = (counts[k] ?? 0) + v;
      for (const key of d.keys) if (!sub.seen.has(key)) lost++;
      leftPending += d.leftPending;
    }
    const duplicates = sub.received - sub.seen.size;
    return {
      strategy: st.name, gateways: o.gateways, series, outageAt, restoreAt, drainedAt, backlog,
      budget: o.gateways * (o.messagesPerSec + 1000 / o.batchMs), idealS: backlog / (o.gateways * o.messagesPerSec),
      lost, duplicates, failed: counts.failed ?? 0, leftPending,
      lagP99Ms: Math.max(...last.map((s) => s.lagP99Ms)), lagMaxMs: Math.max(...last.map((s) => s.lagMaxMs)),
    };
  } finally {
    for (const w of workers) w.kill();
  }
}
