/**
 * A lane across a store failure (agent/forward/lane.ts storeDown/storeBack/sendDirect), on a real store
 * with a driver whose sends the test releases: while the store is down nothing is read from it;
 * an acknowledgement of a send made before the store came back (maybe as a new file, whose task
 * ids name other tasks) is handed over by key, never written by task id; a direct send goes
 * through the link and reports the acknowledgement, and a stopped lane sends nothing.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildConfig } from '../agent/config/load.js';
import { newBatchKey } from '../agent/ingest.js';
import { Lane } from '../agent/forward/lane.js';
import type { ConnectResult, OutboundMessage, SendResult, UplinkDriver } from '../drivers/uplink.js';
import { PayloadCodec } from '../store/codec.js';
import { openDb } from '../store/db.js';
import { Store } from '../store/store.js';
import { tempDir } from './helpers/config-fixtures.js';

/** Sends wait until the test releases them. */
class GatedDriver implements UplinkDriver {
  readonly name = 'a';
  connected = false;
  readonly sendWindow = Infinity;
  sent: OutboundMessage[] = [];
  private gates: (() => void)[] = [];
  async connect(): Promise<ConnectResult> {
    this.connected = true;
    return { ok: true };
  }
  async send(m: OutboundMessage): Promise<SendResult> {
    const requestAt = Date.now();
    this.sent.push(m);
    await new Promise<void>((res) => this.gates.push(res));
    return { ok: true, requestAt, ackAt: requestAt + 5 };
  }
  release(): void {
    for (const g of this.gates.splice(0)) g();
  }
  onDown(): void {}
  async close(): Promise<void> {
    this.connected = false;
  }
}

const until = async (cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

t.test('an acknowledgement from before storeBack goes by key; nothing is read while the store is down', async (t) => {
  const dir = tempDir(t);
  const db = openDb(join(dir, 'data'), { create: true });
  const store = Store.on(db);
  t.teardown(() => store.close());
  const codec = new PayloadCodec(null, null);
  const outbox = store.outbox(['a']);
  const batch = () => {
    const key = newBatchKey();
    const json = '[{"device":"d","point":"counter","ts":1,"value":1,"unit":"","quality":"good"}]';
    return { key, hash: createHash('sha256').update(json).digest(), device: 'd', readingCount: 1, firstTs: 1, lastTs: 1, createdAt: 1, payload: codec.encode(json, key) };
  };
  const cfg = buildConfig({
    gatewayId: 'gw', dataDir: join(dir, 'data'), logFile: '-', spoolDir: join(dir, 'cache'), store: { encryption: 'off' }, sources: [],
    uplinks: [{ name: 'a', type: 'mqtt', url: 'mqtt://127.0.0.1:1', drain: { startJitterMs: 0 } }],
  }, { env: {} });
  const driver = new GatedDriver();
  const stale: string[] = [];
  const lane = new Lane({
    cfg: cfg.uplinks[0], codec, events: store.events(), log: pino({ level: 'silent' }), tasks: store.tasks('a'), driver,
    onStaleAck: (key, uplink) => stale.push(`${uplink}:${key}`),
  });
  t.teardown(async () => {
    driver.release();
    await lane.stop();
  });
  lane.start();
  await until(() => driver.connected);
  const first = batch();
  outbox.commit([first]);
  lane.notify();
  await until(() => driver.sent.length === 1);
  t.equal(driver.sent[0].key, first.key, 'sent, its acknowledgement held back');

  lane.storeDown();
  outbox.commit([batch()]);
  lane.notify();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(driver.sent.length, 1, 'nothing read from the store while it is down');
  lane.storeBack();
  driver.release(); // settles before the lane reads the store again (a microtask before its next turn)
  await until(() => stale.length === 1);
  t.same(stale, [`a:${first.key}`], 'the old acknowledgement handed over by key');
  // Its task was not written by id: still pending, it is read again as backlog with the second batch.
  await until(() => driver.sent.length === 3);
  t.ok(driver.sent.slice(1).some((m) => m.key !== first.key), 'the second batch sent once the store is back');
  t.equal(driver.sent.filter((m) => m.key === first.key).length, 2, 'the first batch sent again, with its key: the stale acknowledgement never touched a row by id');
  driver.release();
  await until(() => db.prepare(`SELECT count(*) FROM recovery_tasks WHERE status = 'delivered'`).pluck().get() === 2);

  const direct = lane.sendDirect('spooled-key', 'd', 1, Buffer.from('[]'));
  await until(() => driver.sent.length === 4);
  t.equal(driver.sent[3].key, 'spooled-key', 'a direct send');
  t.equal(driver.sent[3].seq, 0, 'seq 0: the batch has no row');
  driver.release();
  t.match(await direct, { requestAt: Number }, 'a direct send reports its acknowledgement');
  await lane.stop();
  t.equal(await lane.sendDirect('k2', 'd', 1, Buffer.from('[]')), null, 'not sent by a stopped lane');
  t.equal(driver.sent.length, 4);
});
