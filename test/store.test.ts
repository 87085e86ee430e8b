/**
 * The store: payload codec (AES-256-GCM, tamper detection, key rotation, key files), opening the
 * database (private dir, WAL, migrations), the outbox (tasks per uplink, idempotency, cursors in
 * the same transaction) and the admin operations (retry reset, re-admission, purge, status).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { HoldfastError, isHoldfastError } from '../agent/errors.js';
import { generateKey, loadKeyring, parseKeyring, PayloadCodec, type EncodedPayload } from '../store/codec.js';
import { CACHE_KIB, DB_FILE, openDb, PAGE_SIZE, schemaVersion, WAL_CHECKPOINT_BYTES, type DB } from '../store/db.js';
import { MIGRATIONS } from '../store/migrations.js';
import type { SealedBatch } from '../store/outbox.js';
import { TASK_SQL } from '../store/tasks.js';
import { Store } from '../store/store.js';
import { parseDuration } from '../store/admin.js';
import { newBatchKey } from '../agent/ingest.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const DAY = 86_400_000;

function throwsCode(t: TapTest, fn: () => unknown, code: string, msg = `throws ${code}`): HoldfastError | undefined {
  try {
    fn();
  } catch (e) {
    t.ok(isHoldfastError(e), `${msg}: a HoldfastError (${String(e)})`);
    t.equal((e as HoldfastError).code, code, msg);
    return e as HoldfastError;
  }
  t.fail(`${msg}: did not throw`);
  return undefined;
}

function keyring(t: TapTest, ...ids: string[]): { file: string; dir: string } {
  const dir = tempDir(t);
  const file = join(dir, 'keys', 'holdfast.key');
  for (const id of ids) generateKey(file, id);
  return { file, dir };
}

function readingsJson(device: string, n: number, from = 1): string {
  return JSON.stringify(
    Array.from({ length: n }, (_, i) => ({ device, point: 'counter', ts: 1_700_000_000_000 + i, value: from + i, unit: '', quality: 'good' })),
  );
}

/** A sealed batch as ingest makes one. */
function batch(codec: PayloadCodec, device: string, opts: { key?: string; json?: string; createdAt?: number; n?: number } = {}): SealedBatch {
  const n = opts.n ?? 3;
  const json = opts.json ?? readingsJson(device, n);
  const key = opts.key ?? newBatchKey();
  return {
    key,
    hash: createHash('sha256').update(json).digest(),
    device,
    readingCount: n,
    firstTs: 1,
    lastTs: 2,
    createdAt: opts.createdAt ?? 1000,
    payload: codec.encode(json, key),
  };
}

/** The stored payload of a batch (its body read from its segment). */
function rowPayload(store: Store, key: string): EncodedPayload {
  return store.payload(key)!;
}

function freshDb(t: TapTest): { db: DB; dataDir: string; store: Store } {
  const dataDir = join(tempDir(t), 'data');
  const db = openDb(dataDir, { create: true });
  const store = Store.on(db);
  t.teardown(() => store.close());
  return { db, dataDir, store };
}

const flip = (b: Buffer, i = 0) => {
  const c = Buffer.from(b);
  c[i] ^= 0x01;
  return c;
};

t.test('codec', async (t) => {
  t.test('round trip with AES-256-GCM', async (t) => {
    const { file } = keyring(t, 'k1');
    const codec = new PayloadCodec(loadKeyring(file, 'k1'), 'k1');
    const json = readingsJson('d1', 50);
    const p = codec.encode(json, 'KEY-A');
    t.equal(p.codec, 'zlib+aes256gcm');
    t.equal(p.keyId, 'k1');
    t.equal(p.iv?.length, 12, '96-bit IV');
    t.equal(p.tag?.length, 16, '128-bit tag');
    t.notOk(p.body.includes(Buffer.from('counter')), 'body is not plaintext');
    t.equal(codec.decodeText(p, 'KEY-A'), json);
    const bytes = codec.decode(p, 'KEY-A');
    t.ok(Buffer.isBuffer(bytes), 'decode gives the bytes (no string is made)');
    t.ok(bytes.equals(Buffer.from(json, 'utf8')), 'exactly the UTF-8 of the JSON that was encoded');
    const big = readingsJson('d1', 5000);
    t.equal(codec.decodeText(codec.encode(big, 'KEY-B'), 'KEY-B'), big, 'a batch larger than the inflate chunk estimate');
    t.equal(codec.decodeText(codec.encode('[]', 'KEY-C'), 'KEY-C'), '[]', 'and a tiny one after it');
    const p2 = codec.encode(json, 'KEY-A');
    t.not(p2.iv!.toString('hex'), p.iv!.toString('hex'), 'a fresh IV per encode');
  });

  t.test('round trip with encryption off', async (t) => {
    const codec = new PayloadCodec(null, null);
    const json = readingsJson('d1', 50);
    const p = codec.encode(json, 'KEY-A');
    t.same({ codec: p.codec, keyId: p.keyId, iv: p.iv, tag: p.tag }, { codec: 'zlib', keyId: null, iv: null, tag: null });
    t.ok(p.body.length < json.length, 'compressed');
    t.equal(codec.decodeText(p, 'KEY-A'), json);
  });

  t.test('tampering is detected: PAYLOAD_UNREADABLE', async (t) => {
    const { file } = keyring(t, 'k1');
    const codec = new PayloadCodec(loadKeyring(file, 'k1'), 'k1');
    const p = codec.encode(readingsJson('d1', 10), 'KEY-A');
    const body = throwsCode(t, () => codec.decode({ ...p, body: flip(p.body, 3) }, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'body flipped');
    t.equal(body?.at, 'KEY-A', 'names the idempotency key');
    throwsCode(t, () => codec.decode({ ...p, body: p.body.subarray(0, p.body.length - 1) }, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'body truncated');
    throwsCode(t, () => codec.decode({ ...p, tag: flip(p.tag!, 15) }, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'tag flipped');
    throwsCode(t, () => codec.decode({ ...p, iv: flip(p.iv!) }, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'iv flipped');
    throwsCode(t, () => codec.decode(p, 'KEY-B'), 'PAYLOAD_UNREADABLE', 'wrong AAD (another row)');
    throwsCode(t, () => codec.decode({ ...p, keyId: 'k9' }, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'unknown key id');
    const other = keyring(t, 'k1');
    const wrongKey = new PayloadCodec(loadKeyring(other.file, 'k1'), 'k1');
    throwsCode(t, () => wrongKey.decode(p, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'same id, different key');
    throwsCode(t, () => new PayloadCodec(null, null).decode(p, 'KEY-A'), 'PAYLOAD_UNREADABLE', 'no keyring');
    t.equal(codec.decodeText(p, 'KEY-A'), readingsJson('d1', 10), 'the untouched payload still decodes');
  });

  t.test('key rotation: rows written with k1 decode after k2 becomes current', async (t) => {
    const { store } = freshDb(t);
    const { file } = keyring(t, 'k1');
    const c1 = new PayloadCodec(loadKeyring(file, 'k1'), 'k1');
    const outbox = store.outbox(['a']);
    const old = batch(c1, 'd1', { json: readingsJson('d1', 5) });
    outbox.commit([old]);

    t.same(generateKey(file, 'k2'), { created: false }, 'k2 appended to the existing keyring');
    const ring = loadKeyring(file, 'k2');
    t.same([...ring.keys()], ['k1', 'k2']);
    const c2 = new PayloadCodec(ring, 'k2');
    const stored = rowPayload(store, old.key);
    t.equal(stored.keyId, 'k1');
    t.equal(c2.decodeText(stored, old.key), readingsJson('d1', 5), 'k1 row readable with k2 current');

    const fresh = batch(c2, 'd1');
    outbox.commit([fresh]);
    t.equal(rowPayload(store, fresh.key).keyId, 'k2', 'new rows use k2');
    t.equal(c2.decodeText(rowPayload(store, fresh.key), fresh.key), readingsJson('d1', 3));

    // both keys differ
    t.not(ring.get('k1')!.toString('hex'), ring.get('k2')!.toString('hex'));
    // dropping k1 from the file makes its rows unreadable (loudly)
    const onlyK2 = parseKeyring(readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('k2')).join('\n'), file);
    throwsCode(t, () => new PayloadCodec(onlyK2, 'k2').decode(stored, old.key), 'PAYLOAD_UNREADABLE');
  });

  t.test('key files', async (t) => {
    const { file, dir } = keyring(t, 'k1');
    t.equal(statSync(file).mode & 0o777, 0o600, 'created 0600');
    t.match(readFileSync(file, 'utf8'), /^k1 [0-9a-f]{64}\n$/);
    const dup = throwsCode(t, () => generateKey(file, 'k1'), 'USAGE', 'a duplicate id is refused');
    t.match(dup?.message, 'already exists');
    t.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 1, 'the keyring is unchanged');
    throwsCode(t, () => generateKey(file, 'bad id!'), 'USAGE', 'a malformed id is refused');

    // rotation keeps 0600 even if someone loosened it
    chmodSync(file, 0o644);
    throwsCode(t, () => loadKeyring(file, 'k1'), 'KEY_FILE_INSECURE');
    generateKey(file, 'k2');
    t.equal(statSync(file).mode & 0o777, 0o600, 'append restores 0600');

    throwsCode(t, () => loadKeyring(join(dir, 'absent.key'), 'k1'), 'KEY_FILE_MISSING');
    throwsCode(t, () => loadKeyring(file, 'k3'), 'KEY_INVALID', 'the configured key id is not in the ring');

    const bad = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text, { mode: 0o600 });
      chmodSync(f, 0o600);
      return f;
    };
    for (const [name, text] of [
      ['short.key', `k1 ${'ab'.repeat(16)}\n`],
      ['nothex.key', `k1 ${'zz'.repeat(32)}\n`],
      ['noid.key', `${'ab'.repeat(32)}\n`],
      ['empty.key', ''],
      ['comments.key', '# only a comment\n\n'],
      ['garbage.key', 'hello world\n'],
    ]) {
      throwsCode(t, () => loadKeyring(bad(name, text), 'k1'), 'KEY_INVALID', `malformed key file ${name}`);
    }
    t.equal(loadKeyring(bad('ok.key', `# keys\nk1 ${'AB'.repeat(32)}\r\n`), 'k1').get('k1')?.length, 32, 'comments and CRLF are fine');
    throwsCode(t, () => generateKey(bad('garbage2.key', 'hello\n'), 'k2'), 'KEY_INVALID', 'keygen refuses to append to a malformed keyring');
  });
});

t.test('db', async (t) => {
  t.test('openDb creates a private WAL database at the current schema', async (t) => {
    const dataDir = join(tempDir(t), 'nested', 'data');
    const db = openDb(dataDir, { create: true });
    t.equal(statSync(dataDir).mode & 0o777, 0o700, 'data dir 0700');
    t.ok(existsSync(join(dataDir, DB_FILE)));
    t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    t.equal(schemaVersion(db), MIGRATIONS.length);
    t.equal(db.pragma('foreign_keys', { simple: true }), 1);
    t.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL by default');
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[]).join(',');
    t.equal(tables, 'admin_requests,clock_batches,clock_boots,counters,link_state,payloads,recovery_events,recovery_tasks,source_state');
    const store = Store.on(db);
    store.outbox(['a']).commit([batch(new PayloadCodec(null, null), 'd1')]);
    store.close();

    const again = openDb(dataDir, { synchronous: 'FULL', busyTimeoutMs: 1234 });
    t.equal(schemaVersion(again), MIGRATIONS.length, 'reopening is idempotent');
    t.equal(again.prepare('SELECT count(*) FROM payloads').pluck().get(), 1, 'data kept');
    t.equal(again.pragma('synchronous', { simple: true }), 2, 'FULL');
    t.equal(again.pragma('busy_timeout', { simple: true }), 1234);
    again.close();
    const third = openDb(dataDir, { create: true });
    t.equal(third.prepare('SELECT count(*) FROM payloads').pluck().get(), 1);
    third.close();
  });

  t.test('page size, page cache and checkpoint size', async (t) => {
    const { db, dataDir, store } = freshDb(t);
    t.equal(db.pragma('page_size', { simple: true }), PAGE_SIZE, 'a new file gets PAGE_SIZE');
    t.equal(db.pragma('cache_size', { simple: true }), -CACHE_KIB, 'the page cache is CACHE_KIB, not better-sqlite3\'s 16 MB');
    t.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0, 'SQLite never checkpoints by itself: the agent does, segments synced first');
    t.equal(store.writer?.checkpointFrames, WAL_CHECKPOINT_BYTES / PAGE_SIZE, 'the agent checkpoints at WAL_CHECKPOINT_BYTES');
    db.close();
    const small = openDb(join(tempDir(t), 'small'), { create: true, pageSize: 1024, cacheKiB: 512 });
    t.equal(small.pragma('page_size', { simple: true }), 1024);
    t.equal(small.pragma('journal_mode', { simple: true }), 'wal');
    t.equal(small.pragma('wal_autocheckpoint', { simple: true }), 0);
    t.equal(Store.on(small).writer?.checkpointFrames, Math.round(WAL_CHECKPOINT_BYTES / 1024), 'the same WAL bytes whatever the page size');
    t.equal(small.pragma('cache_size', { simple: true }), -512);
    small.close();
    const again = openDb(dataDir, { pageSize: 1024 });
    t.equal(again.pragma('page_size', { simple: true }), PAGE_SIZE, 'an existing file keeps its page size');
    again.close();
    const ro = openDb(dataDir, { readonly: true });
    t.equal(ro.pragma('cache_size', { simple: true }), -CACHE_KIB, 'read-only (admin) connections too');
    ro.close();
  });

  t.test('migration 2: retries waiting for their time have an index, and due() uses it', async (t) => {
    const { db } = freshDb(t);
    const idx = db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'recovery_tasks_due'`).pluck().get() as string;
    t.match(idx, /ON recovery_tasks \(uplink, next_attempt_at\) WHERE status = 'pending' AND next_attempt_at > 0/);
    t.match(MIGRATIONS[0], /CREATE INDEX recovery_tasks_pending/, 'migration 1 is as shipped');
    t.notMatch(MIGRATIONS[0], /recovery_tasks_due/, 'and does not carry the new index');
    const plan = (sql: string, ...args: unknown[]) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join(' | ');
    const due = plan(TASK_SQL.due, 'a', 1, 10);
    t.match(due, /SEARCH t USING INDEX recovery_tasks_due \(uplink=\? AND next_attempt_at>\? AND next_attempt_at<\?\)/, due);
    t.notMatch(due, /TEMP B-TREE/, 'ordered by the index, no sort');
    const fresh = plan(TASK_SQL.fresh, 'a', 0, 10, 10);
    t.match(fresh, /SEARCH t USING INDEX recovery_tasks_pending \(uplink=\? AND id>\? AND id<\?\)/, fresh);
    t.notMatch(fresh, /TEMP B-TREE/);
    const ofDevice = plan(TASK_SQL.ofDevice, 'a', 'd1', 10, 10);
    t.match(ofDevice, /SEARCH t USING INDEX recovery_tasks_pending \(uplink=\?\)/, `paced device: the uplink's pending tasks in id order: ${ofDevice}`);
    t.notMatch(ofDevice, /TEMP B-TREE/);

    // An old database (schema 1) gets the index when a new build opens it.
    const dir = join(tempDir(t), 'v1');
    mkdirSync(dir, { mode: 0o700 });
    const v1 = new Database(join(dir, DB_FILE));
    v1.exec(MIGRATIONS[0]);
    v1.pragma('user_version = 1');
    v1.close();
    const up = openDb(dir);
    t.equal(schemaVersion(up), MIGRATIONS.length);
    t.equal(up.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'recovery_tasks_due'`).pluck().get(), 1, 'migrated');
    up.close();
  });

  t.test('ids are never used twice: the newest rows deleted, the next batch still gets a higher id', async (t) => {
    const { db, store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    const outbox = store.outbox(['a']);
    outbox.commit([batch(codec, 'd1'), batch(codec, 'd2'), batch(codec, 'd3')]);
    const maxIds = () => db.prepare('SELECT (SELECT max(id) FROM payloads) AS p, (SELECT max(id) FROM recovery_tasks) AS t').get() as { p: number; t: number };
    const before = maxIds();
    // What reclaiming the newest segment file does: its batches and their tasks go.
    db.prepare('DELETE FROM recovery_tasks WHERE payload_id >= ?').run(before.p - 1);
    db.prepare('DELETE FROM payloads WHERE id >= ?').run(before.p - 1);
    outbox.commit([batch(codec, 'd4')]);
    const after = maxIds();
    t.ok(after.p > before.p, `payload id ${after.p} after ${before.p}`);
    t.ok(after.t > before.t, `task id ${after.t} after ${before.t}: a lane that has read past ${before.t} still finds it`);
    t.same(store.tasks('a').fresh(before.t, Number.MAX_SAFE_INTEGER, 10).map((r) => r.key), [(db.prepare('SELECT batch_key FROM payloads WHERE id = ?').pluck().get(after.p) as string)]);
  });

  t.test('schema 5 to 6 keeps every row, id and reference, and stops ids being reused', async (t) => {
    const dir = join(tempDir(t), 'v5');
    mkdirSync(dir, { mode: 0o700 });
    const v5 = new Database(join(dir, DB_FILE));
    for (const m of MIGRATIONS.slice(0, 5)) v5.exec(m);
    v5.pragma('user_version = 5');
    const insP = v5.prepare(`INSERT INTO payloads (id, batch_key, payload_hash, device, reading_count, first_ts, last_ts, created_at, codec, body, body_segment, body_offset, body_length, downsampled)
      VALUES (?, ?, x'00', 'd1', 10, 1, 2, 3, 'zlib', x'', 1, ?, 5, ?)`);
    const insT = v5.prepare(`INSERT INTO recovery_tasks (id, payload_id, uplink, idempotency_key, status, retry_count, next_attempt_at, created_at, reading_count) VALUES (?, ?, 'a', ?, ?, ?, ?, 3, 10)`);
    insP.run(7, 'k7', 100, 0);
    insP.run(9, 'k9', 200, 1);
    insT.run(11, 7, 'k7', 'delivered', 1, 0);
    insT.run(12, 9, 'k9', 'pending', 2, 5000);
    v5.prepare(`INSERT INTO clock_batches (payload_id, boot_id, readings, state) VALUES (9, 'b', 10, 'unsynced')`).run();
    v5.close();

    const db = openDb(dir);
    t.equal(schemaVersion(db), MIGRATIONS.length);
    t.same(db.prepare('SELECT id, batch_key, body_offset, downsampled FROM payloads ORDER BY id').all(), [
      { id: 7, batch_key: 'k7', body_offset: 100, downsampled: 0 }, { id: 9, batch_key: 'k9', body_offset: 200, downsampled: 1 },
    ], 'payloads with their ids');
    t.same(db.prepare('SELECT id, payload_id, status, retry_count, next_attempt_at FROM recovery_tasks ORDER BY id').all(), [
      { id: 11, payload_id: 7, status: 'delivered', retry_count: 1, next_attempt_at: 0 }, { id: 12, payload_id: 9, status: 'pending', retry_count: 2, next_attempt_at: 5000 },
    ], 'tasks with their ids and state');
    t.equal(db.prepare('SELECT count(*) FROM clock_batches').pluck().get(), 1, 'a row referring to a payload is not cascaded away by the rebuild');
    t.same(db.pragma('foreign_key_check'), [], 'every reference holds');
    t.equal(db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys on again');
    for (const name of ['recovery_tasks_pending', 'recovery_tasks_failed', 'recovery_tasks_due']) {
      t.equal(db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`).pluck().get(name), 1, `index ${name}`);
    }
    db.prepare('DELETE FROM recovery_tasks WHERE id = 12').run();
    db.prepare('DELETE FROM payloads WHERE id = 9').run();
    const store = Store.on(db);
    store.outbox(['a']).commit([batch(new PayloadCodec(null, null), 'd2')]);
    t.equal(db.prepare('SELECT max(id) FROM payloads').pluck().get(), 10, 'the next payload id is above every id ever used');
    t.equal(db.prepare('SELECT max(id) FROM recovery_tasks').pluck().get(), 13, 'and the next task id');
    store.close();
  });

  t.test('due() returns waiting retries by time, for its uplink only', async (t) => {
    const { store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    store.outbox(['a', 'b']).commit([batch(codec, 'd1'), batch(codec, 'd2'), batch(codec, 'd3')]);
    const qa = store.tasks('a');
    const ids = qa.fresh(0, Number.MAX_SAFE_INTEGER, 10).map((r) => r.id);
    t.equal(ids.length, 3);
    const fail = (id: number, at: number) =>
      ({ id, ok: false as const, requestAt: 1, code: 'ETIMEDOUT', message: 'x', faultClass: 'link', retryClass: 'soft' as const, status: 'pending' as const, nextAttemptAt: at });
    qa.flush([fail(ids[0], 5000), fail(ids[1], 3000), fail(ids[2], 9000)]);
    t.same(qa.due(4000, 10).map((r) => r.id), [ids[1]], 'only those whose time has come');
    t.same(qa.due(9000, 10).map((r) => r.id), [ids[1], ids[0], ids[2]], 'earliest first');
    t.same(qa.due(9000, 2).map((r) => r.id), [ids[1], ids[0]], 'limit');
    t.same(store.tasks('b').due(9000, 10), [], 'another uplink\'s retries are not ours');
    t.same(qa.fresh(0, Number.MAX_SAFE_INTEGER, 10), [], 'and they are no longer fresh');
  });

  t.test('pendingOfDevice() returns one device\'s sendable tasks (fresh and due), oldest first', async (t) => {
    const { store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    store.outbox(['a', 'b']).commit(['d1', 'd2', 'd1', 'd1', 'd1'].map((d) => batch(codec, d)));
    const qa = store.tasks('a');
    const all = qa.fresh(0, Number.MAX_SAFE_INTEGER, 10);
    const d1 = all.filter((r) => r.device === 'd1').map((r) => r.id);
    const fail = (id: number, status: 'pending' | 'failed', at: number) =>
      ({ id, ok: false as const, requestAt: 1, code: 'ETIMEDOUT', message: 'x', faultClass: 'link', retryClass: 'soft' as const, status, nextAttemptAt: at });
    qa.flush([fail(d1[1], 'pending', 5000), fail(d1[2], 'failed', 0), { id: d1[3], ok: true, requestAt: 1, ackAt: 2 }]);
    t.same(qa.pendingOfDevice('d1', 4000, 10).map((r) => r.id), [d1[0]], 'a retry not yet due, a dead letter and a delivered task are left out');
    t.same(qa.pendingOfDevice('d1', 5000, 10).map((r) => r.id), [d1[0], d1[1]], 'the retry once due, in id order');
    t.same(qa.pendingOfDevice('d1', 5000, 1).map((r) => r.id), [d1[0]], 'limit');
    t.same(qa.pendingOfDevice('d3', 5000, 10), [], 'another device');
    t.equal(store.tasks('b').pendingOfDevice('d1', 0, 10).length, 4, 'the other uplink has its own');
    t.ok(qa.pendingOfDevice('d1', 5000, 10).every((r) => r.payload.body.length > 0), 'with their payloads');
  });

  t.test('a database from a newer build is refused: SCHEMA_TOO_NEW', async (t) => {
    const { db, dataDir } = freshDb(t);
    db.close();
    const raw = new Database(join(dataDir, DB_FILE));
    raw.pragma(`user_version = ${MIGRATIONS.length + 40}`);
    raw.close();
    const e = throwsCode(t, () => openDb(dataDir), 'SCHEMA_TOO_NEW');
    t.match(e?.message, 'upgrade');
    const check = new Database(join(dataDir, DB_FILE), { readonly: true });
    t.equal(check.pragma('user_version', { simple: true }), MIGRATIONS.length + 40, 'the newer database is left as it was');
    check.close();
  });

  t.test('an insecure data dir is refused: DATA_DIR_INSECURE', async (t) => {
    const dataDir = join(tempDir(t), 'data');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o750);
    const e = throwsCode(t, () => openDb(dataDir, { create: true }), 'DATA_DIR_INSECURE');
    t.match(e?.message, 'chmod 700');
    t.equal(e?.at, dataDir);
    t.notOk(existsSync(join(dataDir, DB_FILE)), 'no database created');
    t.equal(statSync(dataDir).mode & 0o777, 0o750, 'the mode is not silently changed');
    chmodSync(dataDir, 0o701);
    throwsCode(t, () => openDb(dataDir, { create: true }), 'DATA_DIR_INSECURE', 'o+x alone is refused too');
  });

  t.test('admin commands do not create a data dir', async (t) => {
    const dataDir = join(tempDir(t), 'never');
    throwsCode(t, () => openDb(dataDir), 'STORE_UNAVAILABLE');
    t.notOk(existsSync(dataDir));
    mkdirSync(dataDir, { mode: 0o700 });
    throwsCode(t, () => openDb(dataDir), 'STORE_UNAVAILABLE', 'no database file and create is off');
    t.notOk(existsSync(join(dataDir, DB_FILE)));
  });
});

t.test('outbox', async (t) => {
  t.test('the recovery_tasks contract columns', async (t) => {
    const { db } = freshDb(t);
    const cols = (db.prepare('PRAGMA table_info(recovery_tasks)').all() as { name: string }[]).map((c) => c.name);
    for (const c of [
      'id', 'uplink', 'idempotency_key', 'status', 'retry_count', 'next_attempt_at', 'last_error_code', 'last_error',
      'fault_class', 'request_timestamp', 'acknowledgment_timestamp', 'latency_ms',
    ]) {
      t.ok(cols.includes(c), `recovery_tasks.${c}`);
    }
  });

  t.test('one payload per batch, one pending task per batch per uplink', async (t) => {
    const { db, store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    const outbox = store.outbox(['a', 'b']);
    const bs = [batch(codec, 'd1', { n: 3 }), batch(codec, 'd2', { n: 4 }), batch(codec, 'd1', { n: 5 })];
    const r = outbox.commit(bs, new Map([['d1', 8], ['d2', 4]]));
    t.same(r, { committed: 3, readings: 12, duplicates: 0, collisions: [] });
    t.equal(db.prepare('SELECT count(*) FROM payloads').pluck().get(), 3);
    const tasks = db
      .prepare(
        `SELECT t.uplink, t.idempotency_key, t.status, t.retry_count, t.next_attempt_at, t.last_error_code, t.reading_count, p.batch_key
         FROM recovery_tasks t JOIN payloads p ON p.id = t.payload_id ORDER BY t.payload_id, t.uplink`,
      )
      .all() as Record<string, unknown>[];
    t.equal(tasks.length, 6);
    for (const row of tasks) {
      t.match(row, { status: 'pending', retry_count: 0, next_attempt_at: 0, last_error_code: null });
      t.equal(row.idempotency_key, row.batch_key, 'task carries the batch key');
    }
    t.same(tasks.map((x) => x.uplink), ['a', 'b', 'a', 'b', 'a', 'b']);
    t.same(tasks.map((x) => x.reading_count), [3, 3, 4, 4, 5, 5]);
    t.equal(outbox.cursor('d1'), 8);
    t.equal(outbox.cursor('d2'), 4);
    t.equal(outbox.cursor('nobody'), 0);
  });

  t.test('a replay is ignored; a different payload under the same key is a collision', async (t) => {
    const { db, store } = freshDb(t);
    const { file } = keyring(t, 'k1');
    const codec = new PayloadCodec(loadKeyring(file, 'k1'), 'k1');
    const outbox = store.outbox(['a', 'b']);
    const orig = batch(codec, 'd1', { key: 'KEY-1', json: readingsJson('d1', 3, 1) });
    outbox.commit([orig]);
    const before = db.prepare('SELECT * FROM payloads WHERE batch_key = ?').get('KEY-1') as Record<string, unknown>;

    // the same batch again (same key, same hash; a fresh IV makes the ciphertext differ)
    const replay = batch(codec, 'd1', { key: 'KEY-1', json: readingsJson('d1', 3, 1) });
    let r = outbox.commit([replay]);
    t.same(r, { committed: 0, readings: 0, duplicates: 1, collisions: [] });
    t.equal(store.admin.status(0).counters.duplicate_batches_ignored, 1);
    t.equal(db.prepare('SELECT count(*) FROM recovery_tasks').pluck().get(), 2, 'no extra tasks');

    // same key, different readings
    const evil = batch(codec, 'd1', { key: 'KEY-1', json: readingsJson('d1', 3, 100), createdAt: 5000 });
    const okay = batch(codec, 'd1', { key: 'KEY-2' });
    r = outbox.commit([evil, okay], new Map([['d1', 9]]));
    t.same(r.collisions, ['KEY-1']);
    t.equal(r.committed, 1, 'the other batch in the transaction still commits');
    t.equal(r.duplicates, 0);
    t.equal(outbox.cursor('d1'), 9);
    const counters = store.admin.status(0).counters;
    t.equal(counters.idempotency_key_collisions, 1);
    t.equal(counters.duplicate_batches_ignored, 1);
    const ev = db.prepare(`SELECT * FROM recovery_events WHERE code = 'IDEMPOTENCY_KEY_COLLISION'`).all() as Record<string, unknown>[];
    t.equal(ev.length, 1);
    t.match(ev[0], { scope: 'store', subject: 'd1', kind: 'collision', started_at: 5000 });
    t.same(JSON.parse(ev[0].detail as string), { key: 'KEY-1' });
    const after = db.prepare('SELECT * FROM payloads WHERE batch_key = ?').get('KEY-1') as Record<string, unknown>;
    t.same(after, before, 'the original row is unchanged');
    t.equal(codec.decodeText(rowPayload(store, 'KEY-1'), 'KEY-1'), readingsJson('d1', 3, 1), 'and still decodes to the original readings');
    t.equal(db.prepare(`SELECT count(*) FROM recovery_tasks WHERE idempotency_key = 'KEY-1'`).pluck().get(), 2);

    // counters add up across commits (KEY-2 again with the same readings is a replay)
    r = outbox.commit([batch(codec, 'd1', { key: 'KEY-1', json: readingsJson('d1', 3, 7) }), batch(codec, 'd1', { key: 'KEY-2' })]);
    t.same(r, { committed: 0, readings: 0, duplicates: 1, collisions: ['KEY-1'] });
    t.match(store.admin.status(0).counters, { idempotency_key_collisions: 2, duplicate_batches_ignored: 2 });
  });

  t.test('source cursors commit in the same transaction as the batches', async (t) => {
    const { db, store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    const outbox = store.outbox(['a']);
    outbox.commit([batch(codec, 'd1')], new Map([['d1', 3]]));
    t.equal(outbox.cursor('d1'), 3);

    // a batch that breaks a constraint aborts the whole transaction, cursors included
    const good = batch(codec, 'd1');
    const broken = { ...batch(codec, 'd2'), device: null as unknown as string };
    t.throws(() => outbox.commit([good, broken], new Map([['d1', 6], ['d2', 3]])));
    t.equal(outbox.cursor('d1'), 3, 'cursor not advanced');
    t.equal(outbox.cursor('d2'), 0);
    t.equal(db.prepare('SELECT count(*) FROM payloads WHERE batch_key = ?').pluck().get(good.key), 0, 'good batch rolled back');
    t.equal(db.prepare('SELECT count(*) FROM payloads').pluck().get(), 1);

    // cursors only move forward with what the caller says; a commit of no batches may carry cursors
    outbox.commit([], new Map([['d1', 6]]));
    t.equal(outbox.cursor('d1'), 6);
  });
});

/** Three payloads, tasks for uplinks a and b, statuses set directly. */
function seedTasks(store: Store) {
  const db = store.db;
  const codec = new PayloadCodec(null, null);
  const outbox = store.outbox(['a', 'b']);
  const bs = [0, 1, 2, 3].map((i) => batch(codec, 'd1', { createdAt: 1000 + i, n: i + 1 }));
  outbox.commit(bs);
  const set = (i: number, uplink: string, status: string, retryCount: number) =>
    db
      .prepare(
        `UPDATE recovery_tasks SET status = ?, retry_count = ?, next_attempt_at = 99999, first_attempt_at = 500, last_error_code = 'ETIMEDOUT'
         WHERE idempotency_key = ? AND uplink = ?`,
      )
      .run(status, retryCount, bs[i].key, uplink);
  return { bs, set };
}

const taskRows = (db: DB) =>
  db.prepare('SELECT idempotency_key AS key, uplink, status, retry_count, next_attempt_at, first_attempt_at FROM recovery_tasks ORDER BY id').all() as {
    key: string;
    uplink: string;
    status: string;
    retry_count: number;
    next_attempt_at: number;
    first_attempt_at: number | null;
  }[];

t.test('admin', async (t) => {
  t.test('readmitReset re-admits exactly the failed tasks with retry_count 0', async (t) => {
    const { db, store } = freshDb(t);
    const { bs, set } = seedTasks(store);
    set(0, 'a', 'failed', 0); // reset by an operator
    set(0, 'b', 'failed', 7); // dead-lettered, not reset
    set(1, 'a', 'delivered', 1);
    set(1, 'b', 'pending', 3); // in retry
    set(2, 'b', 'failed', 0); // reset by an operator
    const before = taskRows(db);

    const per = store.admin.readmitReset(42_000);
    t.same(per.sort((x, y) => x.uplink.localeCompare(y.uplink)), [
      { uplink: 'a', n: 1 },
      { uplink: 'b', n: 1 },
    ]);
    const after = taskRows(db);
    const find = (rows: typeof after, i: number, u: string) => rows.find((r) => r.key === bs[i].key && r.uplink === u)!;
    for (const [i, u] of [[0, 'a'], [2, 'b']] as const) {
      t.match(find(after, i, u), { status: 'pending', retry_count: 0, next_attempt_at: 0, first_attempt_at: null }, `task ${i}/${u} re-admitted`);
    }
    for (const row of after) {
      if ((row.key === bs[0].key && row.uplink === 'a') || (row.key === bs[2].key && row.uplink === 'b')) continue;
      t.same(row, before.find((b) => b.key === row.key && b.uplink === row.uplink), `task ${row.key}/${row.uplink} untouched`);
    }
    t.equal(find(after, 0, 'b').status, 'failed', 'a failed task with retry_count > 0 stays dead-lettered');
    const ev = db.prepare(`SELECT subject, kind, started_at, detail FROM recovery_events WHERE kind = 'readmit' ORDER BY subject`).all();
    t.same(ev, [
      { subject: 'a', kind: 'readmit', started_at: 42_000, detail: '{"tasks":1}' },
      { subject: 'b', kind: 'readmit', started_at: 42_000, detail: '{"tasks":1}' },
    ]);
    t.same(store.admin.readmitReset(43_000), [], 'nothing left to re-admit');
    t.equal(db.prepare(`SELECT count(*) FROM recovery_events WHERE kind = 'readmit'`).pluck().get(), 2, 'no empty events');
  });

  t.test('retryReset then readmitReset: the documented repair', async (t) => {
    const { db, store } = freshDb(t);
    const { bs, set } = seedTasks(store);
    set(0, 'a', 'failed', 50);
    set(0, 'b', 'failed', 3);
    set(1, 'a', 'pending', 4);
    set(1, 'b', 'delivered', 2);
    set(2, 'a', 'failed', 9);

    t.equal(store.admin.retryReset('b'), 1, 'only uplink b');
    t.same(store.admin.readmitReset(1), [{ uplink: 'b', n: 1 }]);
    t.equal(taskRows(db).find((r) => r.key === bs[0].key && r.uplink === 'b')?.status, 'pending');
    t.equal(db.prepare(`SELECT count(*) FROM recovery_tasks WHERE status = 'failed'`).pluck().get(), 2);

    t.equal(store.admin.retryReset(), 2, 'all remaining failed tasks');
    const pendingBefore = taskRows(db).find((r) => r.key === bs[1].key && r.uplink === 'a');
    t.equal(pendingBefore?.retry_count, 4, 'a pending task keeps its retry_count (retryReset touches failed only)');
    t.same(store.admin.readmitReset(2), [{ uplink: 'a', n: 2 }]);
    const rows = taskRows(db);
    t.equal(rows.filter((r) => r.status === 'failed').length, 0);
    t.equal(rows.find((r) => r.key === bs[1].key && r.uplink === 'b')?.status, 'delivered', 'delivered untouched');
    for (const r of rows.filter((x) => x.key === bs[0].key || x.key === bs[2].key)) {
      t.match(r, { status: 'pending', retry_count: 0, next_attempt_at: 0, first_attempt_at: null });
    }
    t.equal(store.admin.retryReset(), 0);
  });

  t.test('purge deletes old delivered/failed tasks and their payloads, never pending ones', async (t) => {
    const { db, store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    const outbox = store.outbox(['a', 'b']);
    const now = 100 * DAY;
    const old = now - 10 * DAY;
    const recent = now - DAY;
    const p1 = batch(codec, 'd1', { createdAt: old }); // both delivered -> gone
    const p2 = batch(codec, 'd1', { createdAt: old }); // a failed, b pending -> a gone, payload kept
    const p3 = batch(codec, 'd1', { createdAt: old }); // both pending -> kept
    const p4 = batch(codec, 'd1', { createdAt: recent }); // delivered but recent -> kept
    outbox.commit([p1, p2, p3, p4]);
    const st = (k: string, u: string, s: string) => db.prepare('UPDATE recovery_tasks SET status = ?, retry_count = 1 WHERE idempotency_key = ? AND uplink = ?').run(s, k, u);
    st(p1.key, 'a', 'delivered');
    st(p1.key, 'b', 'delivered');
    st(p2.key, 'a', 'failed');
    st(p4.key, 'a', 'delivered');
    st(p4.key, 'b', 'failed');
    const ev = db.prepare('INSERT INTO recovery_events (scope, subject, kind, started_at, ended_at) VALUES (?, ?, ?, ?, ?)');
    ev.run('uplink', 'a', 'outage', old, old + 1000); // closed, old -> gone
    ev.run('uplink', 'a', 'outage', old, null); // still open -> kept
    ev.run('uplink', 'a', 'outage', recent, recent + 1); // recent -> kept

    const r = store.admin.purge(parseDuration('7d')!, now);
    t.same(r, { tasks: 3, payloads: 1, events: 1 });
    const left = taskRows(db).map((x) => `${[p1.key, p2.key, p3.key, p4.key].indexOf(x.key) + 1}${x.uplink}:${x.status}`);
    t.same(left.sort(), ['2b:pending', '3a:pending', '3b:pending', '4a:delivered', '4b:failed']);
    const payloads = db.prepare('SELECT batch_key FROM payloads').pluck().all();
    t.same(payloads.sort(), [p2.key, p3.key, p4.key].sort(), 'payload of p1 deleted; p2 kept for its pending task');
    t.equal(db.prepare('SELECT count(*) FROM recovery_events').pluck().get(), 2);
    t.match(store.admin.status(now).counters, { purged_tasks: 3, purged_payloads: 1 });

    // a second purge far in the future: pending tasks still survive
    const r2 = store.admin.purge(0, now + 365 * DAY);
    t.same(r2, { tasks: 2, payloads: 1, events: 1 });
    t.same(taskRows(db).map((x) => x.status), ['pending', 'pending', 'pending']);
    t.equal(db.prepare('SELECT count(*) FROM payloads').pluck().get(), 2);
    t.match(store.admin.status(now).counters, { purged_tasks: 5, purged_payloads: 2 });
  });

  t.test('parseDuration', async (t) => {
    const table: [string, number | undefined][] = [
      ['7d', 7 * DAY],
      ['12h', 12 * 3_600_000],
      ['30m', 30 * 60_000],
      ['45s', 45_000],
      ['500ms', 500],
      ['1.5h', 5_400_000],
      [' 2d ', 2 * DAY],
      ['0s', 0],
      ['', undefined],
      ['7', undefined],
      ['d', undefined],
      ['7w', undefined],
      ['7D', undefined],
      ['-1d', undefined],
      ['7 d', undefined],
      ['.5h', undefined],
      ['1.h', undefined],
      ['1e3s', undefined],
      ['7dd', undefined],
      ['Infinityd', undefined],
      ['abc', undefined],
    ];
    for (const [input, want] of table) t.equal(parseDuration(input), want, JSON.stringify(input));
  });

  t.test('storeStatus', async (t) => {
    const { db, store } = freshDb(t);
    const codec = new PayloadCodec(null, null);
    const outbox = store.outbox(['a', 'b']);
    const now = 1_000_000;
    outbox.commit([
      batch(codec, 'd1', { createdAt: now - 5000, n: 10 }),
      batch(codec, 'd1', { createdAt: now - 3000, n: 20 }),
      batch(codec, 'd2', { createdAt: now - 1000, n: 30 }),
    ]);
    // a: first delivered, second failed, third pending; b: all pending
    const tasks = db.prepare(`SELECT id FROM recovery_tasks WHERE uplink = 'a' ORDER BY id`).pluck().all() as number[];
    db.prepare(`UPDATE recovery_tasks SET status = 'delivered' WHERE id = ?`).run(tasks[0]);
    db.prepare(`UPDATE recovery_tasks SET status = 'failed', retry_count = 5 WHERE id = ?`).run(tasks[1]);
    db.prepare(
      `INSERT INTO link_state (uplink, connected, breaker, breaker_since, last_error_code, last_error, last_error_at, updated_at)
       VALUES ('a', 0, 'open', 900000, 'ECONNREFUSED', 'connect refused', 950000, 950000), ('b', 1, 'closed', NULL, NULL, NULL, NULL, 1)`,
    ).run();
    db.prepare(`INSERT INTO recovery_events (scope, subject, kind, code, started_at) VALUES ('uplink', 'a', 'outage', 'ECONNREFUSED', 900000)`).run();
    db.prepare(`INSERT INTO counters (name, value) VALUES ('delivered_batches', 12)`).run();

    const s = store.admin.status(now, ['b', 'a', 'spare']);
    t.equal(s.at, now);
    t.equal(s.schemaVersion, MIGRATIONS.length);
    t.equal(s.payloads, 3);
    t.same(s.uplinks.map((u) => u.uplink), ['a', 'b', 'spare'], 'configured and stored uplinks, sorted');
    const [a, b, spare] = s.uplinks;
    t.same(a.pending, { tasks: 1, readings: 30 });
    t.same(a.failed, { tasks: 1, readings: 20 });
    t.same(a.delivered, { tasks: 1, readings: 10 });
    t.equal(a.oldestPendingAgeMs, 1000);
    t.match(a, { breaker: 'open', breakerSince: 900000, connected: false, lastError: { code: 'ECONNREFUSED', message: 'connect refused', at: 950000 } });
    t.same(b.pending, { tasks: 3, readings: 60 });
    t.equal(b.oldestPendingAgeMs, 5000);
    t.match(b, { breaker: 'closed', connected: true, lastError: null });
    t.same(spare, {
      uplink: 'spare',
      pending: { tasks: 0, readings: 0 },
      failed: { tasks: 0, readings: 0 },
      delivered: { tasks: 0, readings: 0 },
      oldestPendingAgeMs: null,
      breaker: 'closed',
      breakerSince: null,
      connected: false,
      lastError: null,
      skipped: [],
    });
    t.same(s.counters, { delivered_batches: 12 });
    t.same(s.openOutages, [{ subject: 'a', code: 'ECONNREFUSED', since: 900000 }]);
    t.equal(store.admin.status(now - 10_000).uplinks[1].oldestPendingAgeMs, 0, 'age never negative (clock behind)');
  });
});
