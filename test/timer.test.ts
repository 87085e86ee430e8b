/**
 * drivers/timer.ts: delays that cannot overflow Node's 32-bit timer field. A delay computed from a
 * wall clock that jumped (a year: 3.2e10 ms) must neither fire at once with a
 * TimeoutOverflowWarning nor fire early; a long wait is re-armed until it is really due.
 */
import t from 'tap';
import { clampDelay, safeInterval, safeTimeout, TIMER_MAX_MS } from '../drivers/timer.js';

const YEAR_MS = 365 * 86_400_000;

t.test('clampDelay: [0, 2^31-1], NaN and negatives 0', async (t) => {
  const cases: Array<[number, number]> = [
    [NaN, 0], [-5, 0], [-Infinity, 0], [0, 0], [10, 10], [2 ** 31 - 1, 2 ** 31 - 1], [2 ** 31, TIMER_MAX_MS], [YEAR_MS, TIMER_MAX_MS], [Infinity, TIMER_MAX_MS],
  ];
  for (const [input, want] of cases) t.equal(clampDelay(input), want, `${input} -> ${want}`);
  t.equal(TIMER_MAX_MS, 2147483647);
});

t.test('a year-long delay: no overflow warning, not fired, cancellable', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  t.teardown(() => {
    process.off('warning', onWarning);
  });
  let fired = 0;
  const timers = [safeTimeout(() => fired++, YEAR_MS), safeTimeout(() => fired++, Infinity), safeTimeout(() => fired++, 1e300)];
  // Node would have turned each into a 1 ms timer (and warned): give them many turns of the loop.
  await new Promise((r) => setTimeout(r, 50));
  for (const x of timers) x.clear();
  t.equal(fired, 0, 'none fired');
  t.same(warnings.filter((w) => w === 'TimeoutOverflowWarning'), [], 'no TimeoutOverflowWarning');
});

t.test('a wait longer than one timer holds is re-armed until due, never early', async (t) => {
  const from = performance.now();
  const at = await new Promise<number>((resolve) => safeTimeout(() => resolve(performance.now()), 45, 10));
  t.ok(at - from >= 44, `fired after ${Math.round(at - from)} ms, not at the first 10 ms timer`);
});

t.test('clear() stops a re-arming wait', async (t) => {
  let fired = 0;
  const x = safeTimeout(() => fired++, 30, 5);
  await new Promise((r) => setTimeout(r, 12));
  x.clear();
  await new Promise((r) => setTimeout(r, 40));
  t.equal(fired, 0, 'cleared between two re-arms: never fires');
});

t.test('NaN, negative and zero delays run on the next timer turn', async (t) => {
  const order: string[] = [];
  await Promise.all([NaN, -1, 0].map((ms) => new Promise<void>((r) => safeTimeout(() => (order.push(String(ms)), r()), ms))));
  t.same(order.sort(), ['-1', '0', 'NaN']);
});

t.test('safeInterval: a period of 0 or NaN becomes 1 ms, not a spin', async (t) => {
  let n = 0;
  const x = safeInterval(() => n++, NaN);
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(x);
  t.ok(n > 0, `ran ${n} times`);
});
