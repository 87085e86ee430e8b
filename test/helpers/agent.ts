/**
 * Runs the real agent (`node dist/agent/cli/main.js run`) as a child process on a config in a
 * temp folder, and reads its database the way an operator would.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { generateKey } from '../../store/codec.js';

export const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const CLI = join(ROOT, 'dist/agent/cli/main.js');

export interface AgentDir {
  dir: string;
  dataDir: string;
  configFile: string;
  logFile: string;
  config: Record<string, unknown>;
}

/** A fresh folder with a key and a config; `patch` is merged over the defaults (uplink[0] too). */
export function makeAgentDir(brokerUrl: string, patch: Record<string, unknown> = {}, uplinkPatch: Record<string, unknown> = {}): AgentDir {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-test-'));
  const keyFile = join(dir, 'keys', 'holdfast.key');
  generateKey(keyFile, 'k1');
  const config: Record<string, unknown> = {
    gatewayId: 'gw-test',
    dataDir: join(dir, 'data'),
    logFile: join(dir, 'engine.log'),
    spoolDir: join(dir, 'cache'),
    logLevel: 'debug',
    sweepIntervalMs: 500,
    batch: { maxReadings: 200, maxAgeMs: 200 },
    sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 5, points: 5 }],
    // Port 0: several agents run at once in the tests; the API test picks a port itself.
    api: { port: 0 },
    uplinks: [
      {
        name: 'broker',
        type: 'mqtt',
        url: brokerUrl,
        ackTimeoutMs: 5000,
        connectTimeoutMs: 2000,
        retry: { baseMs: 100, maxMs: 1000 },
        breaker: { openMs: 1000 },
        drain: { startJitterMs: 200, readingsPerSec: 1000000, messagesPerSec: 100000 },
        ...uplinkPatch,
      },
    ],
    ...patch,
    store: { keyFile, commitIntervalMs: 50, ...((patch.store as object | undefined) ?? {}) },
  };
  const configFile = join(dir, 'holdfast.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  return { dir, dataDir: config.dataDir as string, configFile, logFile: config.logFile as string, config };
}

export interface RunningAgent {
  proc: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
  kill9(): Promise<void>;
  stop(): Promise<number | null>;
}

export function startAgent(a: AgentDir, env: NodeJS.ProcessEnv = {}): RunningAgent {
  const proc = spawn(process.execPath, [CLI, 'run', '--config', a.configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return {
    proc,
    exited,
    output: () => out,
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Starts the agent for a test: its output is printed if the test fails, and at teardown it is
 * killed (-9) if still running, then `after` runs (brokers, servers the test started).
 */
export function launchAgent(t: { teardown(fn: () => unknown): void; passing(): boolean }, a: AgentDir, after: () => unknown = () => {}): RunningAgent {
  const agent = startAgent(a);
  diagnoseOnFailure(t, a, agent);
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await after();
  });
  return agent;
}

/** On a failed test, prints the agent's output and the end of its log (CI has nothing else). */
export function diagnoseOnFailure(t: { teardown(fn: () => void): void; passing(): boolean }, a: AgentDir, agent: RunningAgent): void {
  t.teardown(() => {
    if (t.passing()) return;
    console.error(`--- agent output ---\n${agent.output().slice(-4000)}\n--- engine.log (tail) ---\n${log(a).split('\n').slice(-40).join('\n')}`);
  });
}

/** Runs the CLI to completion. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Opens the agent's database next to it (WAL: readers never block the agent). */
export function withDb<T>(a: AgentDir, fn: (db: Database.Database) => T): T {
  const file = join(a.dataDir, 'holdfast.db');
  if (!existsSync(file)) throw new Error(`no database yet at ${file}`);
  const db = new Database(file);
  db.pragma('busy_timeout = 10000');
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export function count(a: AgentDir, sql: string, ...params: unknown[]): number {
  try {
    return withDb(a, (db) => (db.prepare(sql).pluck().get(...params) as number | null) ?? 0);
  } catch (e) {
    if (/no database yet|no such table/.test((e as Error).message)) return 0;
    throw e;
  }
}

export function log(a: AgentDir): string {
  return existsSync(a.logFile) ? readFileSync(a.logFile, 'utf8') : '';
}

/** Parsed telemetry messages of a recorder. */
export interface Telemetry {
  key: string;
  seq: number;
  device: string;
  historical: boolean;
  part?: number;
  parts?: number;
  readings: { device: string; point: string; ts: number; value: unknown }[];
}

export function telemetry(messages: { topic: string; payload: Buffer }[]): Telemetry[] {
  return messages.filter((m) => m.topic.endsWith('/telemetry')).map((m) => JSON.parse(m.payload.toString()) as Telemetry);
}

/**
 * Checks a set of telemetry messages: counter values of each device contiguous from 1, and
 * duplicates only ever as whole re-sends with the same key. Returns the distinct counters.
 */
export function checkCounters(msgs: Telemetry[]): { counters: Map<string, number[]>; duplicateKeys: number; problems: string[] } {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  let duplicateKeys = 0;
  const byDevice = new Map<string, Set<number>>();
  const owner = new Map<string, string>();
  for (const m of msgs) {
    const id = `${m.key}#${m.part ?? 1}`;
    const body = JSON.stringify(m.readings);
    if (seen.has(id)) {
      duplicateKeys++;
      if (seen.get(id) !== body) problems.push(`key ${id} arrived twice with different readings`);
      continue;
    }
    seen.set(id, body);
    for (const r of m.readings) {
      if (r.point !== 'counter') continue;
      const set = byDevice.get(r.device) ?? new Set<number>();
      byDevice.set(r.device, set);
      const v = r.value as number;
      const k = `${r.device}:${v}`;
      if (set.has(v)) problems.push(`counter ${k} in two different batches (${owner.get(k)} and ${m.key})`);
      set.add(v);
      owner.set(k, m.key);
    }
  }
  const counters = new Map<string, number[]>();
  for (const [d, set] of byDevice) {
    const sorted = [...set].sort((x, y) => x - y);
    sorted.forEach((v, i) => {
      if (v !== i + 1 && problems.length < 20) problems.push(`${d}: counter gap: position ${i} holds ${v}`);
    });
    counters.set(d, sorted);
  }
  return { counters, duplicateKeys, problems };
}
