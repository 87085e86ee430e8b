/**
 * MQTT uplink driver (mqtt.js 5, MQTT 5, QoS 1). A task is delivered only on PUBACK with a
 * reason code below 0x80. The idempotency key travels in the JSON payload and as the MQTT 5 user
 * property `idempotency_key`. Retained `status` with a birth message and a last will.
 *
 * mqtt.js would reconnect every second with no jitter; here reconnectPeriod is 0 and each
 * connect() is one attempt: the lane decides when to try again (jittered backoff, breaker).
 * Batches larger than the smaller of our maxPacketBytes and the broker's advertised
 * Maximum Packet Size are split into parts that each fit.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { performance } from 'node:perf_hooks';
import type { RawFailure } from '../uplink.js';
import type { ConnectResult, OutboundMessage, SendResult, UplinkDriver } from '../uplink.js';
import { envelopes } from './envelope.js';
import { AckOnlyStore } from './outgoing-store.js';
import { clampDelay, within } from '../timer.js';
import { readSmallFile } from '../files.js';
import { registerSecret } from '../redact.js';

/** A password file is a line; anything near this is not one. */
const PASSWORD_MAX_BYTES = 64 * 1024;
/** close() without a budget: up to 1 s for the offline status, 2 s in all. */
const CLOSE_BUDGET_MS = 2000;

export interface MqttDriverOptions {
  name: string;
  url: string;
  gatewayId: string;
  topicPrefix: string;
  clientId?: string;
  username?: string;
  passwordFile?: string;
  keepaliveS: number;
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  maxPacketBytes: number;
  version: string;
  now?: () => number;
}

type ErrWithCode = Error & { code?: string | number };

const quiet = (): void => {};

function rawOf(e: ErrWithCode, kind: RawFailure['kind']): RawFailure {
  if (typeof e.code === 'number') return { kind, code: e.code, message: e.message };
  if (/connack timeout/i.test(e.message)) return { kind: 'timeout', code: 'ETIMEDOUT', message: 'no CONNACK in time' };
  if (typeof e.code === 'string' && /CERT|SELF_SIGNED|ALTNAME/.test(e.code)) return { kind: 'tls', code: e.code, message: e.message };
  return { kind: 'socket', code: e.code, message: e.message };
}

export class MqttDriver implements UplinkDriver {
  readonly name: string;
  private client: MqttClient | null = null;
  private downCb: ((f: RawFailure) => void) | null = null;
  private brokerMaxPacket = Infinity;
  private receiveMaximum = Infinity;
  /** Publishes waiting for their PUBACK, oldest first (one ackTimeoutMs for all: deadlines ascend). */
  private readonly inflight = new Map<number, { finish: (r: RawFailure | null) => void; deadline: number }>();
  /** One timer for the oldest in-flight deadline (not one per publish). */
  private ackTimer: NodeJS.Timeout | null = null;
  private nextToken = 1;
  private readonly now: () => number;
  private readonly telemetryTopic: string;
  /** Events (field faults) waiting for a connection: bounded, oldest dropped and counted. */
  private readonly pendingEvents: { topic: string; payload: string; retain: boolean }[] = [];
  /** Topics the agent listens on (remote config and commands), subscribed again on every connect. */
  private inbound: { topics: string[]; cb: (topic: string, payload: Buffer) => void; maxBytes: number } | null = null;
  eventsDropped = 0;
  private readonly statusTopic: string;

  constructor(private readonly opts: MqttDriverOptions) {
    this.name = opts.name;
    this.now = opts.now ?? Date.now;
    this.telemetryTopic = `${opts.topicPrefix}/telemetry`;
    this.statusTopic = `${opts.topicPrefix}/status`;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  get sendWindow(): number {
    return this.receiveMaximum;
  }

  onDown(cb: (f: RawFailure) => void): void {
    this.downCb = cb;
  }

  /**
   * Delivers messages on `suffixes` (under the topic prefix) to `cb`, subscribed QoS 1 on every
   * connect (clean sessions: nothing is remembered). The driver only delivers; what a message
   * means is the caller's business. Packets above `maxBytes` are not even sent to us: the
   * CONNECT's Maximum Packet Size tells the broker to drop them (MQTT 5), so memory stays bounded.
   */
  onMessage(suffixes: string[], cb: (topic: string, payload: Buffer) => void, maxBytes: number): void {
    this.inbound = { topics: suffixes.map((s) => `${this.opts.topicPrefix}/${s}`), cb, maxBytes };
    if (this.client?.connected) this.listen(this.client);
  }

  /** The topic prefix messages are published and received under. */
  get prefix(): string {
    return this.opts.topicPrefix;
  }

  private listen(client: MqttClient): void {
    const inb = this.inbound;
    if (!inb) return;
    client.removeAllListeners('message');
    client.on('message', (topic, payload) => inb.cb(topic, payload));
    client.subscribe(inb.topics, { qos: 1 }, () => {});
  }

  private status(state: 'online' | 'offline'): string {
    return JSON.stringify({ state, gatewayId: this.opts.gatewayId, version: this.opts.version, ts: this.now() });
  }

  /**
   * The last will, fixed at CONNECT: the broker publishes it when the agent is gone, a moment
   * nobody can stamp in advance. So it carries no `ts` (the subscriber's receive time is when the
   * broker noticed) and says since when the connection it ends was up.
   */
  private will(): string {
    return JSON.stringify({ state: 'offline', gatewayId: this.opts.gatewayId, version: this.opts.version, connectedAt: this.now(), will: true });
  }

  connect(): Promise<ConnectResult> {
    this.drop();
    const opts: IClientOptions = {
      protocolVersion: 5,
      clientId: this.opts.clientId ?? `holdfast-${this.opts.gatewayId}-${this.opts.name}`,
      clean: true,
      keepalive: this.opts.keepaliveS,
      connectTimeout: this.opts.connectTimeoutMs,
      reconnectPeriod: 0,
      resubscribe: false,
      queueQoSZero: false,
      properties: { maximumPacketSize: this.inbound ? this.inbound.maxBytes : 268435455 },
      // Tracks PUBACKs without keeping mqtt.js's copy of each payload (outgoing-store.ts).
      outgoingStore: new AckOnlyStore(),
      // mqtt.js's own debug trace (DEBUG=mqttjs*) only when asked for: its logger collects its
      // arguments into an array on each of the dozen calls a publish makes, enabled or not.
      log: process.env.DEBUG ? undefined : quiet,
      will: { topic: this.statusTopic, payload: Buffer.from(this.will()), qos: 1, retain: true },
    };
    if (this.opts.username !== undefined) opts.username = this.opts.username;
    if (this.opts.passwordFile) {
      // Read at each connect, so a rotated password is picked up; a missing one is a failed connect.
      const pw = readSmallFile(this.opts.passwordFile, { secret: true, maxBytes: PASSWORD_MAX_BYTES });
      if (!pw.ok) return Promise.resolve({ ok: false, failure: { kind: 'file', code: pw.code, message: `passwordFile: ${pw.message}` } });
      opts.password = pw.data.toString('utf8').trim();
      registerSecret(opts.password);
    }
    const client = mqtt.connect(this.opts.url, opts);
    this.client = client;
    return new Promise<ConnectResult>((resolve) => {
      let settled = false;
      const settle = (r: ConnectResult) => {
        if (settled) return;
        settled = true;
        if (!r.ok) this.drop();
        resolve(r);
      };
      client.on('connect', (connack) => {
        this.brokerMaxPacket = connack.properties?.maximumPacketSize ?? Infinity;
        this.receiveMaximum = connack.properties?.receiveMaximum ?? Infinity;
        client.publish(this.statusTopic, this.status('online'), { qos: 1, retain: true });
        for (const e of this.pendingEvents.splice(0)) client.publish(e.topic, e.payload, { qos: 1, retain: e.retain });
        this.listen(client);
        settle({ ok: true });
      });
      client.on('error', (e: ErrWithCode) => settle({ ok: false, failure: rawOf(e, typeof e.code === 'number' ? 'connack' : 'socket') }));
      client.on('disconnect', (p) => {
        const rc = p.reasonCode ?? 0;
        if (rc >= 0x80) this.lost({ kind: 'disconnect', code: rc, message: `broker sent DISCONNECT ${rc}` });
      });
      client.on('close', () => {
        if (!settled) settle({ ok: false, failure: { kind: 'socket', code: 'ECONNRESET', message: 'connection closed before CONNACK' } });
        else if (this.client === client) this.lost({ kind: 'disconnect', message: 'connection closed' });
      });
    });
  }

  /** The connection is gone: fail everything in flight, tell the lane once. */
  private lost(f: RawFailure): void {
    if (!this.client) return;
    this.drop();
    for (const p of [...this.inflight.values()]) p.finish(f.code === undefined ? { kind: 'disconnect', message: f.message } : f);
    this.inflight.clear();
    this.downCb?.(f);
  }

  private drop(): void {
    const c = this.client;
    this.client = null;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => {});
      c.end(true);
    }
  }

  async send(msg: OutboundMessage): Promise<SendResult> {
    const requestAt = this.now();
    const client = this.client;
    if (!client || !client.connected) return { ok: false, requestAt, failure: { kind: 'disconnect', message: 'not connected' } };
    const limit = Math.min(this.opts.maxPacketBytes, this.brokerMaxPacket);
    const parts = envelopes(msg, this.opts.gatewayId, limit - this.overhead(msg.key));
    if (parts === null) {
      return { ok: false, requestAt, failure: { kind: 'puback', code: 0x95, message: `a single reading does not fit in ${limit} bytes` } };
    }
    if (parts.length === 1) {
      const bad = await this.publishOne(client, parts[0], msg.key, 0, 1);
      return bad ? { ok: false, requestAt, failure: bad } : { ok: true, requestAt, ackAt: this.now() };
    }
    const results = await Promise.all(parts.map((p, i) => this.publishOne(client, p, msg.key, i, parts.length)));
    const bad = results.find((r) => r !== null);
    if (bad) return { ok: false, requestAt, failure: bad };
    return { ok: true, requestAt, ackAt: this.now() };
  }

  /**
   * Publishes an event (e.g. a field fault on `<prefix>/faults`), QoS 1, best effort: events are
   * also recovery_events rows in the store, so a dropped message loses no record. While
   * disconnected up to 1000 wait for the next connection. `retain`: the broker keeps the last
   * one for later subscribers (remote config's `config/state`).
   */
  publishEvent(suffix: string, payload: unknown, retain = false): void {
    const e = { topic: `${this.opts.topicPrefix}/${suffix}`, payload: JSON.stringify(payload), retain };
    const c = this.client;
    if (c?.connected) {
      c.publish(e.topic, e.payload, { qos: 1, retain });
      return;
    }
    if (this.pendingEvents.length >= 1000) {
      this.pendingEvents.shift();
      this.eventsDropped++;
    }
    this.pendingEvents.push(e);
  }

  /** Bytes of a PUBLISH other than the payload: fixed header, topic, packet id, properties. */
  private overhead(key: string): number {
    return 5 + 2 + Buffer.byteLength(this.telemetryTopic) + 2 + 4 + (1 + 2 + 15 + 2 + Buffer.byteLength(key)) + (1 + 2 + 4 + 2 + 12) + 16;
  }

  /**
   * Fails every publish whose PUBACK is overdue (MQTT_ACK_TIMEOUT) and sets the timer for the
   * next deadline. The in-flight map is in send order and every publish gets the same
   * ackTimeoutMs, so the overdue ones are at its head.
   */
  private expireAcks(): void {
    this.ackTimer = null;
    const now = performance.now();
    for (const p of this.inflight.values()) {
      if (p.deadline > now) {
        this.armAcks(p.deadline - now);
        return;
      }
      p.finish({ kind: 'timeout', code: 'MQTT_ACK_TIMEOUT', message: `no PUBACK within ${this.opts.ackTimeoutMs} ms` });
    }
  }

  private armAcks(ms: number): void {
    if (this.ackTimer === null) this.ackTimer = setTimeout(() => this.expireAcks(), clampDelay(Math.max(1, Math.ceil(ms))));
  }

  private publishOne(client: MqttClient, payload: Buffer, key: string, part: number, parts: number): Promise<RawFailure | null> {
    return new Promise((resolve) => {
      const token = this.nextToken++;
      let done = false;
      const finish = (r: RawFailure | null) => {
        if (done) return;
        done = true;
        this.inflight.delete(token);
        if (this.inflight.size === 0 && this.ackTimer !== null) {
          clearTimeout(this.ackTimer);
          this.ackTimer = null;
        }
        resolve(r);
      };
      this.inflight.set(token, { finish, deadline: performance.now() + this.opts.ackTimeoutMs });
      this.armAcks(this.opts.ackTimeoutMs);
      const userProperties: Record<string, string> = { idempotency_key: key };
      if (parts > 1) userProperties.part = `${part + 1}/${parts}`;
      client.publish(this.telemetryTopic, payload, { qos: 1, properties: { userProperties, contentType: 'application/json' } }, (err) => {
        if (!err) finish(null);
        else finish(rawOf(err as ErrWithCode, 'puback'));
      });
    });
  }

  /**
   * Ends the connection within `budgetMs`, whatever the broker does. Publishes in flight fail at
   * once as a disconnect (their tasks stay pending). The offline status gets up to half the
   * budget for its PUBACK. Then a clean DISCONNECT if the broker has acknowledged everything;
   * otherwise the socket is destroyed, because mqtt.js's end(false) waits for every PUBACK (for
   * ever, from a broker that holds the connection and never answers) and then for the broker to
   * close its side. The broker publishes our will (offline) when it sees the connection gone.
   */
  async close(budgetMs = CLOSE_BUDGET_MS): Promise<void> {
    const c = this.client;
    this.client = null;
    for (const p of [...this.inflight.values()]) p.finish({ kind: 'disconnect', message: 'closing' });
    if (!c) return;
    c.removeAllListeners();
    c.on('error', () => {});
    const until = performance.now() + Math.max(0, budgetMs);
    if (c.connected) {
      await within(new Promise<void>((res) => c.publish(this.statusTopic, this.status('offline'), { qos: 1, retain: true }, () => res())), budgetMs / 2);
    }
    const force = Object.keys(c.outgoing).length > 0;
    const ended = new Promise<void>((res) => c.end(force, {}, () => res()));
    if (!(await within(ended, until - performance.now()))) {
      c.stream?.destroy();
      await within(ended, 100);
    }
  }
}
