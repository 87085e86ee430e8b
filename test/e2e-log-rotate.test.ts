/**
 * Log rotation while the agent runs, by the real logrotate with the shipped configuration
 * (scripts/holdfast.logrotate, its paths and user pointed at the test): the old lines stay in the
 * rotated file, the agent reopens its log on SIGHUP (and lives on), the new lines go to the new
 * file, created 0640.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './helpers/mosquitto.js';
import { launchAgent, makeAgentDir, ROOT } from './helpers/agent.js';

const LOGROTATE = '/usr/sbin/logrotate';
const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; pid: number; signal?: string }) : []);

t.test('logrotate moves the log away, SIGHUP reopens it, the agent goes on writing to the new file', async (t) => {
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 50, points: 2 }] });
  const agent = launchAgent(t, a);
  await waitFor(() => lines(a.logFile).some((l) => l.msg.startsWith('uplink down')), 30_000, 'the agent logging');
  t.equal(statSync(a.logFile).mode & 0o777, 0o640, 'the log file is created 0640');

  // The shipped configuration, with the test's paths, user and process instead of production's.
  const me = userInfo().username;
  const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  const conf = readFileSync(join(ROOT, 'scripts/holdfast.logrotate'), 'utf8')
    .replaceAll('/var/log/recovery/engine.log', a.logFile)
    .replaceAll('/var/log/recovery/', `${a.dir}/`)
    .replace('create 0640 holdfast holdfast', `create 0640 ${me} ${group}`)
    .replace(/pkill -HUP .*$/m, `kill -HUP ${agent.proc.pid}`);
  t.match(conf, new RegExp(`kill -HUP ${agent.proc.pid}`), 'postrotate signals this agent');
  const confFile = join(a.dir, 'logrotate.conf');
  writeFileSync(confFile, conf);
  const before = lines(a.logFile).length;
  execFileSync(LOGROTATE, ['-f', '-s', join(a.dir, 'logrotate.state'), confFile]);

  const rotated = `${a.logFile}.1`;
  t.ok(existsSync(rotated), 'the old log moved to engine.log.1 (compressed only at the next rotation)');
  t.ok(lines(rotated).length >= before, `the old lines stay there (${lines(rotated).length})`);
  await waitFor(() => lines(a.logFile).some((l) => l.msg === 'log file reopened'), 20_000, 'the reopen said in the new file');
  await waitFor(() => lines(a.logFile).filter((l) => l.msg.startsWith('uplink down')).length >= 1 || lines(a.logFile).length >= 3, 30_000, 'new lines in the new file');
  t.ok(lines(a.logFile).every((l) => l.pid === agent.proc.pid), 'written by the same process: SIGHUP did not stop it');
  t.equal(agent.proc.exitCode, null, 'still running');
  t.equal(statSync(a.logFile).mode & 0o777, 0o640, 'the new file is 0640 too');
  const n = lines(rotated).length;
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(lines(rotated).length, n, 'nothing more goes to the rotated file');
  t.equal(await agent.stop(), 0, 'and it stops cleanly afterwards');
});
