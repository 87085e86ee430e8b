/**
 * The link's log and events name their failure codes: a breaker transition says the code of the
 * failure that moved it, and the connect failures left out of the log (after the first three, all
 * but every 20th) are summed by code on the next line written, so no collector refusal goes unsaid.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { buildConfig } from '../agent/config/load.js';
import { manualClock } from '../agent/clock.js';
import { Link } from '../agent/forward/link.js';
import { classify } from '../agent/policy/classify.js';
import type { ConnectResult, RawFailure, UplinkDriver } from '../drivers/uplink.js';
import { Store } from '../store/store.js';

function rig(failures: RawFailure[], breaker: Record<string, number>) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { lines.push(JSON.parse(c.toString()) as Record<string, unknown>); cb(); } }));
  const store = Store.memory();
  const clock = manualClock(Date.UTC(2026, 11, 5));
  const cfg = buildConfig({
    gatewayId: 'gw', dataDir: '/tmp/holdfast-link-test', logFile: '-', store: { encryption: 'off' }, sources: [],
    uplinks: [{ name: 'a', type: 'otlp', url: 'https://127.0.0.1:1', retry: { strategy: 'FIXED', baseMs: 1000, maxMs: 1000, jitter: 0 }, breaker }],
  }, { env: {} });
  let n = 0;
  const driver = { connect: async (): Promise<ConnectResult> => ({ ok: false, failure: failures[Math.min(n++, failures.length - 1)] }) } as unknown as UplinkDriver;
  const link = new Link({
    cfg: cfg.uplinks[0], driver, events: store.events(), log, clock, rand: () => 0.5, wake: () => {}, onUp: () => {}, stopped: () => false,
  });
  return { link, lines, store, clock };
}

const unavailable: RawFailure = { kind: 'grpc', code: 14, message: 'collector unavailable' };
const exhausted: RawFailure = { kind: 'grpc', code: 8, message: 'collector over quota' };

t.test('the failure lines left out are summed by code on the next one written', async (t) => {
  const failures = [...Array(3).fill(unavailable), ...Array(10).fill(exhausted), ...Array(7).fill(unavailable)];
  const r = rig(failures, { minCalls: 1000, windowMs: 60_000 });
  for (let i = 0; i < 20; i++) {
    await r.link.connect();
    r.clock.advance(r.link.nextConnectAt - r.clock.mono());
  }
  const down = r.lines.filter((l) => l.msg === 'uplink down: collector unavailable' || l.msg === 'uplink down: collector over quota');
  t.same(down.map((l) => l.attempt), [1, 2, 3, 20], 'the first three and the 20th are written');
  const [u, x] = [classify(unavailable).code, classify(exhausted).code];
  t.not(u, x, 'two distinct codes');
  t.same(down[3].suppressedSinceLast, { [x]: 10, [u]: 6 }, 'the 20th line names every code left out since the 3rd, with its count');
  t.equal(down[0].suppressedSinceLast, undefined, 'nothing left out before the first');
});

t.test('a breaker transition names the code of the failure that moved it, in the log and the event', async (t) => {
  const r = rig([exhausted], { minCalls: 2, failureRate: 0.5, windowMs: 60_000, openMs: 5000 });
  await r.link.connect();
  r.clock.advance(r.link.nextConnectAt - r.clock.mono());
  await r.link.connect();
  t.equal(r.link.breakerName, 'open');
  const code = classify(exhausted).code;
  const line = r.lines.find((l) => l.breaker === 'closed->open');
  t.match(line, { code, msg: `breaker closed->open (last failure ${code})` });
  t.equal(r.store.db.prepare(`SELECT code FROM recovery_events WHERE kind = 'breaker'`).pluck().get(), code);
});
