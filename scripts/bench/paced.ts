/**
 * Figure 2b of `npm run bench`: the drain as a gateway runs it. A store holding a 100,000-batch
 * backlog (50 readings a batch, encrypted, written by the store's own outbox) and the real agent
 * (`holdfast run`, started the way production starts it) draining it into a local mosquitto at
 * the default `drain.messagesPerSec`. After a warm-up, for WINDOW_S seconds: the agent's CPU
 * (/proc/<pid>/stat, all its threads) as a share of one core, its RSS growth (VmRSS), and the
 * rate held (tasks marked delivered in the store) against the configured one.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildConfig } from '../../agent/config/load.js';
import { newBatchKey } from '../../agent/ingest.js';
import { loadKeyring, PayloadCodec } from '../../store/codec.js';
import { DB_FILE, openDb } from '../../store/db.js';
import { Store } from '../../store/store.js';
import { makePoll, prng } from './rss.js';

export const PACED_BATCHES = 100_000;
const POLLS_PER_BATCH = 5;
const WARMUP_S = 10;
export const WINDOW_S = 60;

export interface PacedResult {
  configured: number;
  messages: number;
  ratePerSec: number;
  cpuPctOfCore: number;
  rssStartMB: number;
  rssEndMB: number;
  backlogBatches: number;
  batchReadings: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** utime + stime of a process, ms. */
function cpuMsOf(pid: number, tick: number, file = `/proc/${pid}/stat`): number {
  const f = readFileSync(file, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat; `rest` starts at field 3.
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / tick;
}

/** CPU ms per thread name (comm) of a process. */
function threadsMsOf(pid: number, tick: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = tid === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(name, (out.get(name) ?? 0) + cpuMsOf(Number(tid), tick, `/proc/${pid}/task/${tid}/stat`));
    } catch {
      // the thread ended
    }
  }
  return out;
}

function rssMBOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The backlog: PACED_BATCHES batches pending for uplink `uplink`, committed 1,000 at a time. */
function buildBacklog(dataDir: string, keyFile: string, uplink: string): void {
  const codec = new PayloadCodec(loadKeyring(keyFile, 'k1'), 'k1');
  const store = Store.on(openDb(dataDir, { create: true }));
  const outbox = store.outbox([uplink]);
  const rand = prng(7);
  let n = 0;
  for (let done = 0; done < PACED_BATCHES; done += 1000) {
    outbox.commit(Array.from({ length: 1000 }, () => {
      const readings = Array.from({ length: POLLS_PER_BATCH }, () => makePoll(0, n++, rand).readings).flat();
      const json = JSON.stringify(readings);
      const key = newBatchKey();
      return {
        key, hash: createHash('sha256').update(json).digest(), device: readings[0].device, readingCount: readings.length,
        firstTs: readings[0].ts, lastTs: readings[readings.length - 1].ts, createdAt: Date.now(), payload: codec.encode(json, key),
      };
    }));
  }
  store.close();
}

export async function runPacedDrain(o: { root: string; keyFile: string; brokerUrl: string; cli: string; nodeArgs: string[]; env: Record<string, string>; say: (s: string) => void }): Promise<PacedResult> {
  const dataDir = path.join(o.root, 'paced', 'data');
  const uplink = 'broker';
  const t0 = Date.now();
  buildBacklog(dataDir, o.keyFile, uplink);
  const raw = {
    gatewayId: 'bench-paced', dataDir, logFile: path.join(o.root, 'paced', 'engine.log'), spoolDir: path.join(o.root, 'paced', 'cache'),
    store: { encryption: 'aes-256-gcm', keyFile: o.keyFile, keyId: 'k1' }, sources: [], api: { enabled: false },
    uplinks: [{ name: uplink, type: 'mqtt', url: o.brokerUrl, clientId: `bench-paced-${process.pid}`, drain: { startJitterMs: 0 } }],
  };
  const configured = buildConfig(raw).uplinks[0].drain.messagesPerSec;
  const file = path.join(o.root, 'paced', 'holdfast.json');
  writeFileSync(file, JSON.stringify(raw, null, 2));
  o.say(`    backlog of ${PACED_BATCHES.toLocaleString('en-US')} batches x ${POLLS_PER_BATCH * 10} readings built in ${((Date.now() - t0) / 1000).toFixed(1)} s; holdfast run, drain.messagesPerSec ${configured} (default)`);
  const tick = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const child = spawn(process.execPath, [...o.nodeArgs, o.cli, 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...o.env } });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const db = () => new Database(path.join(dataDir, DB_FILE), { readonly: true, fileMustExist: true });
  const delivered = () => {
    const d = db();
    try {
      return (d.prepare(`SELECT count(*) AS n FROM recovery_tasks WHERE status = 'delivered'`).get() as { n: number }).n;
    } finally {
      d.close();
    }
  };
  try {
    const deadline = Date.now() + 30_000;
    while (delivered() === 0) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the agent delivered nothing in 30 s: ${stderr.slice(-1000)}`);
      await sleep(200);
    }
    await sleep(WARMUP_S * 1000);
    const pid = child.pid!;
    const c0 = cpuMsOf(pid, tick);
    const th0 = threadsMsOf(pid, tick);
    const r0 = rssMBOf(pid);
    const d0 = delivered();
    const w0 = performance.now();
    await sleep(WINDOW_S * 1000);
    const c1 = cpuMsOf(pid, tick);
    const th1 = threadsMsOf(pid, tick);
    const r1 = rssMBOf(pid);
    const d1 = delivered();
    const s = (performance.now() - w0) / 1000;
    if (child.exitCode !== null) throw new Error(`the agent exited: ${stderr.slice(-1000)}`);
    const threads = [...th1].map(([k, v]) => [k, v - (th0.get(k) ?? 0)] as const).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    o.say(`    CPU by thread over the window: ${threads.map(([k, v]) => `${k} ${Math.round(v)} ms`).join(', ')}`);
    return {
      configured, messages: d1 - d0, ratePerSec: (d1 - d0) / s, cpuPctOfCore: ((c1 - c0) / (s * 1000)) * 100, rssStartMB: r0, rssEndMB: r1,
      backlogBatches: PACED_BATCHES, batchReadings: POLLS_PER_BATCH * 10,
    };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
