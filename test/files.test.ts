/**
 * drivers/files.ts on real files: a file the config names is read only if it is a regular file
 * of bounded size (and, for a secret, mode 0600), every refusal has a stable code and names the
 * path, and nothing blocks or throws (a FIFO, /dev/zero, a symlink loop). A file problem met by
 * an uplink when connecting classifies as a soft link failure of class config.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFile, creatableProblem, readSmallFile, type FileCode } from '../drivers/files.js';
import { classify, FILE_CODES } from '../agent/policy/classify.js';
import { familyOf } from '../agent/errors.js';
import { tempDir } from './helpers/config-fixtures.js';

t.test('readSmallFile and checkFile: each kind of path, its code, the path named', async (t) => {
  const dir = tempDir(t);
  const ok = join(dir, 'ok.txt');
  writeFileSync(ok, 'hello\n', { mode: 0o600 });
  const open = join(dir, 'open.txt');
  writeFileSync(open, 'secret\n');
  chmodSync(open, 0o644);
  const big = join(dir, 'big.txt');
  writeFileSync(big, Buffer.alloc(2048, 0x41));
  const loop = join(dir, 'loop');
  symlinkSync(loop, loop);
  const fifo = join(dir, 'fifo');
  const mk = spawnSync('mkfifo', [fifo]);
  t.equal(mk.status, 0, 'mkfifo made a FIFO');
  mkdirSync(join(dir, 'sub'));

  const cases: { name: string; path: string; rules?: { secret?: boolean; maxBytes?: number }; code: FileCode | null }[] = [
    { name: 'a regular file', path: ok, code: null },
    { name: 'a regular secret file, mode 0600', path: ok, rules: { secret: true }, code: null },
    { name: 'a secret file readable by others (0644)', path: open, rules: { secret: true }, code: 'SECRET_FILE_INSECURE' },
    { name: 'the same file, not a secret', path: open, code: null },
    { name: 'a missing file', path: join(dir, 'absent'), code: 'CONFIG_FILE_MISSING' },
    { name: 'under a file, as if it were a directory', path: join(ok, 'x'), code: 'CONFIG_FILE_MISSING' },
    { name: 'a directory', path: join(dir, 'sub'), code: 'CONFIG_FILE_NOT_REGULAR' },
    { name: '/dev/zero', path: '/dev/zero', code: 'CONFIG_FILE_NOT_REGULAR' },
    { name: 'a FIFO with no writer (must not block)', path: fifo, code: 'CONFIG_FILE_NOT_REGULAR' },
    { name: 'a symlink loop', path: loop, code: 'CONFIG_PATH_LOOP' },
    { name: 'a file under a symlink loop', path: join(loop, 'x'), code: 'CONFIG_PATH_LOOP' },
    { name: 'larger than its limit', path: big, rules: { maxBytes: 1024 }, code: 'CONFIG_FILE_TOO_LARGE' },
  ];
  for (const c of cases) {
    const r = readSmallFile(c.path, c.rules);
    const chk = checkFile(c.path, c.rules);
    if (c.code === null) {
      t.ok(r.ok, `${c.name}: read`);
      t.equal(chk, null, `${c.name}: passes the check`);
      continue;
    }
    t.match(r, { ok: false, code: c.code }, `${c.name}: read refused with ${c.code}`);
    t.match(chk, { code: c.code }, `${c.name}: check says ${c.code}`);
    if (!r.ok) t.match(r.message, c.path, `${c.name}: the message names the path`);
  }
  const r = readSmallFile(ok);
  t.equal(r.ok && r.data.toString(), 'hello\n', 'the bytes read are the file\'s');
  const secret = readSmallFile(open, { secret: true });
  t.match(!secret.ok && secret.message, /mode 644.*chmod 600/, 'the message says the mode and the fix');
});

t.test('creatableProblem: where the agent will create a directory or a log file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  const loop = join(dir, 'loop');
  symlinkSync(loop, loop);
  const dangling = join(dir, 'dangling');
  symlinkSync(join(dir, 'nowhere'), dangling);
  t.equal(creatableProblem(join(dir, 'a', 'b', 'c')), null, 'missing parents are created');
  t.match(creatableProblem(join(file, 'data')), { code: 'CONFIG_FILE_NOT_REGULAR', message: file }, 'under a regular file');
  t.match(creatableProblem(join(loop, 'data')), { code: 'CONFIG_PATH_LOOP', message: loop }, 'under a symlink loop');
  t.match(creatableProblem(loop), { code: 'CONFIG_PATH_LOOP' }, 'a symlink loop itself');
  t.match(creatableProblem(dangling), { code: 'CONFIG_FILE_MISSING', message: /symbolic link to a path that does not exist/ }, 'a dangling symlink');
});

t.test('a file problem when an uplink connects: link, soft, class config, its own catalogued code', async (t) => {
  for (const code of FILE_CODES) {
    const f = classify({ kind: 'file', code, message: `${code} happened` });
    t.same([f.code, f.scope, f.retry, f.faultClass], [code, 'link', 'soft', 'config'], code);
    t.ok(familyOf(f.code), `${code} is in the catalogue`);
  }
  t.equal(classify({ kind: 'file', code: 'EWHAT', message: '' }).code, 'CONFIG_FILE_UNREADABLE', 'an unknown code is CONFIG_FILE_UNREADABLE');
});
