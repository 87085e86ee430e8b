/**
 * agent/policy/reprobe.ts: the re-probe schedule of reads refused with exception 01/02/03.
 * Table-driven, explicit clock, seeded or pinned random source.
 */
import t from 'tap';
import { accept, DEFAULT_REPROBE, delayFor, due, EMPTY, refuse, type ReprobeConfig } from '../agent/policy/reprobe.js';
import { configSchema } from '../agent/config/schema.js';
import { ALMOST_ONE, fixed, mulberry32 } from './helpers/rand.js';

const cfg: ReprobeConfig = { baseMs: 1000, maxMs: 8000, jitter: 0.2 };

t.test('delayFor: baseMs doubling per failed probe up to maxMs, +-jitter at the two ends of a draw', async (t) => {
  const rows: [probes: number, low: number, mid: number, high: number][] = [
    [0, 800, 1000, 1200],
    [1, 1600, 2000, 2400],
    [2, 3200, 4000, 4800],
    [3, 6400, 8000, 9600],
    [4, 6400, 8000, 9600], // capped at maxMs
    [60, 6400, 8000, 9600], // no overflow however long it lasts
  ];
  for (const [probes, low, mid, high] of rows) {
    t.equal(delayFor(probes, cfg, fixed(0)), low, `${probes} failed probes, lowest draw`);
    t.equal(delayFor(probes, cfg, fixed(0.5)), mid, `${probes} failed probes, middle draw`);
    t.ok(Math.abs(delayFor(probes, cfg, fixed(ALMOST_ONE)) - high) <= 1, `${probes} failed probes, highest draw`);
  }
  t.equal(delayFor(0, { ...cfg, jitter: 0 }, fixed(0.99)), 1000, 'no jitter: exact');
  t.equal(delayFor(0, { ...cfg, jitter: 5 }, fixed(0)), 500, 'jitter is clamped to 0.5');
  t.equal(delayFor(3, { baseMs: 5000, maxMs: 1000, jitter: 0 }, fixed(0)), 5000, 'maxMs below baseMs: baseMs (the config refuses it anyway)');
});

t.test('refuse, due, accept: a read refused, probed, refused again (slower), then answered', async (t) => {
  const rand = fixed(0.5);
  let s = refuse(EMPTY, 'holding:0:2', 10_000, cfg, rand);
  t.same(s['holding:0:2'], { since: 10_000, probes: 0, nextAt: 11_000 }, 'first probe after baseMs');
  t.same(due(s, 10_999), [], 'not due before its time');
  t.same(due(s, 11_000), ['holding:0:2'], 'due at its time');
  s = refuse(s, 'holding:0:2', 11_000, cfg, rand);
  t.same(s['holding:0:2'], { since: 10_000, probes: 1, nextAt: 13_000 }, 'refused again: twice as long, first refusal kept');
  s = refuse(s, 'input:7:1', 12_000, cfg, rand);
  t.same(due(s, 20_000), ['holding:0:2', 'input:7:1'], 'several due: the longest waiting first');
  const before = s;
  s = accept(s, 'holding:0:2');
  t.same(Object.keys(s), ['input:7:1'], 'answered: off the schedule');
  t.ok(Object.isFrozen(s) && Object.isFrozen(before), 'states are immutable');
  t.equal(accept(s, 'nope'), s, 'accepting an unknown read changes nothing');
});

t.test('jitter spreads the probes of many devices refused at the same instant', async (t) => {
  const rand = mulberry32(12);
  const at = Array.from({ length: 200 }, () => refuse(EMPTY, 'k', 0, DEFAULT_REPROBE, rand).k.nextAt);
  const distinct = new Set(at.map((x) => Math.floor(x / 1000))).size;
  t.ok(at.every((x) => x >= 48_000 && x <= 72_000), 'within +-20 % of a minute');
  t.ok(distinct >= 15, `spread over ${distinct} different seconds, not in step`);
});

t.test('DEFAULT_REPROBE matches the config schema defaults', async (t) => {
  const p = (configSchema.properties.buses.items.properties.reprobe.properties);
  t.same(DEFAULT_REPROBE, { baseMs: p.baseMs.default, maxMs: p.maxMs.default, jitter: p.jitter.default });
});
