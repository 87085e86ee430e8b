/**
 * A file the config names goes missing while the agent runs: the MQTT passwordFile (read at each
 * connect) is removed, and the broker restarted so that the agent must reconnect. The agent stays
 * alive: each connect fails with CONFIG_FILE_MISSING (error log line, a recovery event, the
 * holdfast_link_failures_total metric), the lane keeps retrying on its backoff, data waits in the
 * store; once the file is back (mode 0600) the lane reconnects by itself and delivers what waited.
 * A password file made readable by others is refused the same way (SECRET_FILE_INSECURE).
 */
import t from 'tap';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { count, launchAgent, log, makeAgentDir } from './helpers/agent.js';
import { tempDir } from './helpers/config-fixtures.js';

const logLines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; code?: string; msg: string; attempt?: number });

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

t.test('passwordFile removed at run time: a clear code, an event, a metric, the agent alive, the lane retrying and back by itself', async (t) => {
  const broker = await startBroker({ users: { gw: 's3cret' } });
  const secrets = tempDir(t);
  const pw = join(secrets, 'mqtt.pw');
  const writePw = (mode: number) => {
    writeFileSync(pw, 's3cret\n');
    chmodSync(pw, mode);
  };
  writePw(0o600);
  const a = makeAgentDir(broker.url, {}, { username: 'gw', passwordFile: pw });
  const agent = launchAgent(t, a, () => broker.kill());
  const delivered = () => count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'");
  const pending = () => count(a, "SELECT count(*) FROM recovery_tasks WHERE status = 'pending'");
  await waitFor(() => delivered() > 0, 30_000, 'deliveries with the password read from the file');
  const port = Number(/"port":(\d+),"msg":"HTTP server/.exec(log(a))?.[1]);

  // The file goes (a rotation half done); the broker restarts, so the agent must connect again.
  rmSync(pw);
  await broker.stop();
  await broker.start();
  const missing = () => logLines(log(a)).filter((l) => l.code === 'CONFIG_FILE_MISSING');
  const refusedConnects = () => metric(port, 'holdfast_link_failures_total{uplink="broker",code="CONFIG_FILE_MISSING"}');
  await waitFor(async () => (await refusedConnects()) >= 3, 30_000, 'three connect attempts refused for the missing file (the lane retrying)');
  t.ok(missing().some((l) => /uplink down/.test(l.msg)), 'the retries are logged with the code too');
  const first = missing()[0];
  t.equal(first.level, 50, 'said once at error level');
  t.match(first.msg, `uplink cannot connect: passwordFile: ${pw} does not exist`, 'naming the file');
  t.ok(count(a, "SELECT count(*) FROM recovery_events WHERE scope = 'uplink' AND kind = 'config' AND code = 'CONFIG_FILE_MISSING' AND fault_class = 'config'") === 1, 'one recovery event for the run of failures');
  t.equal(agent.proc.exitCode, null, 'the agent is alive');
  t.notMatch(agent.output(), /ENOENT|Uncaught|Error:/, 'no crash, no stack trace on stdout/stderr');
  const waiting = pending();
  await waitFor(() => pending() > waiting, 30_000, 'readings still committed while the uplink waits');

  // Readable by others: refused as insecure, not sent.
  writePw(0o644);
  await waitFor(() => logLines(log(a)).some((l) => l.code === 'SECRET_FILE_INSECURE'), 30_000, 'a 0644 password file refused');
  t.ok(count(a, "SELECT count(*) FROM recovery_events WHERE kind = 'config' AND code = 'SECRET_FILE_INSECURE'") === 1, 'its own event');
  t.equal(broker.connectCount(), 1, 'no CONNECT reached the broker since the restart: the password was never sent');

  // Fixed: the lane reconnects on its own and delivers what waited.
  chmodSync(pw, 0o600);
  const before = delivered();
  await waitFor(() => delivered() > before + waiting, 60_000, 'the backlog delivered after the file came back');
  t.match(log(a), /uplink connected/, 'reconnected');
  t.equal(agent.proc.exitCode, null, 'still running');
});
