/**
 * A technician troubleshooting with DEBUG=mqttjs* (as docs/troubleshooting.md suggests) gets
 * mqtt.js's trace on stderr, which pm2 and journald keep in files: the MQTT password must not be
 * in it, neither as text nor as the bytes of a Buffer dump (drivers/redact.ts).
 */
import t from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { count, makeAgentDir, startAgent } from './helpers/agent.js';
import { redact, registerSecret } from '../drivers/redact.js';

const PASSWORD = 'Pw-9f3c1e7a-secret';
const hex = (s: string) => Buffer.from(s).toString('hex').replace(/(..)(?!$)/g, '$1 ');

t.test('DEBUG=mqttjs*: the trace is there, the password is not', async (t) => {
  const broker = await startBroker({ users: { holdfast: PASSWORD } });
  const a = makeAgentDir(broker.url, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 50, points: 2 }] }, {
    username: 'holdfast', passwordFile: 'mqtt.pass',
  });
  const passFile = join(a.dir, 'mqtt.pass');
  writeFileSync(passFile, `${PASSWORD}\n`);
  chmodSync(passFile, 0o600);
  const agent = startAgent(a, { DEBUG: 'mqttjs*' });
  t.teardown(async () => {
    if (agent.proc.exitCode === null) await agent.kill9();
    await broker.stop();
  });
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`) > 0, 30_000, 'a delivery over the authenticated connection');
  t.equal(await agent.stop(), 0, 'clean stop');
  const out = agent.output();
  t.match(out, /mqttjs:client/, 'the mqtt.js trace was written');
  t.match(out, /\[redacted\]/, 'where the password was, [redacted]');
  t.notOk(out.includes(PASSWORD), 'the password is nowhere in stdout/stderr');
  t.notOk(out.includes(hex(PASSWORD)), '... nor its bytes');
});

t.test('redact(): every registered secret, in text and as Buffer bytes', async (t) => {
  t.equal(redact('nothing registered here'), 'nothing registered here');
  registerSecret('tok-123');
  registerSecret('');
  t.equal(redact('Bearer tok-123 and tok-123'), 'Bearer [redacted] and [redacted]');
  t.equal(redact(`<Buffer ${hex('tok-123')}>`), '<Buffer [redacted]>');
  t.equal(redact('tok-12'), 'tok-12', 'a part of a secret is not the secret');
});
