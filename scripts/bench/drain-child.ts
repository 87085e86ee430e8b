/**
 * The two sides of the drain bench (scripts/bench/drain.ts starts one process of each):
 *   raw   a raw mqtt.js QoS 1 publisher of the exact envelopes the lane sends, a new client each
 *         round, timed from its CONNACK to its last PUBACK;
 *   lane  one real Lane + MqttDriver for the process's life, draining the store's whole backlog
 *         each round (lane.start() in the warm-up, then lane.rescan()).
 * Each tells the parent it is ready, then runs a round each time it is asked and replies with
 * its figures (the parent adds the broker's CPU).
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { topicPrefix } from '../../agent/config/load.js';
import type { Config } from '../../agent/config/types.js';
import { Lane } from '../../agent/forward/lane.js';
import { VERSION } from '../../agent/version.js';
import { MqttDriver } from '../../drivers/mqtt/client.js';
import { envelopes } from '../../drivers/mqtt/envelope.js';
import { loadKeyring, PayloadCodec } from '../../store/codec.js';
import { Store } from '../../store/store.js';
import { schedCpuMs, type DrainRun, type FromChild, type GcTally, type ToChild } from './drain.js';

const UPLINK_INDEX = 0;
const silent = pino({ level: 'silent' });
const now = () => performance.now();

interface Envelope {
  key: string;
  payload: Buffer;
  readings: number;
}

/** The exact messages the lane sends for this store's backlog (historical, one part each). */
function buildEnvelopes(store: Store, codec: PayloadCodec, uplink: string, gatewayId: string, maxBytes: number): Envelope[] {
  const q = store.tasks(uplink);
  const out: Envelope[] = [];
  let after = 0;
  for (;;) {
    const rows = q.fresh(after, Number.MAX_SAFE_INTEGER, 1000);
    if (rows.length === 0) break;
    for (const t of rows) {
      const readings = codec.decode(t.payload, t.key);
      const parts = envelopes({ taskId: t.id, key: t.key, seq: t.payloadId, device: t.device, historical: true, readingCount: t.readingCount, readings }, gatewayId, maxBytes);
      if (!parts || parts.length !== 1) throw new Error('a bench batch does not fit in one message');
      out.push({ key: t.key, payload: parts[0], readings: t.readingCount });
    }
    after = rows[rows.length - 1].id;
  }
  return out;
}

function watchGc(): () => GcTally {
  const tally: GcTally = { minor: 0, minorMs: 0, major: 0, majorMs: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        tally.minor++;
        tally.minorMs += e.duration;
      } else {
        tally.major++;
        tally.majorMs += e.duration;
      }
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => (obs.disconnect(), tally);
}

/** Times one round: `body` resolves when the round's last message is acknowledged (and recorded). */
async function timed(messages: number, readings: number, body: () => Promise<void>): Promise<Omit<DrainRun, 'brokerMs'>> {
  const stopGc = watchGc();
  const c0 = process.cpuUsage();
  const m0 = schedCpuMs('/proc/thread-self/schedstat');
  const t0 = now();
  await body();
  const ms = now() - t0;
  const cpu = process.cpuUsage(c0);
  const mainMs = schedCpuMs('/proc/thread-self/schedstat') - m0;
  return { cpuMs: (cpu.user + cpu.system) / 1000, mainMs, gc: stopGc(), messages, readings, ms, perSec: (readings * 1000) / ms };
}

function mqttOptions(clientId: string): IClientOptions {
  return {
    protocolVersion: 5,
    clientId,
    clean: true,
    keepalive: 30,
    connectTimeout: 10000,
    reconnectPeriod: 0,
    resubscribe: false,
    queueQoSZero: false,
    properties: { maximumPacketSize: 268435455 },
  };
}

/** The limit: mqtt.js QoS 1 publishes of the same payloads, at most `window` unacknowledged, on one client. */
async function rawChild(cfg: Config, window: number, store: Store, codec: PayloadCodec): Promise<void> {
  const up = cfg.uplinks[UPLINK_INDEX];
  if (up.type !== 'mqtt') throw new Error('the bench drains to an mqtt uplink');
  const msgs = buildEnvelopes(store, codec, up.name, cfg.gatewayId, up.maxPacketBytes - 200);
  store.close();
  const topic = `${topicPrefix(cfg, up.topicPrefix)}/telemetry`;
  const readings = msgs.reduce((a, m) => a + m.readings, 0);
  // A new client each round, as the agent makes one per connect() (a reused mqtt.js client with
  // its default store runs major collections a fresh one does not); timed from its CONNACK.
  const round = async () => {
    const client: MqttClient = mqtt.connect(up.url, mqttOptions(`bench-raw-${process.pid}-${Date.now()}`));
    try {
      const w = await new Promise<number>((resolve, reject) => {
        client.once('connect', (ack) => resolve(Math.min(window, ack.properties?.receiveMaximum ?? Infinity)));
        client.once('error', reject);
      });
      return await timed(msgs.length, readings, () =>
        new Promise<void>((resolve, reject) => {
          client.on('close', () => reject(new Error('raw publisher: connection closed')));
          let next = 0;
          let acked = 0;
          const guard = setTimeout(() => reject(new Error(`raw publisher: ${acked}/${msgs.length} acknowledged after 60 s`)), 60_000);
          const done = () => (clearTimeout(guard), resolve());
          const sendOne = () => {
            const m = msgs[next++];
            client.publish(topic, m.payload, { qos: 1, properties: { userProperties: { idempotency_key: m.key }, contentType: 'application/json' } }, (err) => {
              if (err) return reject(err);
              acked++;
              if (next < msgs.length) sendOne();
              else if (acked === msgs.length) done();
            });
          };
          for (let i = 0; i < Math.min(w, msgs.length); i++) sendOne();
          if (msgs.length === 0) done();
        }),
      );
    } finally {
      client.removeAllListeners('close');
      client.end(true);
    }
  };
  serve({ messages: msgs.length, readings, bytes: msgs.reduce((a, m) => a + m.payload.length, 0) }, round);
}

/** Holdfast: one Lane + MqttDriver for the child's life, draining the store's whole backlog each round. */
async function laneChild(cfg: Config, store: Store, codec: PayloadCodec): Promise<void> {
  const { db } = store;
  const up = cfg.uplinks[UPLINK_INDEX];
  if (up.type !== 'mqtt') throw new Error('the bench drains to an mqtt uplink');
  const uplink = up.name;
  const count = db.prepare(`SELECT count(*) AS n, coalesce(sum(reading_count), 0) AS r FROM recovery_tasks WHERE uplink = ? AND status = 'pending'`);
  const all = count.get(uplink) as { n: number; r: number };
  // Every task of the uplink back to never-attempted (before each round after the first).
  const reset = db.prepare(
    `UPDATE recovery_tasks SET status = 'pending', retry_count = 0, next_attempt_at = 0, request_timestamp = NULL,
       acknowledgment_timestamp = NULL, latency_ms = NULL, first_attempt_at = NULL WHERE uplink = ?`,
  );
  const lane = new Lane({
    cfg: up, codec, events: store.events(), log: silent, tasks: store.tasks(uplink),
    driver: new MqttDriver({
      name: up.name, url: up.url, gatewayId: cfg.gatewayId, topicPrefix: topicPrefix(cfg, up.topicPrefix),
      clientId: `bench-lane-${process.pid}`, keepaliveS: up.keepaliveS, connectTimeoutMs: up.connectTimeoutMs,
      ackTimeoutMs: up.ackTimeoutMs, maxPacketBytes: up.maxPacketBytes, version: VERSION,
    }),
  });
  let started = false;
  const round = async () => {
    if (started) {
      reset.run(uplink);
      db.pragma('wal_checkpoint(TRUNCATE)');
    }
    const before = count.get(uplink) as { n: number; r: number };
    if (before.n !== all.n) throw new Error(`store has ${before.n} pending tasks, expected ${all.n}`);
    const d0 = lane.snapshot().delivered;
    const run = await timed(before.n, before.r, async () => {
      // The warm-up round connects and drains (lane.start()); the timed ones re-admit the whole
      // backlog on that connection (lane.rescan(), as the sweeper does after the SQL repair).
      if (started) lane.rescan();
      else lane.start();
      started = true;
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 60_000;
        const iv = setInterval(() => {
          const s = lane.snapshot();
          if (s.delivered - d0 >= before.n) {
            clearInterval(iv);
            resolve();
          } else if (s.failedAttempts > 0 || Date.now() > deadline) {
            clearInterval(iv);
            reject(new Error(`lane: ${s.failedAttempts} failed attempts, ${s.delivered - d0}/${before.n} delivered, breaker ${s.breaker}`));
          }
        }, 2);
      });
      lane.flush(); // the outcomes are in the store: that is "delivered"
    });
    const after = count.get(uplink) as { n: number };
    if (after.n !== 0) throw new Error(`${after.n} tasks still pending after the drain`);
    return run;
  };
  serve({ messages: all.n, readings: all.r, decodeUs: decodeCost(store, codec, uplink, up.drain.pullTasks, 3) }, round);
}

/**
 * What the raw publisher is spared: reading each pending batch (row + segment body, a page of
 * `pullTasks` per query) and opening it (AES-256-GCM + inflate), as the lane does on its thread,
 * here alone with nothing sent. CPU us per batch, the best of `passes` passes over the backlog.
 */
function decodeCost(store: Store, codec: PayloadCodec, uplink: string, pullTasks: number, passes: number): number {
  const q = store.tasks(uplink);
  let best = Infinity;
  for (let p = 0; p < passes; p++) {
    const c0 = process.cpuUsage();
    let n = 0;
    let after = 0;
    for (;;) {
      const rows = q.fresh(after, Number.MAX_SAFE_INTEGER, pullTasks);
      if (rows.length === 0) break;
      for (const r of rows) codec.decode(r.payload, r.key);
      n += rows.length;
      after = rows[rows.length - 1].id;
    }
    const c = process.cpuUsage(c0);
    if (n > 0) best = Math.min(best, (c.user + c.system) / n);
  }
  return best;
}

function fail(message: string): never {
  process.send?.({ type: 'error', message } satisfies FromChild);
  process.exit(1);
}

/** Tells the parent it is ready, then runs a round each time it is asked. */
function serve(ready: { messages: number; readings: number; bytes?: number; decodeUs?: number }, round: () => Promise<Omit<DrainRun, 'brokerMs'>>): void {
  process.on('disconnect', () => process.exit(0)); // the bench is gone
  process.on('message', (m: ToChild) => {
    if (m.type === 'exit') process.exit(0);
    round().then(
      (run) => process.send?.({ type: 'run', run } satisfies FromChild),
      (e: unknown) => fail((e as Error).stack ?? String(e)),
    );
  });
  process.send?.({ type: 'ready', ...ready } satisfies FromChild);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  const role = process.argv[2];
  try {
    const { cfg, window } = JSON.parse(process.env.BENCH_DRAIN_SETUP ?? '') as { cfg: Config; window: number };
    // Next to the parent's store (which holds the writer): a reader of its own, never a writer.
    const store = Store.attach(cfg.dataDir, { synchronous: cfg.store.synchronous, busyTimeoutMs: cfg.store.busyTimeoutMs });
    const s = cfg.store;
    const codec = s.encryption === 'off' ? new PayloadCodec(null, null) : new PayloadCodec(loadKeyring(s.keyFile, s.keyId), s.keyId);
    const started = role === 'raw' ? rawChild(cfg, window, store, codec) : role === 'lane' ? laneChild(cfg, store, codec) : Promise.reject(new Error(`role ${role}?`));
    started.catch((e: unknown) => fail((e as Error).stack ?? String(e)));
  } catch (e) {
    fail((e as Error).stack ?? String(e));
  }
}
