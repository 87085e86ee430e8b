/**
 * The forward lane (agent/forward/lane.ts) on a real store with a fake driver and fake timers on
 * a manual clock: the order of service, the drain rate and the thermal factor, the retry budget,
 * paced devices and the breaker's transitions, each counted message by message.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildConfig } from '../agent/config/load.js';
import { newBatchKey } from '../agent/ingest.js';
import { Lane } from '../agent/forward/lane.js';
import { classify } from '../agent/policy/classify.js';
import type { ConnectResult, OutboundMessage, SendResult, UplinkDriver } from '../drivers/uplink.js';
import { PayloadCodec } from '../store/codec.js';
import { openDb, type DB } from '../store/db.js';
import { Store } from '../store/store.js';
import { tempDir } from './helpers/config-fixtures.js';
import { fakeTimers, settle } from './helpers/fake-timers.js';

type Reply = SendResult | 'hold';

class FakeDriver implements UplinkDriver {
  readonly name = 'a';
  connected = false;
  readonly sendWindow = Infinity;
  sent: { at: number; msg: OutboundMessage }[] = [];
  private held: (() => void)[] = [];
  /** When each connect was tried; the first `refuseConnects` of them are refused like ECONNREFUSED. */
  connects: number[] = [];
  refuseConnects = 0;
  constructor(
    private readonly now: () => number,
    private readonly wall: () => number,
    public reply: (m: OutboundMessage, n: number) => Reply = () => ({ ok: true, requestAt: 0, ackAt: 0 }),
  ) {}
  async connect(): Promise<ConnectResult> {
    this.connects.push(this.now());
    if (this.connects.length <= this.refuseConnects) return { ok: false, failure: { kind: 'socket', code: 'ECONNREFUSED', message: 'refused' } };
    this.connected = true;
    return { ok: true };
  }
  async send(msg: OutboundMessage): Promise<SendResult> {
    this.sent.push({ at: this.now(), msg });
    const r = this.reply(msg, this.sent.length);
    const w = this.wall();
    if (r === 'hold') {
      await new Promise<void>((res) => this.held.push(res));
      return { ok: true, requestAt: w, ackAt: this.wall() };
    }
    return r.ok ? { ...r, requestAt: w, ackAt: w } : { ...r, requestAt: w };
  }
  release(): void {
    for (const r of this.held.splice(0)) r();
  }
  onDown(): void {}
  async close(): Promise<void> {
    this.connected = false;
  }
}

interface Rig {
  db: DB;
  lane: Lane;
  driver: FakeDriver;
  time: ReturnType<typeof fakeTimers>;
  commit: (n: number, device?: string) => string[];
}

/** `tickMs`: each read of the monotonic clock takes that long (time passes during a fill); `earlyMs`: every timer fires that much early. */
function rig(t: Test, uplink: Record<string, unknown>, real: { tickMs?: number; earlyMs?: number } = {}): Rig {
  const dir = tempDir(t);
  const db = openDb(join(dir, 'data'), { create: true });
  const store = Store.on(db);
  const codec = new PayloadCodec(null, null);
  const outbox = store.outbox(['a']);
  const time = fakeTimers();
  const commit = (n: number, device = 'd') => {
    const keys: string[] = [];
    outbox.commit(Array.from({ length: n }, () => {
      const key = newBatchKey();
      keys.push(key);
      const json = `[{"device":"${device}","point":"counter","ts":1,"value":1,"unit":"","quality":"good"}]`;
      return { key, hash: createHash('sha256').update(json).digest(), device, readingCount: 1, firstTs: 1, lastTs: 1, createdAt: time.clock.wall(), payload: codec.encode(json, key) };
    }));
    return keys;
  };
  const cfg = buildConfig({
    gatewayId: 'gw', dataDir: join(dir, 'data'), logFile: '-', spoolDir: join(dir, 'cache'), store: { encryption: 'off' }, sources: [],
    uplinks: [{ name: 'a', type: 'mqtt', url: 'mqtt://127.0.0.1:1', ...uplink }],
  }, { env: {} });
  const driver = new FakeDriver(() => time.clock.mono(), () => time.clock.wall());
  const lane = new Lane({
    cfg: cfg.uplinks[0], codec, events: store.events(), log: pino({ level: 'silent' }), tasks: store.tasks('a'), driver,
    clock: real.tickMs ? { ...time.clock, mono: () => (time.clock.advance(real.tickMs!), time.clock.mono()) } : time.clock,
    after: real.earlyMs ? (fn, ms) => time.after(fn, ms - real.earlyMs!) : time.after,
    rand: () => 0.5,
  });
  t.teardown(async () => {
    driver.release();
    await lane.stop();
    store.close();
  });
  return { db, lane, driver, time, commit };
}

const fast = { startJitterMs: 0, messagesPerSec: 1000, readingsPerSec: 1_000_000 };

t.test('order of service: live before the backlog, the backlog at its rate and historical, throttled by the thermal factor', async (t) => {
  const r = rig(t, { maxInflight: 50, drain: { startJitterMs: 0, messagesPerSec: 5, readingsPerSec: 1000 } });
  const backlog = r.commit(40);
  r.lane.start();
  await r.time.advance(0);
  t.equal(r.driver.sent.length, 5, 'the backlog starts with the burst (messagesPerSec tokens)');
  t.ok(r.driver.sent.every((s) => s.msg.historical), 'marked historical');
  t.same(r.driver.sent.map((s) => s.msg.key), backlog.slice(0, 5), 'oldest first');

  const live = r.commit(3);
  r.lane.notify();
  await settle();
  t.same(r.driver.sent.slice(5).map((s) => s.msg.key), live, 'live tasks go at once, though the drain has no token left');
  t.ok(r.driver.sent.slice(5).every((s) => !s.msg.historical), 'not historical');

  await r.time.advance(1000);
  t.equal(r.driver.sent.length, 8 + 5, 'one second later: 5 more of the backlog (5/s)');
  r.lane.setThrottle(0.5);
  await r.time.advance(2000);
  t.equal(r.driver.sent.length, 13 + 5, 'throttled to half: 5 in two seconds');
  r.lane.setThrottle(1);
  await r.time.advance(1000);
  t.equal(r.driver.sent.length, 18 + 5, 'full rate again');
  const keys = r.driver.sent.map((s) => s.msg.key);
  t.equal(new Set(keys).size, keys.length, 'nothing sent twice');
});

t.test('the retry budget: retries limited to minPerSec over the window, first attempts unaffected', async (t) => {
  const r = rig(t, {
    maxInflight: 100, drain: fast, breaker: { minCalls: 100_000 }, retry: { strategy: 'FIXED', baseMs: 100, maxMs: 100, jitter: 0 },
    retryBudget: { ratio: 0, minPerSec: 1 },
  });
  r.driver.reply = () => ({ ok: false, requestAt: 0, failure: { kind: 'timeout', message: 'no PUBACK' } });
  r.commit(30);
  r.lane.start();
  await r.time.advance(0);
  t.equal(r.driver.sent.length, 30, 'every first attempt goes');
  r.lane.flush();
  await r.time.advance(600);
  r.lane.flush();
  t.equal(r.driver.sent.length, 30 + 10, 'then 10 retries: 1/s over the 10 s window');
  await r.time.advance(5000);
  t.equal(r.driver.sent.length, 40, 'no more within the window');
  const live = r.commit(2);
  r.lane.notify();
  await settle();
  t.same(r.driver.sent.slice(40).map((s) => s.msg.key), live, 'first attempts are not held by the budget');
});

t.test('a retry whose check comes due during a fill, or whose timer fires a little early, still goes: nothing else would run an idle lane', async (t) => {
  // As on a real machine: a fill takes time (10 µs a clock read here), and drivers/timer.ts may
  // fire a timer under 1 ms early. With the retry check's timer early by about the reads of a
  // fill, the fill starts just before the check is due and ends just after: swept over 5-95 µs so
  // that some value falls there whatever reads a fill makes.
  for (let earlyUs = 5; earlyUs < 100; earlyUs += 10) {
    const r = rig(t, { maxInflight: 10, drain: fast, breaker: { minCalls: 100_000 }, retry: { strategy: 'FIXED', baseMs: 1000, maxMs: 1000, jitter: 0 } }, { tickMs: 0.01, earlyMs: earlyUs / 1000 });
    r.driver.reply = (_m, n) => (n === 1 ? { ok: false, requestAt: 0, failure: { kind: 'timeout', message: 'no PUBACK' } } : { ok: true, requestAt: 0, ackAt: 0 });
    const [key] = r.commit(1);
    r.lane.start();
    await r.time.advance(0);
    r.lane.flush();
    await r.time.advance(3000);
    const gap = r.driver.sent.length === 2 ? Math.round(r.driver.sent[1].at - r.driver.sent[0].at) : NaN;
    t.same(r.driver.sent.map((s) => s.msg.key), [key, key], `timers ${earlyUs} µs early: the retry went`);
    t.ok(gap >= 1000 && gap < 1300, `after its backoff, within a retry check (${gap} ms)`);
  }
});

t.test('a paced device: held until its time, then its waiting tasks go as one merged post', async (t) => {
  const r = rig(t, { maxInflight: 10, drain: fast });
  r.driver.reply = (m) => ({ ok: true, requestAt: 0, ackAt: 0, notBefore: m.device === 'p' ? r.time.clock.wall() + 5000 : undefined });
  r.lane.start();
  await r.time.advance(0);
  r.commit(1, 'p');
  r.lane.notify();
  await settle();
  t.equal(r.driver.sent.length, 1, 'the first post of p');
  r.commit(4, 'p');
  const other = r.commit(1, 'q');
  r.lane.notify();
  await r.time.advance(1000);
  t.same(r.driver.sent.slice(1).map((s) => s.msg.key), other, 'p is held; q goes');
  await r.time.advance(4000);
  t.equal(r.driver.sent.length, 3, 'at p\'s time: one post');
  const post = r.driver.sent[2].msg;
  t.equal(post.device, 'p');
  t.equal(post.readingCount, 4, 'its four tasks merged');
  t.equal((JSON.parse(post.readings.toString()) as unknown[]).length, 4, 'one readings array of four');
});

t.test('the breaker: opens on link failures and holds every source, half-opens after openMs, closes after its probes', async (t) => {
  const r = rig(t, {
    maxInflight: 1, drain: fast, retry: { strategy: 'FIXED', baseMs: 60_000, maxMs: 60_000, jitter: 0 },
    breaker: { minCalls: 3, failureRate: 0.5, openMs: 2000, halfOpenProbes: 2, windowMs: 60_000 },
  });
  r.driver.reply = (_m, n) => (n <= 2 ? { ok: false, requestAt: 0, failure: { kind: 'timeout', message: 'no PUBACK' } } : { ok: true, requestAt: 0, ackAt: 0 });
  r.commit(10);
  r.lane.start();
  await r.time.advance(0);
  t.equal(r.driver.sent.length, 2, 'two failures: with the connect\'s success, 2 of 3 calls failed');
  t.equal(r.lane.snapshot().breaker, 'open');
  const live = r.commit(1);
  r.lane.notify();
  await r.time.advance(1999);
  t.equal(r.driver.sent.length, 2, 'nothing while open, live data neither');
  await r.time.advance(1);
  t.equal(r.lane.snapshot().breaker, 'closed', 'two probes went and came back: closed');
  t.equal(r.driver.sent[2].msg.key, live[0], 'the first probe carries the live task');
  t.equal(r.driver.sent.length, 2 + 1 + 8, 'then the rest of the backlog (the two failed wait for their retry)');
  r.lane.flush();
  const tr = (r.db.prepare(`SELECT detail FROM recovery_events WHERE kind = 'breaker' ORDER BY id`).all() as { detail: string }[]).map((e) => (JSON.parse(e.detail) as { transition?: string }).transition);
  t.same(tr, ['closed->open', 'open->half_open', 'half_open->closed'], 'every transition recorded');
  const codes = r.db.prepare(`SELECT code FROM recovery_events WHERE kind = 'breaker' ORDER BY id`).pluck().all() as (string | null)[];
  t.same(codes, codes.map(() => classify({ kind: 'timeout', message: 'no PUBACK' }).code), 'each transition names the failure code that moved it');
  const keys = r.driver.sent.map((s) => s.msg.key);
  t.equal(new Set(keys).size, keys.length, 'a refused admission took nothing: no task sent twice');
});

t.test('a 503 with Retry-After holds the whole lane, not only the batch it refused (RFC 9110)', async (t) => {
  const r = rig(t, { maxInflight: 1, drain: fast });
  r.driver.reply = (_m, n) => (n === 1 ? { ok: false, requestAt: 0, failure: { kind: 'http', code: 503, message: 'busy', retryAfterMs: 1000 } } : { ok: true, requestAt: 0, ackAt: 0 });
  r.commit(5);
  r.lane.start();
  await r.time.advance(0);
  t.equal(r.driver.sent.length, 1, 'the first batch was refused with Retry-After: 1');
  const live = r.commit(1);
  r.lane.notify();
  await r.time.advance(999);
  t.equal(r.driver.sent.length, 1, 'nothing goes to that server for a second: not the other batches, not live data');
  await r.time.advance(1);
  t.ok(r.driver.sent.length > 1, 'then the lane goes on');
  t.equal(r.driver.sent[1].msg.key, live[0], 'live first');
});

t.test('reconnects are capped at retry.reconnectMaxMs (the lag in noticing a recovery), not at the task retry ceiling maxMs', async (t) => {
  // rand 0.5: full jitter draws half the cap: 0.5, 1, 2, 4, 8 ... s without the reconnect ceiling.
  const gaps = async (retry: Record<string, unknown>): Promise<number[]> => {
    const r = rig(t, { drain: fast, retry: { strategy: 'EXPONENTIAL_BACKOFF', baseMs: 1000, ...retry }, breaker: { minCalls: 1000 } });
    r.driver.refuseConnects = 12;
    r.lane.start();
    for (let i = 0; i < 13; i++) await r.time.advance(60_000);
    return r.driver.connects.slice(1).map((at, i) => at - r.driver.connects[i]);
  };
  const capped = await gaps({});
  t.equal(capped.length, 12, 'twelve refusals, then the connect that succeeds');
  t.same(capped.slice(0, 2), [500, 1000], 'the backoff doubles as usual');
  t.ok(capped.slice(2).every((g) => g === 1500), `then never more than half of the default 3 s ceiling: ${capped.join(', ')}`);
  const uncapped = await gaps({ reconnectMaxMs: 300_000 });
  t.ok(Math.max(...uncapped) > 60_000, `with reconnectMaxMs at maxMs the gaps grow on: ${uncapped.join(', ')}`);
  const lower = await gaps({ maxMs: 2000 });
  t.ok(lower.slice(2).every((g) => g === 1000), `a maxMs below reconnectMaxMs still caps the reconnect: ${lower.join(', ')}`);
});

t.test('tasks read into a page are busy: the storage policy leaves their files alone', async (t) => {
  const r = rig(t, { maxInflight: 1, drain: fast });
  r.driver.reply = () => 'hold';
  r.commit(20);
  r.lane.start();
  await r.time.advance(0);
  t.equal(r.driver.sent.length, 1, 'one in flight');
  const busy = r.lane.busyTaskIds();
  const ids = (r.db.prepare('SELECT id FROM recovery_tasks ORDER BY id').all() as { id: number }[]).map((x) => x.id);
  t.same([...busy].sort((a, b) => a - b), ids, 'the one in flight and the 19 read ahead in the page');
  r.driver.release();
});
