/**
 * drivers/modbus/wait.ts: waitUntil never resolves before its moment (the RTU master's t3.5 and
 * the simulator's line timing rest on it), and an abort ends it at once with false. Behaviour
 * only: how close after the moment it lands is a speed figure (npm run bench), not a test.
 */
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { waitUntil } from '../drivers/modbus/wait.js';
import { mulberry32 } from './helpers/rand.js';

t.test('never before the moment, whether it is a timer away, a poll away or already past', async (t) => {
  const rnd = mulberry32(0x3a17);
  const early: string[] = [];
  for (let i = 0; i < 200; i++) {
    const ms = rnd() * 4 - 0.5; // -0.5 .. 3.5 ms: past, sub-millisecond, a few timer ticks
    const at = performance.now() + ms;
    const r = await waitUntil(at);
    const now = performance.now();
    if (!r || now < at) early.push(`#${i} ${ms.toFixed(3)} ms: resolved ${r} ${(at - now).toFixed(3)} ms early`);
  }
  t.same(early, [], 'every wait resolved true at or after its moment');
});

t.test('several waits at once each keep their own moment', async (t) => {
  const base = performance.now();
  const offsets = [2.6, 0.3, 1.75, 0.9, 3.1, 0];
  const got = await Promise.all(offsets.map(async (o) => ((await waitUntil(base + o)) ? performance.now() - base : -1)));
  t.ok(got.every((g, i) => g >= offsets[i]), `each at or after its offset: ${got.map((g) => g.toFixed(2)).join(', ')}`);
});

t.test('an abort ends the wait with false, and an aborted signal never waits', async (t) => {
  const ac = new AbortController();
  const far = waitUntil(performance.now() + 60_000, ac.signal);
  setTimeout(() => ac.abort(), 5);
  t.equal(await far, false, 'aborted mid-wait: false (and no 60 s timer left behind: the test ends)');
  t.equal(await waitUntil(performance.now() + 60_000, ac.signal), false, 'already aborted: false at once');
  const spin = new AbortController();
  const near = waitUntil(performance.now() + 0.8, spin.signal); // inside the polling stretch
  spin.abort();
  t.equal(await near, false, 'aborted while polling: false');
});
