/**
 * The rooms and what each may import (.dependency-cruiser.cjs, docs/architecture.md#rooms),
 * checked with dependency-cruiser over the TypeScript sources: no import across a line, and a
 * forbidden import in a tree of its own fails the same check.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/config-fixtures.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = '.dependency-cruiser.cjs';
const ROOMS = ['agent', 'drivers', 'store', 'hardware', 'scripts', 'test'];

function cruise(cwd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(DEPCRUISE, ['--config', join(ROOT, CONFIG), '--output-type', 'err', ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` };
}

t.test('no import across a line', async (t) => {
  const r = cruise(ROOT, ROOMS);
  t.equal(r.status, 0, r.out);
});

t.test('a forbidden import fails the check', async (t) => {
  const dir = tempDir(t);
  const file = (path: string, text: string) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  copyFileSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  file('agent/errors.ts', 'export const E = 1;\n');
  file('drivers/wire.ts', 'export const W = 1;\n');
  file('scripts/bench.ts', 'export const B = 1;\n');
  file('store/db.ts', "import { E } from '../agent/errors.js';\nimport { W } from '../drivers/wire.js';\nexport const D = E + W;\n");
  file('hardware/board.ts', "import { B } from '../scripts/bench.js';\nexport const H = B;\n");
  const r = cruise(dir, ['agent', 'drivers', 'store', 'hardware', 'scripts']);
  t.not(r.status, 0, 'exits non-zero');
  for (const rule of ['lower-room-imports-agent: store/db.ts → agent/errors.ts', 'store-imports-drivers: store/db.ts → drivers/wire.ts', 'product-imports-scripts: hardware/board.ts → scripts/bench.ts']) {
    t.match(r.out, rule, rule);
  }
});
