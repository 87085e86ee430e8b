/**
 * drivers/mqtt: a publish is delivered only on its PUBACK, and one that gets none in ackTimeoutMs
 * fails as MQTT_ACK_TIMEOUT (the lane then keeps the batch and retries it). Against a real
 * Mosquitto that hangs: SIGSTOP keeps its connections open and answers nothing, as a broker
 * wedged on a full disk or a stalled host does; SIGCONT wakes it.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { MqttDriver } from '../drivers/mqtt/client.js';
import { AckOnlyStore } from '../drivers/mqtt/outgoing-store.js';
import type { OutboundMessage } from '../drivers/uplink.js';
import { startBroker } from './helpers/mosquitto.js';

const driverFor = (url: string, ackTimeoutMs: number) =>
  new MqttDriver({ name: 'up', url, gatewayId: 'gw', topicPrefix: 'holdfast/gw', keepaliveS: 60, connectTimeoutMs: 5000, ackTimeoutMs, maxPacketBytes: 1 << 20, version: 'test' });

const msg = (i: number): OutboundMessage => ({ taskId: i, key: `key-${i}`, seq: i, device: 'dev-1', historical: false, readingCount: 1, readings: Buffer.from(`[{"point":"p","ts":${i},"value":${i}}]`) });

t.test('no PUBACK within ackTimeoutMs: MQTT_ACK_TIMEOUT for each publish in flight; the next ones go through once the broker answers again', async (t) => {
  const broker = await startBroker();
  t.teardown(async () => (broker.resume(), await broker.kill()));
  const driver = driverFor(broker.url, 1000);
  t.teardown(() => driver.close());
  t.match(await driver.connect(), { ok: true });
  t.match(await driver.send(msg(1)), { ok: true }, 'delivered while the broker answers');

  broker.pause();
  const t0 = Date.now();
  const results = await Promise.all([2, 3, 4].map((i) => driver.send(msg(i))));
  const took = Date.now() - t0;
  for (const r of results) t.match(r, { ok: false, failure: { kind: 'timeout', code: 'MQTT_ACK_TIMEOUT' } }, 'each fails as an ack timeout');
  t.ok(took >= 990, `not before ackTimeoutMs (${took} ms)`);
  t.equal((driver as unknown as { inflight: Map<number, unknown> }).inflight.size, 0, 'nothing left in flight');
  t.equal((driver as unknown as { ackTimer: unknown }).ackTimer, null, 'and no timer armed');

  // Each publish gets its own full ackTimeoutMs: send one, wait most of it, send another; the
  // first fails, the broker wakes, the second is acknowledged.
  const a = driver.send(msg(5));
  await new Promise((r) => setTimeout(r, 300));
  const b = driver.send(msg(6));
  t.match(await a, { ok: false, failure: { code: 'MQTT_ACK_TIMEOUT' } }, 'the first times out');
  broker.resume();
  t.match(await b, { ok: true }, 'the second, sent 300 ms later, still had time for its PUBACK');

  t.match(await driver.send(msg(7)), { ok: true }, 'delivered again once the broker answers');
});

t.test('close() with publishes in flight: each fails as a disconnect, none waits for its timeout', async (t) => {
  const broker = await startBroker();
  t.teardown(async () => (broker.resume(), await broker.kill()));
  const driver = driverFor(broker.url, 60_000);
  t.match(await driver.connect(), { ok: true });
  broker.pause();
  const pending = [1, 2].map((i) => driver.send(msg(i)));
  await new Promise((r) => setTimeout(r, 50));
  const closing = driver.close();
  const results = await Promise.all(pending);
  for (const r of results) t.match(r, { ok: false, failure: { kind: 'disconnect' } });
  broker.resume();
  await closing;
  t.equal((driver as unknown as { ackTimer: unknown }).ackTimer, null, 'no timer left armed');
});

t.test('AckOnlyStore: mqtt.js tracks each publish until its PUBACK without keeping a copy of the payload, and never resends one', async (t) => {
  // The store alone: a PUBLISH loses its payload, anything else is kept as is; nothing to resend.
  const store = new AckOnlyStore();
  const publish = { cmd: 'publish', topic: 't', payload: Buffer.alloc(50_000, 1), qos: 1, retain: false, dup: false, messageId: 7 } as const;
  store.put(publish, () => {});
  store.put({ cmd: 'pubrel', messageId: 8 }, () => {});
  t.equal(publish.payload.length, 50_000, 'the caller\'s packet is not changed');
  const got = await new Promise<unknown>((res) => store.get({ messageId: 7 }, (_e, p) => res(p)));
  t.match(got, { cmd: 'publish', topic: 't', messageId: 7, qos: 1 });
  t.equal((got as { payload: Buffer }).payload.length, 0, 'kept without its payload');
  t.match(await new Promise((res) => store.get({ messageId: 8 }, (_e, p) => res(p))), { cmd: 'pubrel', messageId: 8 });
  const replay: unknown[] = [];
  await new Promise<void>((res) => store.createStream().on('data', (p: unknown) => replay.push(p)).on('end', res));
  t.same(replay, [], 'nothing for mqtt.js to resend on a reconnect');
  t.match(await new Promise((res) => store.del({ messageId: 7 }, (e, p) => res(e ?? p))), { messageId: 7 }, 'removed on its PUBACK');

  // In the driver, against a broker that does not answer: the publishes wait in the store, empty.
  const broker = await startBroker();
  t.teardown(async () => (broker.resume(), await broker.kill()));
  const driver = driverFor(broker.url, 60_000);
  t.teardown(() => driver.close());
  t.match(await driver.connect(), { ok: true });
  broker.pause();
  const pending = [1, 2, 3].map((i) => driver.send(msg(i)));
  await new Promise((r) => setTimeout(r, 100));
  const client = (driver as unknown as { client: { log: { namespace?: string }; outgoingStore: { _inflights: Map<number, { cmd: string; payload: Buffer }> } } }).client;
  if (!process.env.DEBUG) t.equal(client.log.namespace, undefined, "mqtt.js logs to a no-op, not to a 'debug' logger, while DEBUG is unset");
  const held = [...client.outgoingStore._inflights.values()].filter((p) => p.cmd === 'publish');
  t.ok(held.length >= 3, `${held.length} publishes waiting for their PUBACK`);
  t.ok(held.every((p) => p.payload.length === 0), 'none keeps its payload');
  broker.resume();
  for (const r of await Promise.all(pending)) t.match(r, { ok: true }, 'each delivered on its PUBACK');
});

t.test("mqtt.js's own debug trace: off (a no-op logger) unless DEBUG asks for it, then on as usual", async (t) => {
  const broker = await startBroker();
  t.teardown(() => broker.kill());
  const client = new URL('../drivers/mqtt/client.js', import.meta.url).href;
  const script = `const { MqttDriver } = await import(${JSON.stringify(client)});
    const d = new MqttDriver({ name: 'up', url: ${JSON.stringify(broker.url)}, gatewayId: 'gw', topicPrefix: 'holdfast/gw', keepaliveS: 60, connectTimeoutMs: 5000, ackTimeoutMs: 5000, maxPacketBytes: 1 << 20, version: 'test' });
    const c = await d.connect();
    if (!c.ok) throw new Error('no connection');
    await d.close();`;
  const run = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env, timeout: 20_000 });
  const { DEBUG: _, ...env } = process.env;
  const off = run(env);
  t.equal(off.status, 0, off.stderr);
  t.notMatch(off.stderr, /mqttjs/, 'no trace by default');
  const on = run({ ...env, DEBUG: 'mqttjs:client' });
  t.equal(on.status, 0, on.stderr);
  t.match(on.stderr, /mqttjs:client .*connect/, 'DEBUG=mqttjs:client traces the client as mqtt.js documents');
});
