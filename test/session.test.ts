/**
 * The store a reopen finds (agent/storage/session.ts checkSameDisk): a data directory removed
 * from its own filesystem is created again, but a store never starts afresh on another
 * filesystem than it was on: a directory gone while its parent is elsewhere, or one there but
 * empty, is a disk not mounted (yet).
 */
import t from 'tap';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSameDisk } from '../agent/storage/session.js';
import { tempDir } from './helpers/config-fixtures.js';

t.test('checkSameDisk', async (t) => {
  const root = tempDir(t);
  const dataDir = join(root, 'data');
  const here = statSync(root).dev;
  const elsewhere = here + 1;
  t.doesNotThrow(() => checkSameDisk(dataDir, null), 'the first open: anything goes');
  t.doesNotThrow(() => checkSameDisk(dataDir, here), 'removed from its own filesystem: created again');
  t.throws(() => checkSameDisk(dataDir, elsewhere), { code: 'ENOENT', message: /parent is on another filesystem/ }, 'gone, its parent elsewhere: not mounted');
  mkdirSync(dataDir, { mode: 0o700 });
  t.throws(() => checkSameDisk(dataDir, elsewhere), { code: 'ENOENT', message: /empty and on another filesystem/ }, 'an empty folder elsewhere: the mount point itself');
  t.doesNotThrow(() => checkSameDisk(dataDir, here), 'empty on its own filesystem: a fresh store is fine');
  writeFileSync(join(dataDir, 'holdfast.db'), '');
  t.doesNotThrow(() => checkSameDisk(dataDir, elsewhere), 'a store on a disk mounted anew (another device): used');
});
