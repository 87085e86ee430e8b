/**
 * Slow clients cannot starve the agent (issue 15: 1,100 slow connections under `ulimit -n 1024`
 * took every descriptor, /healthz was unreachable for 95 s). Against the real agent as a child
 * process: hundreds of sockets that send a request head one byte a second, or nothing, while
 * /healthz is probed; the agent's descriptors are counted in /proc/<pid>/fd.
 */
import t, { type Test } from 'tap';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { freePort, waitFor } from './helpers/mosquitto.js';
import { CLI, diagnoseOnFailure, launchAgent, log, makeAgentDir, type AgentDir, type RunningAgent } from './helpers/agent.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One GET on a fresh connection (no keep-alive pool: each probe goes through admission). */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface Probe { ok: boolean; attempts: number; ms: number }

/** A supervisor's probe: retried on a refused or reset connection until 200 or 10 s have passed. */
async function healthz(port: number): Promise<Probe> {
  const start = performance.now();
  let attempts = 0;
  while (performance.now() - start < 10_000) {
    attempts++;
    const r = await get(port, '/healthz').catch(() => null);
    if (r?.status === 200) return { ok: true, attempts, ms: performance.now() - start };
    await sleep(100);
  }
  return { ok: false, attempts, ms: performance.now() - start };
}

async function metric(port: number, line: RegExp): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const r = await get(port, '/metrics').catch(() => null);
    const m = r?.status === 200 ? line.exec(r.body) : null;
    if (m) return Number(m[1]);
    await sleep(100);
  }
  throw new Error(`no ${line.source} in /metrics`);
}

/** A slowloris socket: a partial request head, then one more byte every second (or nothing). */
class SlowClient {
  openedAt = 0;
  closedAt = 0;
  received = '';
  connects = 0;
  private socket: Socket | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly port: number, readonly silent: boolean, private readonly reconnect: () => boolean) {}

  open(): void {
    this.connects++;
    this.openedAt = performance.now();
    this.closedAt = 0;
    const s = connect(this.port, '127.0.0.1');
    this.socket = s;
    s.on('connect', () => {
      if (this.silent) return;
      s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      this.timer = setInterval(() => s.write('a'), 1000);
    });
    s.on('data', (d) => (this.received += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      this.closedAt = performance.now();
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      // The sustained attack: reconnect a second later, as slowloris does on its next round.
      if (this.reconnect()) setTimeout(() => this.reconnect() && this.open(), 1000);
    });
  }

  get closed(): boolean {
    return this.closedAt > 0;
  }

  destroy(): void {
    this.socket?.destroy();
  }
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Samples the agent's descriptors every 50 ms until stopped; returns the highest count. */
function sampleFds(pid: number): { stop(): number } {
  let max = fds(pid);
  const timer = setInterval(() => (max = Math.max(max, fds(pid))), 50);
  return {
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}

/** Probes /healthz every 500 ms while `running()`; every probe's result. */
async function probeWhile(port: number, running: () => boolean): Promise<Probe[]> {
  const out: Promise<Probe>[] = [];
  while (running()) {
    out.push(healthz(port));
    await sleep(500);
  }
  return Promise.all(out);
}

function summary(probes: Probe[]): string {
  const attempts = probes.reduce((n, p) => n + p.attempts, 0);
  const worst = Math.max(...probes.map((p) => p.ms));
  return `${probes.filter((p) => p.ok).length}/${probes.length} probes got 200, ${attempts} attempts, slowest ${Math.round(worst)} ms`;
}

async function agentWithApi(t: Test, api: Record<string, unknown>): Promise<{ a: AgentDir; port: number; agent: RunningAgent }> {
  const port = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [] });
  a.config.api = { port, ...api };
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a);
  await waitFor(async () => (await get(port, '/healthz').catch(() => ({ status: 0 }))).status === 200, 20_000, 'healthz');
  return { a, port, agent };
}

t.test('slow clients are capped, timed out and refused; /healthz keeps answering', async (t) => {
  const CAP = 32;
  const { port, agent } = await agentWithApi(t, { maxConnections: CAP, headersTimeoutMs: 2000, idleTimeoutMs: 1500 });
  const pid = agent.proc.pid!;
  await sleep(1000); // the agent settles (store open, uplink retrying) before the baseline
  const baseline = fds(pid);

  // The reported scenario at this scale: 300 slow heads and 50 silent sockets at once, more than
  // ten times the cap, none of them closing by itself.
  const fdMax = sampleFds(pid);
  const clients = [...Array(350).keys()].map((i) => new SlowClient(port, i % 7 === 6, () => false));
  const t0 = performance.now();
  for (const c of clients) c.open();
  const probing = probeWhile(port, () => clients.some((c) => !c.closed) && performance.now() - t0 < 30_000);
  await waitFor(() => clients.every((c) => c.closed), 30_000, 'every slow socket closed by the agent');
  const probes = await probing;
  const maxFds = fdMax.stop();

  t.ok(probes.length >= 2 && probes.every((p) => p.ok), `each probe made during the attack got 200 within 10 s: ${summary(probes)}`);
  const timedOut = clients.filter((c) => c.received.startsWith('HTTP/1.1 408'));
  t.ok(timedOut.length > 0, `${timedOut.length} slow heads got 408 and were closed`);
  const early = timedOut.filter((c) => c.closedAt - c.openedAt < 1900);
  t.equal(early.length, 0, 'no 408 before the 2 s header timeout');
  const refused = await metric(port, /^holdfast_api_connections_refused_total (\d+)$/m);
  t.ok(refused > 0, `connections beyond the cap refused and counted: holdfast_api_connections_refused_total ${refused}`);
  const timeouts = await metric(port, /^holdfast_api_connections_dropped_total\{reason="timeout"\} (\d+)$/m);
  t.ok(timeouts >= timedOut.length, `holdfast_api_connections_dropped_total{reason="timeout"} ${timeouts} counts the 408s`);
  const idle = await metric(port, /^holdfast_api_connections_dropped_total\{reason="idle"\} (\d+)$/m);
  const silent = clients.filter((c) => c.silent && c.closedAt - c.openedAt > 1000);
  t.ok(silent.length > 0 && silent.every((c) => c.received === ''), `${silent.length} silent sockets the agent kept were closed without an answer`);
  t.ok(idle >= silent.length, `and counted as idle: holdfast_api_connections_dropped_total{reason="idle"} ${idle}`);
  const evicted1 = await metric(port, /^holdfast_api_connections_dropped_total\{reason="evicted"\} (\d+)$/m);
  t.ok(refused + evicted1 + timeouts + idle >= 350, `every slow socket counted: ${refused} refused + ${evicted1} evicted + ${timeouts} timed out + ${idle} idle`);
  t.ok(maxFds <= baseline + CAP + 8, `the agent's descriptors stayed near the cap: baseline ${baseline}, at most ${maxFds} with 350 slow sockets`);
  const open = await metric(port, /^holdfast_api_connections (\d+)$/m);
  t.ok(open >= 1 && open <= 2, `holdfast_api_connections ${open} once the attack is over (the scrape itself)`);
  t.comment(`fds: baseline ${baseline}, max ${maxFds}; refused ${refused}, evicted ${evicted1}, 408 ${timeouts}, idle ${idle}; ${summary(probes)}`);

  // Sustained: 300 slow clients reconnect a second after every close, for 10 s.
  let attacking = true;
  const sustained = [...Array(300).keys()].map((i) => new SlowClient(port, i % 10 === 9, () => attacking));
  const fdMax2 = sampleFds(pid);
  for (const c of sustained) c.open();
  const t1 = performance.now();
  const probes2 = await probeWhile(port, () => performance.now() - t1 < 10_000);
  const maxFds2 = fdMax2.stop();
  attacking = false;
  for (const c of sustained) c.destroy();
  const connects = sustained.reduce((n, c) => n + c.connects, 0);
  t.ok(probes2.every((p) => p.ok), `while 300 slow clients kept reconnecting (${connects} connections), each probe got 200 within 10 s: ${summary(probes2)}`);
  t.ok(maxFds2 <= baseline + CAP + 8, `descriptors bounded: at most ${maxFds2} (baseline ${baseline})`);
  const evicted = await metric(port, /^holdfast_api_connections_dropped_total\{reason="evicted"\} (\d+)$/m);
  t.ok(evicted > 0, `probes took the slot of a slow socket: holdfast_api_connections_dropped_total{reason="evicted"} ${evicted}`);
  t.comment(`sustained: ${connects} slow connections, fds max ${maxFds2}, evicted ${evicted}; ${summary(probes2)}`);

  t.equal(await agent.stop(), 0, 'the agent stops cleanly');
});

t.test('under ulimit -n 256, 300 slow clients: the defaults keep /healthz up and no EMFILE', async (t) => {
  const port = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [] });
  a.config.api = { port }; // the defaults: 64 connections, 5 s for a head, 2 s idle
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const proc = spawn('prlimit', ['--nofile=256:256', process.execPath, CLI, 'run', '--config', a.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const agent: RunningAgent = {
    proc, exited, output: () => out,
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
  diagnoseOnFailure(t, a, agent);
  t.teardown(async () => {
    if (proc.exitCode === null) await agent.kill9();
  });
  await waitFor(async () => (await get(port, '/healthz').catch(() => ({ status: 0 }))).status === 200, 20_000, 'healthz');
  const pid = proc.pid!;
  t.match(readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max open files\s+256\s+256/, 'the agent runs with 256 descriptors');

  let attacking = true;
  const clients = [...Array(300).keys()].map((i) => new SlowClient(port, i % 10 === 9, () => attacking));
  const fdMax = sampleFds(pid);
  for (const c of clients) c.open();
  const t0 = performance.now();
  const probes = await probeWhile(port, () => performance.now() - t0 < 12_000);
  const maxFds = fdMax.stop();
  attacking = false;
  for (const c of clients) c.destroy();

  t.ok(probes.every((p) => p.ok), `each probe got 200 within 10 s: ${summary(probes)}`);
  t.ok(maxFds < 200, `the agent never neared its 256 descriptors: at most ${maxFds}`);
  t.notMatch(out + log(a), /EMFILE/, 'no EMFILE anywhere');
  t.comment(`ulimit 256: fds max ${maxFds}; ${summary(probes)}`);
  t.equal(await agent.stop(), 0, 'the agent stops cleanly');
});
