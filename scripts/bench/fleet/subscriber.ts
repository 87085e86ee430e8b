/**
 * The upstream consumer of the fleet bench: one MQTT 5 subscriber to every gateway's telemetry,
 * straight on the broker (not through the proxy), counting each batch by its idempotency key
 * (user property `idempotency_key`), so loss and duplicates are seen where they would matter.
 */
import mqtt, { type MqttClient } from 'mqtt';

export class Subscriber {
  private client: MqttClient | null = null;
  /** idempotency key -> times received */
  readonly seen = new Map<string, number>();
  received = 0;

  constructor(private readonly url: string) {}

  /** Connects and subscribes; resolves once the SUBACK is in. */
  async connect(): Promise<void> {
    this.client?.end(true);
    const c = mqtt.connect(this.url, { protocolVersion: 5, clean: true, reconnectPeriod: 0, clientId: `fleet-bench-sub-${process.pid}` });
    this.client = c;
    c.on('error', () => {});
    c.on('message', (_topic, _payload, packet) => {
      const key = packet.properties?.userProperties?.idempotency_key;
      if (typeof key !== 'string') return;
      this.received++;
      this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
    });
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => c.subscribe('holdfast/+/telemetry', { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      c.once('error', reject);
    });
  }

  reset(): void {
    this.seen.clear();
    this.received = 0;
  }

  close(): void {
    this.client?.end(true);
    this.client = null;
  }
}
