/**
 * agent/forward/pacer.ts: the per-device posting pace (IEEE 2030.5 postRate), pure state with an explicit
 * clock; and the merge of stored JSON-array batches into one post.
 */
import t from 'tap';
import { arrayBody, clearWaiting, dueDevices, emptyPace, isPaced, markWaiting, mergeJsonArrays, nextDueAt, noteAck, takeForPost } from '../agent/forward/pacer.js';

t.test('a device is paced from its first ack with notBefore, and stays with the pacer', async (t) => {
  let s = emptyPace();
  s = noteAck(s, 'm1', undefined, 1000);
  t.notOk(isPaced(s, 'm1'), 'no pace asked: not paced');
  t.equal(s, noteAck(s, 'm1', undefined, 1000), 'and no new state is made');
  s = noteAck(s, 'm1', 61_000, 1000);
  t.ok(isPaced(s, 'm1'));
  t.equal(s.until.get('m1'), 61_000);
  s = noteAck(s, 'm1', undefined, 70_000);
  t.ok(isPaced(s, 'm1'), 'a later ack without a pace keeps it with the pacer (one path per device)');
  t.equal(s.until.get('m1'), 70_000, 'free to post at once');
  s = noteAck(s, 'm1', 500, 80_000);
  t.equal(s.until.get('m1'), 80_000, 'a pace in the past is now');
});

t.test('waiting devices come due by their time, longest overdue first', async (t) => {
  let s = emptyPace();
  for (const [d, at] of [['a', 5000], ['b', 3000], ['c', 9000]] as const) s = markWaiting(noteAck(s, d, at, 0), d);
  const cases: Array<[number, string[]]> = [[2999, []], [3000, ['b']], [5000, ['b', 'a']], [9999, ['b', 'a', 'c']]];
  for (const [now, want] of cases) t.same(dueDevices(s, now), want, `at ${now}`);
  t.equal(nextDueAt(s), 3000);
  s = clearWaiting(s, 'b');
  t.same(dueDevices(s, 9999), ['a', 'c']);
  t.equal(nextDueAt(s), 5000);
  t.equal(nextDueAt(emptyPace()), Infinity, 'none waiting');
  const before = s;
  t.equal(markWaiting(s, 'a'), before, 'marking twice is a no-op');
  t.equal(clearWaiting(s, 'zz'), before, 'clearing an unknown device is a no-op');
  t.notOk(before.waiting.has('b'));
});

t.test('takeForPost: oldest first, within readings and tasks, never empty', async (t) => {
  const tasks = [5, 5, 5, 20, 1].map((readingCount, id) => ({ id, readingCount }));
  const cases: Array<[number, number, number[]]> = [
    [10, 100, [0, 1]],
    [15, 100, [0, 1, 2]],
    [100, 100, [0, 1, 2, 3, 4]],
    [100, 2, [0, 1]],
    [3, 100, [0]], // the first is taken however large
  ];
  for (const [maxReadings, maxTasks, want] of cases) t.same(takeForPost(tasks, maxReadings, maxTasks).map((x) => x.id), want, `${maxReadings} readings, ${maxTasks} tasks`);
  t.same(takeForPost([], 10, 10), []);
});

t.test('mergeJsonArrays joins stored batches in order; anything else is refused', async (t) => {
  const b = (s: string) => Buffer.from(s);
  const cases: Array<[string[], string]> = [
    [['[1,2]', '[3]'], '[1,2,3]'],
    [['[{"a":1}]', ' [ ] ', '\n[{"b":[2]}]\n'], '[{"a":1},{"b":[2]}]'],
    [['[]', '[]'], '[]'],
  ];
  for (const [parts, want] of cases) {
    const out = mergeJsonArrays(parts.map(b)).toString();
    t.equal(out, want);
    t.same(JSON.parse(out), parts.flatMap((p) => JSON.parse(p) as unknown[]), 'same as parsing and concatenating');
  }
  const one = b('[7]');
  t.equal(mergeJsonArrays([one]), one, 'a single batch is passed through');
  for (const bad of ['{"a":1}', '1', '', '[1', '1]']) t.throws(() => arrayBody(b(bad)), /not a JSON array/, JSON.stringify(bad));
});
