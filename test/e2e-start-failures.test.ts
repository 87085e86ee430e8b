/**
 * A start that fails exits, with a status that says why (agent/cli/exit-codes.ts), whoever runs
 * it: a shell, systemd, or pm2, whose IPC channel kept a failed start alive and "online" when the
 * CLI only set process.exitCode. Here the agent is forked with an IPC channel, as pm2 does.
 */
import t from 'tap';
import { fork } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import net from 'node:net';
import { join } from 'node:path';
import { makeAgentDir, type AgentDir } from './helpers/agent.js';
import { EXIT, startExitCode } from '../agent/cli/exit-codes.js';
import { HoldfastError } from '../agent/errors.js';

const CLI = new URL('../agent/cli/main.js', import.meta.url).pathname;

/** Forks `holdfast run` with an IPC channel; resolves with its exit status and what it said. */
function forkRun(a: AgentDir): Promise<{ code: number | null; messages: unknown[]; output: string }> {
  return new Promise((resolve) => {
    const p = fork(CLI, ['run', '--config', a.configFile], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const messages: unknown[] = [];
    let output = '';
    p.on('message', (m) => messages.push(m));
    p.stdout!.on('data', (d) => (output += d));
    p.stderr!.on('data', (d) => (output += d));
    // A failed start that stays alive is the bug: give it a bound, then kill and report null.
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, messages, output });
    });
  });
}

t.test('a refused config exits 78 under an IPC channel', async (t) => {
  const a = makeAgentDir('mqtt://127.0.0.1:1');
  writeFileSync(a.configFile, '{"gatewayId": ');
  const r = await forkRun(a);
  t.equal(r.code, EXIT.CONFIG, `exit ${r.code}`);
  t.match(r.output, /CONFIG_PARSE/);
  t.same(r.messages, [], 'never said ready');
});

t.test('a data directory open to others exits 78', async (t) => {
  const a = makeAgentDir('mqtt://127.0.0.1:1');
  mkdirSync(a.dataDir, { recursive: true });
  chmodSync(a.dataDir, 0o755);
  const r = await forkRun(a);
  t.equal(r.code, EXIT.CONFIG, `exit ${r.code}`);
  t.match(r.output, /DATA_DIR_INSECURE/);
});

t.test('the API port in use exits 75 (retry later), after closing what it opened', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  t.teardown(() => squatter.close());
  const a = makeAgentDir('mqtt://127.0.0.1:1', { api: { port: (squatter.address() as net.AddressInfo).port } });
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const r = await forkRun(a);
  t.equal(r.code, EXIT.TEMPFAIL, `exit ${r.code}`);
  t.match(r.output, /EADDRINUSE/);
  t.same(r.messages, [], 'never said ready');
});

t.test('a database written by a newer release exits 74; one that is not a database is salvaged and the start goes on', async (t) => {
  const newer = makeAgentDir('mqtt://127.0.0.1:1');
  mkdirSync(newer.dataDir, { recursive: true, mode: 0o700 });
  const db = new Database(join(newer.dataDir, 'holdfast.db'));
  db.pragma('user_version = 9999');
  db.close();
  const r = await forkRun(newer);
  t.equal(r.code, EXIT.STORE, `exit ${r.code}`);
  t.match(r.output, /SCHEMA_TOO_NEW/);

  const garbage = makeAgentDir('mqtt://127.0.0.1:1');
  mkdirSync(garbage.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(garbage.dataDir, 'holdfast.db'), Buffer.alloc(8192, 0x5a));
  const p = fork(CLI, ['run', '--config', garbage.configFile], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  t.equal(await new Promise((resolve) => p.once('message', resolve)), 'ready', 'quarantined, rebuilt from the segments, ready');
  await new Promise((resolve) => {
    p.on('exit', resolve);
    p.kill('SIGINT');
  });
  t.match(readFileSync(garbage.logFile, 'utf8'), /STORE_SALVAGED/, 'and said so');
});

t.test('a good start says ready over IPC, and a signal stops it with 0', async (t) => {
  const a = makeAgentDir('mqtt://127.0.0.1:1');
  const p = fork(CLI, ['run', '--config', a.configFile], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const ready = await new Promise<unknown>((resolve) => p.once('message', resolve));
  t.equal(ready, 'ready', 'ready, once the store is open and the API listens');
  const code = await new Promise<number | null>((resolve) => {
    p.on('exit', resolve);
    p.kill('SIGINT');
  });
  t.equal(code, 0);
});

t.test('exit statuses by error code', async (t) => {
  const e = (code: string) => new HoldfastError(code as never, 'x');
  t.same(['CONFIG_INVALID', 'KEY_FILE_MISSING', 'SECRET_FILE_INSECURE', 'DATA_DIR_INSECURE'].map((c) => startExitCode(e(c))), [78, 78, 78, 78]);
  t.same(['STORE_UNAVAILABLE', 'SCHEMA_TOO_NEW', 'SQLITE_NOTADB'].map((c) => startExitCode({ code: c })), [74, 74, 74]);
  t.same(['EADDRINUSE', 'EMFILE'].map((c) => startExitCode({ code: c })), [75, 75]);
  t.same([startExitCode(new Error('x')), startExitCode(null), startExitCode({ code: 'EWHATEVER' })], [70, 70, 70]);
});
