/**
 * Proves the test harness (test/helpers/mosquitto.ts, test/helpers/mqtt-sub.ts)
 * works against a real Mosquitto broker.
 */
import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { freePort, startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';

/** true if something accepts TCP connections on 127.0.0.1:port */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

let pubSeq = 0;
function publisher(url: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return connectAsync(
    url,
    { protocolVersion: 5, clientId: `pub-${process.pid}-${++pubSeq}`, reconnectPeriod: 0, ...extra },
  );
}

t.test('waitFor and freePort', async (t) => {
  let n = 0;
  await waitFor(() => ++n >= 3, 1000, 'three polls', 5);
  t.ok(n >= 3);
  await t.rejects(waitFor(() => false, 50, 'never'), { message: 'timed out after 50 ms waiting for never' });
  await t.rejects(
    waitFor(async () => false, 30, 'async never'),
    { message: 'timed out after 30 ms waiting for async never' },
  );
  const a = await freePort();
  const b = await freePort();
  t.not(a, b, 'freePort does not hand out the same port twice');
  t.equal(await portOpen(a), false, 'free port is closed');
});

t.test('publish/receive, stop cuts the link, restart keeps the persistent session', async (t) => {
  const broker = await startBroker({ persistence: true, maxPacketSize: 65536, extraConf: ['# extra line'] });
  t.teardown(() => broker.stop());
  t.ok(broker.running, 'running after startBroker');
  t.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
  t.ok(await portOpen(broker.port), 'port accepts connections');
  const conf = readFileSync(path.join(broker.dir, 'mosquitto.conf'), 'utf8');
  t.match(conf, `listener ${broker.port} 127.0.0.1`);
  t.match(conf, /^persistence true$/m);
  t.match(conf, /^max_packet_size 65536$/m);
  t.match(conf, /^# extra line$/m);

  const rec = await subscribe(broker.url, 'hf/test/#', { persistent: true, clientId: 'rec-persist' });
  t.teardown(() => rec.close());
  const sessionPresent: boolean[] = [];
  rec.client.on('connect', (connack) => sessionPresent.push(connack.sessionPresent === true));

  const pub = await publisher(broker.url);
  await pub.publishAsync('hf/test/a', 'hello', {
    qos: 1,
    properties: { userProperties: { batch: 'b1', seq: '1' } },
  });
  await pub.endAsync();
  await waitFor(() => rec.messages.length >= 1, 5000, 'first message');
  const m = rec.messages[0];
  t.equal(m.topic, 'hf/test/a');
  t.equal(m.payload.toString(), 'hello');
  t.ok(Buffer.isBuffer(m.payload));
  t.same(m.userProperties, { batch: 'b1', seq: '1' });
  t.equal(m.retain, false);

  // Cut the link.
  const port = broker.port;
  await broker.stop();
  t.equal(broker.running, false, 'not running after stop');
  t.equal(await portOpen(port), false, 'port closed after stop');
  await waitFor(() => !rec.client.connected, 5000, 'recorder to notice the broker is gone');
  await broker.stop(); // idempotent

  // Restore it: same port, and the recorder rejoins by itself.
  await broker.start();
  t.ok(broker.running, 'running after restart');
  t.equal(broker.port, port, 'same port after restart');
  const pub2 = await publisher(broker.url);
  for (let i = 1; i <= 3; i++) await pub2.publishAsync('hf/test/b', `after-${i}`, { qos: 1 });
  await pub2.endAsync();
  await waitFor(() => rec.messages.length >= 4, 10_000, 'messages published after restart');
  t.same(
    rec.messages.slice(1).map((x) => x.payload.toString()),
    ['after-1', 'after-2', 'after-3'],
  );
  t.ok(sessionPresent.length >= 1, 'recorder reconnected');
  t.equal(sessionPresent[sessionPresent.length - 1], true, 'session survived the broker restart');
  t.match(broker.log(), /Saving in-memory database/, 'persistence saved on SIGTERM');
});

t.test('messages queued for an offline persistent session survive a broker restart', async (t) => {
  const broker = await startBroker({ persistence: true });
  t.teardown(() => broker.kill());
  const rec1 = await subscribe(broker.url, 'hf/q/#', { persistent: true, clientId: 'rec-queue' });
  await rec1.close();

  const pub = await publisher(broker.url);
  for (let i = 1; i <= 5; i++) {
    await pub.publishAsync('hf/q/x', `q-${i}`, { qos: 1, properties: { userProperties: { i: String(i) } } });
  }
  await pub.endAsync();

  await broker.stop();
  t.ok(existsSync(path.join(broker.dir, 'mosquitto.db')), 'persistence file written');
  await broker.start();

  const rec2 = await subscribe(broker.url, 'hf/q/#', { persistent: true, clientId: 'rec-queue' });
  t.teardown(() => rec2.close());
  await waitFor(() => rec2.messages.length >= 5, 10_000, 'queued messages');
  t.same(
    rec2.messages.map((x) => x.payload.toString()),
    ['q-1', 'q-2', 'q-3', 'q-4', 'q-5'],
  );
  t.same(
    rec2.messages.map((x) => x.userProperties?.i),
    ['1', '2', '3', '4', '5'],
  );

  // Non-persistent recorder: clean session, still receives.
  const rec3 = await subscribe(broker.url, 'hf/clean/#');
  t.teardown(() => rec3.close());
  const pub2 = await publisher(broker.url);
  await pub2.publishAsync('hf/clean/1', 'c', { qos: 1, retain: true });
  await pub2.endAsync();
  await waitFor(() => rec3.messages.length >= 1, 5000, 'clean-session message');
  t.equal(rec3.messages[0].payload.toString(), 'c');
  t.equal(rec3.messages[0].retain, false, 'live delivery is not flagged retained');
  const rec4 = await subscribe(broker.url, 'hf/clean/#');
  t.teardown(() => rec4.close());
  await waitFor(() => rec4.messages.length >= 1, 5000, 'retained message');
  t.equal(rec4.messages[0].retain, true, 'retained message flagged on subscribe');

  await broker.kill();
  t.equal(broker.running, false, 'not running after kill');
  t.equal(await portOpen(broker.port), false, 'port closed after kill');
});

t.test('password-protected broker refuses bad credentials and counts CONNECTs', async (t) => {
  const broker = await startBroker({ users: { alice: 's3cret', bob: 'pw-2' } });
  t.teardown(() => broker.stop());
  t.equal(broker.connectCount(), 0, 'readiness probe is not counted as a CONNECT');

  for (let i = 1; i <= 3; i++) {
    const err = await publisher(broker.url, { username: 'alice', password: 'wrong' }).then(
      async (c) => {
        await c.endAsync();
        return null;
      },
      (e: unknown) => e as Error & { code?: unknown },
    );
    t.ok(err, `attempt ${i} refused`);
    t.ok(err && [134, 135].includes(err.code as number), `reason code 134/135 (got ${String(err?.code)})`);
    await waitFor(() => broker.connectCount() === i, 5000, `connectCount() === ${i}`);
  }

  const anon = await publisher(broker.url).then(
    async (c) => {
      await c.endAsync();
      return null;
    },
    (e: unknown) => e as Error & { code?: unknown },
  );
  t.ok(anon && [134, 135].includes(anon.code as number), 'anonymous refused');
  await waitFor(() => broker.connectCount() === 4, 5000, 'connectCount() === 4');

  for (const [username, password] of [
    ['alice', 's3cret'],
    ['bob', 'pw-2'],
  ]) {
    const ok = await publisher(broker.url, { username, password });
    t.ok(ok.connected, `${username} connects with the right password`);
    await ok.publishAsync('hf/auth', 'x', { qos: 1 });
    await ok.endAsync();
  }
  await waitFor(() => broker.connectCount() === 6, 5000, 'connectCount() === 6');

  // The count spans restarts (the log file is appended to).
  await broker.stop();
  await broker.start();
  const again = await publisher(broker.url, { username: 'bob', password: 'pw-2' });
  await again.endAsync();
  await waitFor(() => broker.connectCount() === 7, 5000, 'connectCount() === 7 after restart');
});
