/** agent/guard.ts: every owned callback turns a failure into a code, a log line, an event and a metric. */
import t from 'tap';
import pino from 'pino';
import { Writable } from 'node:stream';
import { codeOf, Guard } from '../agent/guard.js';
import { HoldfastError } from '../agent/errors.js';

function rig(inject?: string) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } }));
  const events: string[] = [];
  const counts: string[] = [];
  const guard = new Guard({ log, event: (site, code) => events.push(`${site}:${code}`), count: (site, code) => counts.push(`${site}:${code}`) }, inject);
  return { guard, lines, events, counts };
}

const errno = (code: string) => Object.assign(new Error(code), { code });

t.test('codeOf maps errors to catalogue codes', async (t) => {
  const table: [unknown, string][] = [
    [new HoldfastError('KEY_INVALID', 'x'), 'KEY_INVALID'],
    [errno('ENOSPC'), 'STORAGE_FULL'],
    [errno('SQLITE_FULL'), 'STORAGE_FULL'],
    [errno('SQLITE_IOERR_WRITE'), 'STORE_UNAVAILABLE'],
    [errno('SQLITE_READONLY'), 'STORE_UNAVAILABLE'],
    [errno('EROFS'), 'STORE_UNAVAILABLE'],
    [errno('EIO'), 'STORE_UNAVAILABLE'],
    [new TypeError('undefined is not a function'), 'INTERNAL_ERROR'],
    ['a string', 'INTERNAL_ERROR'],
    [null, 'INTERNAL_ERROR'],
  ];
  for (const [e, code] of table) t.equal(codeOf(e), code, `${String((e as Error)?.message ?? e)} -> ${code}`);
});

t.test('run: a throw is reported once each way and the caller goes on', async (t) => {
  const { guard, lines, events, counts } = rig('');
  t.equal(guard.run('a.site', () => 42), 42, 'the value when nothing fails');
  t.equal(guard.run('a.site', () => { throw errno('SQLITE_IOERR_WRITE'); }), undefined);
  t.same(events, ['a.site:STORE_UNAVAILABLE']);
  t.same(counts, ['a.site:STORE_UNAVAILABLE']);
  t.equal(lines.length, 1);
  t.match(lines[0], { level: 50, code: 'STORE_UNAVAILABLE', site: 'a.site' });
  t.equal(guard.caught.get('a.site'), 1);
});

t.test('log lines are rate-limited per site and code; events and counts are not', async (t) => {
  const { guard, lines, counts } = rig('');
  for (let i = 0; i < 5; i++) guard.run('s', () => { throw new Error('boom'); });
  t.equal(lines.length, 1, 'one line per minute');
  t.equal(counts.length, 5);
});

t.test('wrap owns async callbacks too: a rejection is reported, never unhandled', async (t) => {
  const { guard, events } = rig('');
  let unhandled = 0;
  const onUnhandled = () => unhandled++;
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => process.off('unhandledRejection', onUnhandled));
  guard.wrap('timer', async () => { throw errno('ENOSPC'); })();
  await new Promise((r) => setTimeout(r, 10));
  t.same(events, ['timer:STORAGE_FULL']);
  t.equal(unhandled, 0);
  t.equal(await guard.runAsync('p', async () => { throw new Error('x'); }), undefined);
  t.same(events, ['timer:STORAGE_FULL', 'p:INTERNAL_ERROR']);
});

t.test('a failing event sink (the store is down) is logged, not thrown', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const log = pino(new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } }));
  const guard = new Guard({ log, event: () => { throw errno('SQLITE_READONLY'); }, count: () => { throw new Error('metric'); } }, '');
  t.doesNotThrow(() => guard.run('x', () => { throw new Error('first'); }));
  t.equal(lines.length, 2);
  t.match(lines[1], { code: 'STORE_UNAVAILABLE', site: 'x' });
});

t.test('injection: a named site throws once, then runs', async (t) => {
  const { guard, events } = rig('one, two');
  let ran = 0;
  guard.run('one', () => ran++);
  guard.run('one', () => ran++);
  guard.run('three', () => ran++);
  t.equal(ran, 2, 'the first run of "one" was replaced by the injected throw');
  t.same(events, ['one:INTERNAL_ERROR']);
  const all = rig('*');
  let n = 0;
  for (const s of ['a', 'b', 'a', 'b']) all.guard.run(s, () => n++);
  t.equal(n, 2, '* throws once at every site');
});

t.test('timeout: a failed run is reported and recover re-arms the loop', async (t) => {
  const { guard, events } = rig('loop');
  let runs = 0;
  let recovered = 0;
  await new Promise<void>((resolve) => {
    const arm = (): void => {
      guard.timeout('loop', () => {
        runs++;
        if (runs < 2) arm();
        else resolve();
      }, 1, () => (recovered++, arm()));
    };
    arm();
  });
  t.equal(recovered, 1, 'the injected failure was recovered once');
  t.equal(runs, 2, 'the loop went on after it');
  t.same(events, ['loop:INTERNAL_ERROR']);
});

t.test('interval: the interval goes on after a failure', async (t) => {
  const { guard, events } = rig('tick');
  let runs = 0;
  await new Promise<void>((resolve) => {
    const h = guard.interval('tick', () => {
      if (++runs === 2) {
        clearInterval(h);
        resolve();
      }
    }, 1);
  });
  t.same(events, ['tick:INTERNAL_ERROR']);
  t.equal(runs, 2);
});

t.test('settle and runAsync: a rejection is reported, then recover runs; a failing recover is reported too', async (t) => {
  const { guard, events } = rig('');
  let recovered = 0;
  guard.settle('p', Promise.reject(new Error('x')), () => recovered++);
  await new Promise((r) => setImmediate(r));
  t.equal(recovered, 1);
  await guard.runAsync('q', async () => { throw new Error('y'); }, () => { throw new Error('recover failed'); });
  t.same(events, ['p:INTERNAL_ERROR', 'q:INTERNAL_ERROR', 'q:INTERNAL_ERROR']);
});

t.test('store and disk errors are handed to the store sink; others are not', async (t) => {
  const handed: string[] = [];
  const log = pino({ level: 'silent' });
  const guard = new Guard({ log, store: (site, e) => handed.push(`${site}:${(e as { code: string }).code}`) }, '');
  guard.run('a', () => { throw errno('SQLITE_IOERR_WRITE'); });
  guard.run('b', () => { throw errno('ENOSPC'); });
  guard.run('c', () => { throw new Error('bug'); });
  t.same(handed, ['a:SQLITE_IOERR_WRITE', 'b:ENOSPC']);
});

t.test('a file-system error outside the store sites leaves the store alone', async (t) => {
  const handed: string[] = [];
  const guard = new Guard({ log: pino({ level: 'silent' }), store: (site) => handed.push(site) }, '');
  guard.run('lane.connect', () => { throw errno('ENOENT'); });
  guard.run('ingest.commit', () => { throw errno('ENOENT'); });
  guard.run('thermal.tick', () => { throw errno('EIO'); });
  t.same(handed, ['ingest.commit', 'thermal.tick']);
});
