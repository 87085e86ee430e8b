/**
 * Test helper: a TCP server on a free loopback port that answers an MQTT 5 CONNECT with a
 * successful CONNACK and then never acknowledges anything (no PUBACK, no PINGRESP), as a broker
 * wedged behind a full disk does while its listener still works. It records the PUBLISH packets
 * it receives (topic and payload), so a test can see what reached the wire.
 */
import net from 'node:net';

export interface Published {
  topic: string;
  payload: Buffer;
}

export interface SilentBroker {
  url: string;
  port: number;
  /** CONNECT packets answered. */
  connects: number;
  published: Published[];
  close(): Promise<void>;
}

/** MQTT 5 CONNACK: session not present, reason 0 (success), no properties. */
const CONNACK = Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]);

/** Reads an MQTT variable byte integer at `at`; null when the buffer ends first. */
function varint(b: Buffer, at: number): { value: number; next: number } | null {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= b.length) return null;
    value += (b[at + i] & 0x7f) * 128 ** i;
    if ((b[at + i] & 0x80) === 0) return { value, next: at + i + 1 };
  }
  throw new Error('malformed remaining length');
}

function parsePublish(flags: number, body: Buffer): Published {
  const qos = (flags >> 1) & 3;
  const topicLen = body.readUInt16BE(0);
  const topic = body.subarray(2, 2 + topicLen).toString('utf8');
  let at = 2 + topicLen + (qos > 0 ? 2 : 0);
  const props = varint(body, at);
  if (!props) throw new Error('truncated PUBLISH properties');
  at = props.next + props.value;
  return { topic, payload: Buffer.from(body.subarray(at)) };
}

export async function startSilentBroker(): Promise<SilentBroker> {
  const sockets = new Set<net.Socket>();
  const state: SilentBroker = { url: '', port: 0, connects: 0, published: [], close: async () => {} };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        const len = varint(buf, 1);
        if (!len || buf.length < len.next + len.value) return;
        const type = buf[0] >> 4;
        const body = buf.subarray(len.next, len.next + len.value);
        if (type === 1) {
          state.connects++;
          sock.write(CONNACK);
        } else if (type === 3) {
          state.published.push(parsePublish(buf[0] & 0x0f, body));
        }
        buf = buf.subarray(len.next + len.value);
      }
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const addr = server.address();
  state.port = typeof addr === 'object' && addr ? addr.port : 0;
  state.url = `mqtt://127.0.0.1:${state.port}`;
  state.close = () =>
    new Promise<void>((res) => {
      for (const s of sockets) s.destroy();
      server.close(() => res());
    });
  return state;
}
