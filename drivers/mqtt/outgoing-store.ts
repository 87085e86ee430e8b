/**
 * mqtt.js's outgoing store for the uplink's client: it tracks each QoS 1 PUBLISH until its
 * PUBACK like mqtt.js's default Store, but keeps no payload, and it never hands a packet back
 * for a resend.
 *
 * Why: mqtt.js deep-copies every QoS 1 PUBLISH (rfdc, payload included) before it puts it in
 * this store, to resend it if the same client reconnects. Ours never does: every connect() is a
 * new client with a clean session (reconnectPeriod 0), and a publish without its PUBACK is
 * failed to the lane, which retries it from the SQLite store. Kept until the PUBACK, each ~50 KB
 * copy would outlive a scavenge or two and its off-heap memory would count towards V8's next full
 * collection ("external memory pressure"), so a long drain would run full collections back to
 * back. Dropped at once, the copy dies young and is freed by the next scavenge.
 */
import { Store, type IStore } from 'mqtt';

type Packet = Parameters<IStore['put']>[0];

const EMPTY = Buffer.alloc(0);

export class AckOnlyStore extends Store {
  override put(packet: Packet, cb: () => void): this {
    return super.put(packet.cmd === 'publish' ? { ...packet, payload: EMPTY } : packet, cb);
  }

  /** Nothing to resend: a new connection is a new client, and the lane resends from the store. */
  override createStream(): ReturnType<IStore['createStream']> {
    return new Store().createStream();
  }
}
