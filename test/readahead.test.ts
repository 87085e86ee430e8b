/**
 * The backlog read-ahead: the decode worker's logic (store/decode-worker.ts BacklogReader, run
 * in this thread), the pool with real worker threads (store/decode-pool.ts: order, pipelining,
 * a worker that dies, giving up), the lane reading on by itself when the worker fails (no task
 * lost, skipped or sent twice), buffers handed back and filled again without corrupting a send,
 * and the MQTT envelope framed in place.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildConfig } from '../agent/config/load.js';
import { Lane } from '../agent/lane.js';
import { newBatchKey } from '../agent/ingest.js';
import type { RawFailure } from '../agent/policy/classify.js';
import { envelopes } from '../drivers/mqtt/envelope.js';
import { StoredMessage, type ConnectResult, type OutboundMessage, type SendResult, type UplinkDriver } from '../drivers/uplink.js';
import { generateKey, loadKeyring, PayloadCodec } from '../store/codec.js';
import { DecodePool, defaultDecodeWorkers, MAX_CONSECUTIVE_FAILURES, type AheadRow, type BacklogQuery, type ReadAhead } from '../store/decode-pool.js';
import { BacklogReader } from '../store/decode-worker.js';
import { openDb, type DB } from '../store/db.js';
import { Events } from '../store/events.js';
import { Outbox } from '../store/outbox.js';
import { TaskQueue } from '../store/tasks.js';
import { segmentDir, segmentName } from '../store/segments.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const ROOM = { head: 512, tail: 8 };

function readingsJson(device: string, n: number, from: number): string {
  return JSON.stringify(
    Array.from({ length: n }, (_, i) => ({ device, point: 'counter', ts: 1_700_000_000_000 + from + i, value: from + i, unit: '', quality: 'good' })),
  );
}

interface Rig {
  db: DB;
  file: string;
  codec: PayloadCodec;
  ring: ReturnType<typeof loadKeyring>;
  keyFile: string;
  dir: string;
  /** Task ids of uplink 'a', in order, and the JSON each batch was made of. */
  tasks: { id: number; key: string; json: string }[];
}

/** A store with `n` batches for uplinks 'a' and 'b', encrypted. */
function rig(t: TapTest, n: number, readingsPerBatch = 20): Rig {
  const dir = tempDir(t);
  const keyFile = join(dir, 'keys', 'holdfast.key');
  generateKey(keyFile, 'k1');
  const ring = loadKeyring(keyFile, 'k1');
  const codec = new PayloadCodec(ring, 'k1');
  const db = openDb(join(dir, 'data'), { create: true });
  t.teardown(() => {
    if (db.open) db.close();
  });
  const outbox = new Outbox(db, ['a', 'b']);
  const jsons = new Map<string, string>();
  for (let i = 0; i < n; i += 50) {
    const batches = [];
    for (let k = i; k < Math.min(n, i + 50); k++) {
      const json = readingsJson(`dev-${k % 7}`, readingsPerBatch, k * 1000);
      const key = newBatchKey();
      jsons.set(key, json);
      batches.push({
        key, hash: createHash('sha256').update(json).digest(), device: `dev-${k % 7}`, readingCount: readingsPerBatch,
        firstTs: 1, lastTs: 2, createdAt: 1000 + k, payload: codec.encode(json, key),
      });
    }
    outbox.commit(batches);
  }
  const tasks = new TaskQueue(db, 'a').fresh(0, Number.MAX_SAFE_INTEGER, n + 10).map((r) => ({ id: r.id, key: r.key, json: jsons.get(r.key)! }));
  return { db, file: db.name, codec, ring, keyFile, dir, tasks };
}

/** Overwrites a stored body with zeros in its segment file. */
function zeroBody(r: Rig, key: string): void {
  const p = r.db.prepare('SELECT body_segment AS s, body_offset AS o, body_length AS n FROM payloads WHERE batch_key = ?').get(key) as { s: number; o: number; n: number };
  const fd = openSync(join(segmentDir(join(r.dir, 'data')), segmentName(p.s)), 'r+');
  writeSync(fd, Buffer.alloc(p.n), 0, p.n, p.o);
  closeSync(fd);
}

const init = (ring: ReturnType<typeof loadKeyring>) => ({ keys: [...ring].map(([id, raw]) => [id, new Uint8Array(raw)] as [string, Uint8Array]) });

function text(r: { bytes: ArrayBuffer | null; offset: number; length: number }): string {
  return Buffer.from(r.bytes!, r.offset, r.length).toString('utf8');
}

t.test('the worker logic (BacklogReader, in this thread)', async (t) => {
  const r = rig(t, 30);
  const reader = new BacklogReader(init(r.ring));
  t.teardown(() => reader.close());
  const q = (stream: number, afterId: number, beforeId: number) => reader.handle({ type: 'open', stream, file: r.file, uplink: 'a', afterId, beforeId, room: ROOM });
  const next = (stream: number, n: number, recycle: ArrayBuffer[] = []) => reader.handle({ type: 'next', stream, id: 7, n, recycle })!;

  t.equal(q(1, 0, Number.MAX_SAFE_INTEGER), null, 'open has no reply');
  const first = next(1, 8);
  t.equal(first.reply.id, 7);
  const rows = first.reply.rows!;
  t.same(rows.map((x) => x.task.id), r.tasks.slice(0, 8).map((x) => x.id), 'oldest first');
  t.same(rows.map(text), r.tasks.slice(0, 8).map((x) => x.json), 'decrypted and inflated: the stored JSON');
  t.same(first.transfer.length, 8, 'every buffer is transferred');
  for (const row of rows) {
    t.equal(row.offset, ROOM.head, 'room before the readings');
    t.ok(row.bytes!.byteLength >= ROOM.head + row.length + ROOM.tail, 'and after them');
    t.equal(row.error, null);
    t.notOk('payload' in row.task, 'no payload travels back');
  }
  t.match(rows[0].task, { key: r.tasks[0].key, readingCount: 20, retryCount: 0, device: 'dev-0' });
  const second = next(1, 8).reply.rows!;
  t.same(second.map((x) => x.task.id), r.tasks.slice(8, 16).map((x) => x.id), 'the next request goes on where the last ended');

  // A buffer handed back is filled again (no new allocation) when it is large enough.
  const back = first.transfer[0];
  const third = next(1, 1, [back]);
  t.equal(third.reply.rows![0].bytes, back, 'the handed-back buffer is reused');
  t.equal(text(third.reply.rows![0]), r.tasks[16].json);

  // beforeId bounds the stream (the live boundary); the end is an empty reply.
  q(2, r.tasks[3].id, r.tasks[6].id);
  t.same(next(2, 10).reply.rows!.map((x) => x.task.id), [r.tasks[4].id, r.tasks[5].id]);
  t.same(next(2, 10).reply.rows, [], 'end of the backlog');

  // A tampered payload (its body zeroed where it lies, in its segment file) is a row with an
  // error; the rows around it still decode.
  zeroBody(r, r.tasks[20].key);
  q(3, r.tasks[18].id, Number.MAX_SAFE_INTEGER);
  const mixed = next(3, 4).reply.rows!;
  t.same(mixed.map((x) => x.task.id), r.tasks.slice(19, 23).map((x) => x.id));
  t.equal(mixed[0].error, null);
  t.match(mixed[1], { bytes: null, error: /authenticate|unsupported state/i }, 'the GCM tag does not match');
  t.equal(text(mixed[2]), r.tasks[21].json);

  t.match(next(99, 1).reply, { id: 7, error: 'unknown stream 99' });
  reader.handle({ type: 'open', stream: 4, file: join(r.dir, 'nope.db'), uplink: 'a', afterId: 0, beforeId: 10, room: ROOM });
  t.match(next(4, 1).reply.error, /cannot open/, 'a store it cannot open is an error reply');
  reader.handle({ type: 'close', stream: 1 });
  t.match(next(1, 1).reply.error, 'unknown stream 1', 'closed');
});

t.test('the worker logic with a shared arena: rows in slots, slots handed back reused, overflow in buffers of their own', async (t) => {
  const r = rig(t, 12);
  const reader = new BacklogReader(init(r.ring));
  t.teardown(() => reader.close());
  const slotBytes = 64 * 1024;
  const sab = new SharedArrayBuffer(3 * slotBytes);
  reader.handle({ type: 'open', stream: 1, file: r.file, uplink: 'a', afterId: 0, beforeId: Number.MAX_SAFE_INTEGER, room: ROOM, arena: { sab, slotBytes } });
  const next = (n: number, slots: number[] = []) => reader.handle({ type: 'next', stream: 1, id: 1, n, recycle: [], slots })!;
  const inArena = (x: { offset: number; length: number }) => Buffer.from(sab, x.offset, x.length).toString('utf8');

  const a = next(4);
  const rows = a.reply.rows!;
  t.same(rows.slice(0, 3).map((x) => x.slot), [0, 1, 2], 'the first three rows take the three slots, lowest first');
  t.same(rows.slice(0, 3).map(inArena), r.tasks.slice(0, 3).map((x) => x.json), 'their readings are in the arena, room before them');
  t.same(rows.slice(0, 3).map((x) => x.offset), [0, 1, 2].map((i) => i * slotBytes + ROOM.head));
  t.same(rows.slice(0, 3).map((x) => x.bytes), [null, null, null], 'nothing transferred for them');
  t.equal(rows[3].slot, -1, 'no slot left: the fourth comes in a buffer of its own');
  t.equal(text(rows[3]), r.tasks[3].json);
  t.equal(a.transfer.length, 1, 'only that one is transferred');

  const b = next(2, [1]);
  t.same(b.reply.rows!.map((x) => x.slot), [1, -1], 'a slot handed back is filled again');
  t.equal(inArena(b.reply.rows![0]), r.tasks[4].json);
  t.same(next(1, [7, -1]).reply.rows!.map((x) => x.slot), [-1], 'slot numbers outside the arena are ignored');
});

t.test('the pool hands rows over in the arena; slotOf names the slot; another stream\'s buffer is not its own', async (t) => {
  const r = rig(t, 20);
  const pool = new DecodePool(r.ring, 1);
  t.teardown(() => pool.close());
  const s = pool.open({ file: r.file, uplink: 'a', afterId: 0, beforeId: Number.MAX_SAFE_INTEGER });
  const rows = await s.next(8);
  t.same(rows.map((x) => x.readings!.toString('utf8')), r.tasks.slice(0, 8).map((x) => x.json), 'the stored JSON, in order');
  t.ok(rows.every((x) => x.readings!.buffer instanceof SharedArrayBuffer), 'every row is a view of the arena');
  const slots = rows.map((x) => s.slotOf(x.readings!));
  t.equal(new Set(slots).size, 8, `eight distinct slots: ${slots.join(',')}`);
  const more = await s.next(4, [], [slots[0]!, slots[1]!]);
  t.same(more.map((x) => x.readings!.toString('utf8')), r.tasks.slice(8, 12).map((x) => x.json));
  t.ok(more.some((x) => s.slotOf(x.readings!) === slots[0]) || more.some((x) => s.slotOf(x.readings!) === slots[1]), 'a handed-back slot is used again');
  const other = pool.open({ file: r.file, uplink: 'a', afterId: 0, beforeId: Number.MAX_SAFE_INTEGER });
  const o = await other.next(1);
  t.equal(s.slotOf(o[0].readings!), null, 'a row of another stream is not in this stream\'s arena');
  t.equal(s.slotOf(Buffer.alloc(10)), null, 'nor is a plain buffer');
  other.cancel();
  s.cancel();
});

t.test('pool size: HOLDFAST_DECODE_WORKERS, else one per core beyond the first, at most 2', async (t) => {
  t.equal(defaultDecodeWorkers({}, 1), 0);
  t.equal(defaultDecodeWorkers({}, 2), 1);
  t.equal(defaultDecodeWorkers({}, 8), 2);
  t.equal(defaultDecodeWorkers({ HOLDFAST_DECODE_WORKERS: '0' }, 8), 0);
  t.equal(defaultDecodeWorkers({ HOLDFAST_DECODE_WORKERS: '3' }, 2), 3);
  t.equal(defaultDecodeWorkers({ HOLDFAST_DECODE_WORKERS: '999' }, 2), 8, 'capped');
  t.equal(defaultDecodeWorkers({ HOLDFAST_DECODE_WORKERS: 'x' }, 2), 1, 'garbage is ignored');
});

t.test('the pool: a real worker, requests pipelined, replies in order', async (t) => {
  const r = rig(t, 100);
  const pool = new DecodePool(r.ring, 1);
  t.teardown(() => pool.close());
  const s = pool.open({ file: r.file, uplink: 'a', afterId: 0, beforeId: Number.MAX_SAFE_INTEGER });
  // Seven requests in flight at once: they are served in order, each after the previous.
  const replies = await Promise.all([8, 8, 8, 8, 8, 8, 8].map((n) => s.next(n)));
  const got = replies.flat();
  t.same(got.map((x) => x.task.id), r.tasks.slice(0, 56).map((x) => x.id), 'every task once, in id order');
  t.same(got.map((x) => x.readings!.toString('utf8')), r.tasks.slice(0, 56).map((x) => x.json), 'decoded');
  t.equal(pool.started, 1, 'one worker');
  const rest: AheadRow[] = [];
  for (;;) {
    const more = await s.next(16);
    rest.push(...more);
    if (more.length < 16) break;
  }
  t.same(rest.map((x) => x.task.id), r.tasks.slice(56).map((x) => x.id), 'to the end');
  s.cancel();
  await t.rejects(s.next(1), /stream closed/);
  t.equal(pool.alive, 1, 'the worker stays for the next stream (until idle)');
  await pool.close();
  await t.rejects(pool.open({ file: r.file, uplink: 'a', afterId: 0, beforeId: 10 }).next(1), /closed/);
});

t.test('a worker that dies: its requests reject; after MAX_CONSECUTIVE_FAILURES the pool gives up', async (t) => {
  const r = rig(t, 10);
  // A worker that answers nothing and exits on the first request.
  const crashing = new URL(`data:text/javascript,${encodeURIComponent("import { parentPort } from 'node:worker_threads'; parentPort.on('message', (m) => { if (m.type === 'next') process.exit(3); });")}`);
  const pool = new DecodePool(r.ring, 1, crashing);
  t.teardown(() => pool.close());
  const q: BacklogQuery = { file: r.file, uplink: 'a', afterId: 0, beforeId: Number.MAX_SAFE_INTEGER };
  for (let i = 1; i <= MAX_CONSECUTIVE_FAILURES; i++) {
    const s = pool.open(q);
    const a = s.next(4);
    const b = s.next(4);
    await t.rejects(a, /decode worker exited with code 3/, `death ${i}: the request in hand rejects`);
    await t.rejects(b, /decode worker/, 'and every other one it held');
    await t.rejects(s.next(1), /decode worker/, 'the stream is dead');
  }
  t.equal(pool.started, MAX_CONSECUTIVE_FAILURES, 'a new worker for each new stream');
  t.ok(pool.disabled);
  await t.rejects(pool.open(q).next(1), /disabled after 3 worker failures/, 'then it refuses at once');
  t.equal(pool.started, MAX_CONSECUTIVE_FAILURES, 'and starts no more workers');
});

// ---------------------------------------------------------------------------------------------
// The lane with a read-ahead

interface Sent {
  id: number;
  key: string;
  historical: boolean;
  json: string;
}

class FakeDriver implements UplinkDriver {
  readonly name = 'a';
  connected = false;
  readonly sendWindow = Infinity;
  readonly releasesOnSettle = true;
  sent: Sent[] = [];
  /** Fail the send of these task ids once (a soft link failure). */
  failOnce = new Set<number>();
  async connect(): Promise<ConnectResult> {
    this.connected = true;
    return { ok: true };
  }
  async send(m: OutboundMessage): Promise<SendResult> {
    // Like a socket write still in progress, read the bytes only at the end of the send: until the
    // send settles the lane must leave them alone (after, it may hand the buffer back).
    const requestAt = Date.now();
    await new Promise((res) => setImmediate(res));
    await new Promise((res) => setTimeout(res, 1));
    const json = m.readings ? Buffer.from(m.readings).toString('utf8') : m.readingsJson;
    if (this.failOnce.delete(m.taskId)) {
      return { ok: false, requestAt, failure: { kind: 'puback', code: 0x80, message: 'unspecified error' } as RawFailure };
    }
    this.sent.push({ id: m.taskId, key: m.key, historical: m.historical, json });
    return { ok: true, requestAt, ackAt: Date.now() };
  }
  onDown(): void {}
  async close(): Promise<void> {
    this.connected = false;
  }
}

/** A read-ahead over the real pool that fails (rejects) from the `failAt`-th request on. */
function flaky(pool: ReadAhead, failAt: number): ReadAhead & { requests: number } {
  const ra = {
    requests: 0,
    open(q: BacklogQuery) {
      const s = pool.open(q);
      return {
        next: (n: number, recycle?: ArrayBuffer[], slots?: number[]) =>
          ++ra.requests >= failAt ? Promise.reject(new Error('decode worker exited with code 1')) : s.next(n, recycle, slots),
        cancel: () => s.cancel(),
        slotOf: (b: Buffer) => s.slotOf(b),
      };
    },
    close: () => pool.close(),
  };
  return ra;
}

function laneFor(r: Rig, driver: UplinkDriver, readAhead: ReadAhead | null, warn: string[] = []) {
  const cfg = buildConfig({
    gatewayId: 'gw', dataDir: join(r.dir, 'data'), logFile: '-', spoolDir: join(r.dir, 'cache'),
    store: { encryption: 'aes-256-gcm', keyFile: r.keyFile, keyId: 'k1' }, sources: [],
    uplinks: [{
      name: 'a', type: 'mqtt', url: 'mqtt://127.0.0.1:1', maxInflight: 8,
      retry: { baseMs: 10, maxMs: 20 }, drain: { startJitterMs: 0, readingsPerSec: 1e9, messagesPerSec: 1e9, pullTasks: 200 },
    }],
  });
  const log = pino({ level: 'warn' }, { write: (line: string) => warn.push(line) });
  return new Lane({ cfg: cfg.uplinks[0], codec: r.codec, events: new Events(r.db), log, tasks: new TaskQueue(r.db, 'a'), driver, readAhead, prefetch: 24 });
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((res) => setTimeout(res, 5));
  }
}

t.test('the lane drains through the worker: every task once, in order, bytes intact though buffers are reused', async (t) => {
  const r = rig(t, 300, 40);
  const pool = new DecodePool(r.ring, 1);
  t.teardown(() => pool.close());
  const driver = new FakeDriver();
  const lane = laneFor(r, driver, pool);
  lane.start();
  await until(() => driver.sent.length >= r.tasks.length);
  await lane.stop();
  t.same(driver.sent.map((s) => s.id), r.tasks.map((x) => x.id), 'each backlog task sent once, oldest first');
  t.same(driver.sent.map((s) => s.json), r.tasks.map((x) => x.json), 'with exactly its readings (no buffer filled again too early)');
  t.ok(driver.sent.every((s) => s.historical), 'marked historical');
  t.equal(r.db.prepare(`SELECT count(*) FROM recovery_tasks WHERE uplink = 'a' AND status = 'delivered'`).pluck().get(), r.tasks.length);
});

t.test('a failed send does not hand its buffer back; the retry carries the right readings', async (t) => {
  const r = rig(t, 60, 40);
  const pool = new DecodePool(r.ring, 1);
  t.teardown(() => pool.close());
  const driver = new FakeDriver();
  for (const x of r.tasks.filter((_, i) => i % 7 === 3)) driver.failOnce.add(x.id);
  const lane = laneFor(r, driver, pool);
  lane.start();
  await until(() => driver.sent.length >= r.tasks.length);
  await lane.stop();
  const byId = new Map(driver.sent.map((s) => [s.id, s.json]));
  t.equal(byId.size, r.tasks.length, 'all delivered once');
  t.ok(r.tasks.every((x) => byId.get(x.id) === x.json), 'every delivery carried its own readings');
});

t.test('the worker fails mid-drain: the lane reads on by itself, nothing lost, skipped or sent twice', async (t) => {
  const r = rig(t, 200, 40);
  const pool = new DecodePool(r.ring, 1);
  t.teardown(() => pool.close());
  const ra = flaky(pool, 5); // four requests (32 tasks) through the worker, then it "dies"
  const driver = new FakeDriver();
  const warn: string[] = [];
  const lane = laneFor(r, driver, ra, warn);
  lane.start();
  await until(() => driver.sent.length >= r.tasks.length);
  await lane.stop();
  t.same(driver.sent.map((s) => s.id), r.tasks.map((x) => x.id), 'every task once, in order');
  t.same(driver.sent.map((s) => s.json), r.tasks.map((x) => x.json));
  t.ok(warn.some((l) => /backlog read-ahead failed; reading on this thread/.test(l)), 'said so in the log');
  t.ok(ra.requests >= 5, 'the worker did serve the start of the drain');
});

t.test('without a worker (size 0) the lane reads and decodes itself', async (t) => {
  const r = rig(t, 50);
  const driver = new FakeDriver();
  const lane = laneFor(r, driver, null);
  lane.start();
  await until(() => driver.sent.length >= r.tasks.length);
  await lane.stop();
  t.same(driver.sent.map((s) => s.json), r.tasks.map((x) => x.json));
});

t.test('an unreadable payload read ahead is dead-lettered exactly as one decoded here', async (t) => {
  for (const readAhead of ['worker', 'inline'] as const) {
    const r = rig(t, 12);
    r.db.prepare(`UPDATE payloads SET tag = zeroblob(16) WHERE batch_key = ?`).run(r.tasks[5].key);
    const pool = new DecodePool(r.ring, 1);
    t.teardown(() => pool.close());
    const driver = new FakeDriver();
    const lane = laneFor(r, driver, readAhead === 'worker' ? pool : null);
    lane.start();
    await until(() => driver.sent.length >= r.tasks.length - 1 && lane.snapshot().failedAttempts >= 1);
    await lane.stop();
    const row = r.db.prepare(`SELECT status, last_error_code AS code, last_error AS error FROM recovery_tasks WHERE id = ?`).get(r.tasks[5].id) as Record<string, string>;
    t.match(row, { status: 'failed', code: 'PAYLOAD_UNREADABLE', error: new RegExp(`^PAYLOAD_UNREADABLE: ${r.tasks[5].key}: `) }, `${readAhead}: dead-lettered`);
    t.notOk(driver.sent.some((s) => s.id === r.tasks[5].id), `${readAhead}: never sent`);
    t.equal(driver.sent.length, r.tasks.length - 1, `${readAhead}: the others were`);
  }
});

// ---------------------------------------------------------------------------------------------
// The envelope framed in place

t.test('envelopes: the readings array starts at a multiple of 8 bytes, after JSON whitespace only', async (t) => {
  const json = readingsJson('d', 3, 0);
  for (const [device, gw, seq] of [['d', 'gw', 1], ['pump-12', 'gateway-α', 123456], ['x'.repeat(9), '', 7], ['ü', 'g', 99]] as const) {
    for (const historical of [true, false]) {
      const [m] = envelopes(new StoredMessage(1, 'K', seq, device, historical, 3, Buffer.from(json)), gw, 1_000_000)!;
      const at = m.indexOf('[');
      t.equal(at % 8, 0, `${device}/${gw}/${seq}/${historical}: at byte ${at}`);
      t.match(m.subarray(0, at).toString(), /"readings": {0,7}$/, 'padded with at most 7 spaces');
      t.same(JSON.parse(m.toString()), { key: 'K', seq, gatewayId: gw, device, historical, readings: JSON.parse(json) }, 'still the same JSON');
    }
  }
});

t.test('envelopes: framed in place when the readings come with room, else copied; same bytes', async (t) => {
  const json = readingsJson('d1', 30, 0);
  const plain = new StoredMessage(1, 'KEY', 42, 'd1', true, 30, Buffer.from(json));
  const [copied] = envelopes(plain, 'gw', 1_000_000)!;
  // The head is 82 bytes: 6 spaces bring the readings array to byte 88, a multiple of 8.
  const expect = `{"key":"KEY","seq":42,"gatewayId":"gw","device":"d1","historical":true,"readings":      ${json}}`;
  t.equal(copied.toString(), expect);

  const ab = new ArrayBuffer(512 + json.length + 8);
  const view = Buffer.from(ab, 512, json.length);
  view.write(json);
  const framed = envelopes(new StoredMessage(1, 'KEY', 42, 'd1', true, 30, view, true), 'gw', 1_000_000)![0];
  t.equal(framed.toString(), expect, 'same bytes');
  t.equal(framed.buffer, ab, 'no copy: a view of the same memory');
  t.equal(framed.byteOffset % 8, 0, 'readings at an 8-byte boundary give a message that starts on one');

  const tight = new ArrayBuffer(10 + json.length + 1);
  const tv = Buffer.from(tight, 10, json.length);
  tv.write(json);
  const fallback = envelopes(new StoredMessage(1, 'KEY', 42, 'd1', true, 30, tv, true), 'gw', 1_000_000)![0];
  t.equal(fallback.toString(), expect, 'too little room: copied');
  t.not(fallback.buffer, tight);
  t.equal(Buffer.from(tight, 0, 10).toString('hex'), '00'.repeat(10), 'and the room was not written');

  // Not framable (the default): the bytes around the view are not the message's to write.
  const other = new ArrayBuffer(512 + json.length + 8);
  const ov = Buffer.from(other, 512, json.length);
  ov.write(json);
  const notFramed = envelopes(new StoredMessage(1, 'KEY', 42, 'd1', true, 30, ov), 'gw', 1_000_000)![0];
  t.equal(notFramed.toString(), expect);
  t.not(notFramed.buffer, other, 'copied');
  t.equal(Buffer.from(other, 0, 512).toString('hex'), '00'.repeat(512), 'nothing outside the view is touched');

  const parts = envelopes(new StoredMessage(1, 'KEY', 42, 'd1', true, 30, view, true), 'gw', 1200)!;
  t.ok(parts.length > 1, 'split when too big');
  t.ok(parts.every((p) => p.length <= 1200 && p.indexOf('[') % 8 === 0), 'each part fits and is padded too');
  t.same(parts.flatMap((p) => (JSON.parse(p.toString()) as { readings: unknown[] }).readings), JSON.parse(json), 'every reading once across the parts');
});
