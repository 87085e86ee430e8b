/**
 * Test helper: an MQTT 5 subscriber that records everything it receives.
 *
 *   const rec = await subscribe(broker.url, 'holdfast/#', { persistent: true, clientId: 'rec-1' });
 *   await waitFor(() => rec.messages.length === 3, 5000, '3 messages');
 *   await rec.close();
 *
 * persistent: clean start off with a long session expiry and a QoS 1
 * subscription, so the broker queues messages while the recorder is away
 * (broker restarted, or recorder closed and re-created with the same
 * clientId). mqtt.js's own reconnect is on (every 200 ms) for both kinds, so
 * a recorder rejoins by itself after a broker restart.
 */
import { connect, type IClientOptions, type MqttClient } from 'mqtt';

export interface Received {
  topic: string;
  payload: Buffer;
  userProperties?: Record<string, string | string[]>;
  retain: boolean;
}

export interface Recorder {
  messages: Received[];
  client: MqttClient;
  close(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** Session expiry for persistent recorders: one day (far longer than any test). */
const PERSISTENT_SESSION_EXPIRY_S = 24 * 60 * 60;

export async function subscribe(
  url: string,
  topic: string,
  opts: { clientId?: string; persistent?: boolean } = {},
): Promise<Recorder> {
  const persistent = opts.persistent ?? false;
  const clientId = opts.clientId ?? `rec-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  const options: IClientOptions = {
    protocolVersion: 5,
    clientId,
    clean: !persistent,
    reconnectPeriod: 200,
    connectTimeout: CONNECT_TIMEOUT_MS,
    keepalive: 30,
    resubscribe: true,
  };
  if (persistent) options.properties = { sessionExpiryInterval: PERSISTENT_SESSION_EXPIRY_S };

  const messages: Received[] = [];
  const client = connect(url, options);
  // Listener attached before CONNACK so messages queued in a persistent
  // session and delivered right after connecting are not missed.
  client.on('message', (t, payload, packet) => {
    const rec: Received = { topic: t, payload: Buffer.from(payload), retain: packet.retain === true };
    const up = packet.properties?.userProperties;
    if (up) rec.userProperties = { ...up };
    messages.push(rec);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`subscribe(${url}, ${topic}): no CONNACK within ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      const cleanup = () => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
      };
      const fail = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onError = (err: Error) => fail(err);
      const onConnect = () => {
        cleanup();
        resolve();
      };
      client.on('connect', onConnect);
      client.on('error', onError);
    });
    const granted = await client.subscribeAsync(topic, { qos: 1 });
    const bad = granted.find((g) => g.qos !== 0 && g.qos !== 1 && g.qos !== 2);
    if (bad) throw new Error(`subscribe(${url}, ${topic}): broker refused subscription (reason ${bad.qos})`);
  } catch (err) {
    client.end(true);
    throw err;
  }

  // From now on, errors (broker gone, connection refused while reconnecting)
  // are expected in tests; keep them from becoming unhandled 'error' events.
  client.on('error', () => {});

  let closed: Promise<void> | null = null;
  return {
    messages,
    client,
    close(): Promise<void> {
      if (!closed) {
        closed = new Promise<void>((resolve) => {
          // Graceful DISCONNECT when connected (a persistent session stays on
          // the broker); otherwise just stop reconnecting.
          const force = setTimeout(() => client.end(true, {}, () => resolve()), 2000);
          client.end(!client.connected, {}, () => {
            clearTimeout(force);
            resolve();
          });
        });
      }
      return closed;
    },
  };
}
