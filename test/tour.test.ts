/**
 * The guided demo (`bash scripts/demo.sh tour`): its counting, and a shortened run end to end
 * with a real Mosquitto, the simulator, kill -9 and a restart.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drainRate, longestLiveGap, verdict, type Received, type StoredBatch } from '../scripts/tour-verdict.js';
import { ROOT } from './helpers/agent.js';

const r = (device: string, point: string, ts: number) => ({ device, point, ts });
const msg = (key: string, readings: Received['readings'], o: Partial<Received> = {}): Received =>
  ({ key, part: 1, parts: 1, historical: false, at: 0, readings, ...o });
const batch = (key: string, readings: number, status: StoredBatch['status'] = 'delivered'): StoredBatch => ({ key, device: 'm', readings, status });

t.test('verdict: everything received once is OK', async (t) => {
  const v = verdict([batch('a', 2), batch('b', 1)], [msg('a', [r('m', 'p', 1), r('m', 'p', 2)]), msg('b', [r('m', 'p', 3)], { historical: true })]);
  t.match(v, { committedReadings: 3, receivedReadings: 3, missingReadings: 0, duplicateReadings: 0, resentMessages: 0, historicalMessages: 1, liveMessages: 1, ok: true });
});

t.test('verdict: a committed batch never received is missing', async (t) => {
  const v = verdict([batch('a', 2), batch('b', 3, 'pending')], [msg('a', [r('m', 'p', 1), r('m', 'p', 2)])]);
  t.match(v, { missingBatches: 1, missingReadings: 3, pendingReadings: 3, ok: false });
});

t.test('verdict: a re-send under the same key is not a duplicate; a reading under two keys is', async (t) => {
  const resent = verdict([batch('a', 1)], [msg('a', [r('m', 'p', 1)]), msg('a', [r('m', 'p', 1)])]);
  t.match(resent, { resentMessages: 1, duplicateReadings: 0, receivedReadings: 1, ok: true });
  const dup = verdict([batch('a', 1), batch('b', 1)], [msg('a', [r('m', 'p', 1)]), msg('b', [r('m', 'p', 1)])]);
  t.match(dup, { duplicateReadings: 1, ok: false });
});

t.test('verdict: parts of a split batch add up; a missing part is missing readings', async (t) => {
  const parts = [msg('a', [r('m', 'p', 1)], { part: 1, parts: 2 }), msg('a', [r('m', 'p', 2)], { part: 2, parts: 2 })];
  t.match(verdict([batch('a', 2)], parts), { receivedReadings: 2, missingReadings: 0, ok: true });
  t.match(verdict([batch('a', 2)], parts.slice(0, 1)), { missingReadings: 1, ok: false });
});

t.test('verdict: a key the store does not hold fails; an empty store fails', async (t) => {
  t.match(verdict([batch('a', 1)], [msg('a', [r('m', 'p', 1)]), msg('zz', [r('m', 'p', 9)])]), { unknownBatches: 1, ok: false });
  t.match(verdict([], []), { ok: false });
});

t.test('drainRate and longestLiveGap', async (t) => {
  // A burst of 2 at t=0, then one every 500 ms: paced at 2/s after the first bucketful.
  const hist = [0, 0, 500, 1000, 1500, 2000].map((at) => msg(`h${at}`, [], { historical: true, at }));
  t.same(drainRate(hist, 0, 5000, 2), { messages: 6, perSec: 2 });
  t.equal(drainRate(hist, 3000, 5000), null, 'too few to time');
  const live = [100, 400, 1900].map((at) => msg(`l${at}`, [], { at }));
  t.equal(longestLiveGap(live, 0, 2000), 1500);
  t.equal(longestLiveGap(live, 2000, 3000), null);
});

t.test('a shortened tour ends with 0 missing and 0 duplicates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-tour-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const args = [join(ROOT, 'dist/scripts/tour.js'), '--dir', join(dir, 'tour'), '--live-s', '3', '--outage-s', '10', '--kill-after-s', '2'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  child.stderr.on('data', (b: Buffer) => (out += b));
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  t.equal(code, 0, `the tour exits 0\n${out}`);
  for (const step of ['1/6 live', '2/6 outage', '3/6 recovery', '4/6 kill -9', '5/6 drain', '6/6 verdict']) t.match(out, step, step);
  t.match(out, /uplink broker: NOT CONNECTED/, 'holdfast status shows the outage');
  t.match(out, /missing +0 readings in 0 batches/);
  t.match(out, /duplicates +0\n/);
  t.match(out, /VERDICT: OK/);
  const produced = /produced \(committed\) +(\d+) readings/.exec(out);
  t.ok(produced && Number(produced[1]) > 0, 'readings were produced');
  t.match(out, /drain before the kill +\d+ historical messages/, 'the backlog was draining when the agent was killed');
});
