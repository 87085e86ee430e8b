/**
 * Small fixtures for the config, store and ingest tests: private temp folders that clean
 * themselves up, a minimal valid config (with a real 0600 key file), and JSON file writing.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKey } from '../../store/codec.js';

/** Anything with tap's teardown(). */
export interface HasTeardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A fresh temp folder (mode 0700), removed when the test ends. */
export function tempDir(t: HasTeardown, prefix = 'holdfast-t-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o700);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeJson(file: string, value: unknown): string {
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return file;
}

/** Environment with every Holdfast override blanked (so the caller's shell cannot leak in). */
export const CLEAN_ENV: NodeJS.ProcessEnv = { HOLDFAST_CONFIG: '', HOLDFAST_DATA_DIR: '', RETRY_STRATEGY: '' };

/**
 * A minimal valid raw config inside `dir`: a key file `dir/keys/holdfast.key` (k1, 0600) and a
 * data dir `dir/data` that does not exist yet. `over` is shallow-merged on top.
 */
export function validRaw(dir: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const keyFile = join(dir, 'keys', 'holdfast.key');
  try {
    generateKey(keyFile, 'k1');
  } catch {
    // already there (second call on the same dir)
  }
  return {
    gatewayId: 'gw-test',
    dataDir: join(dir, 'data'),
    logFile: join(dir, 'engine.log'),
    spoolDir: join(dir, 'cache'),
    store: { keyFile },
    sources: [{ type: 'simulated', device: 'sim-1' }],
    uplinks: [{ name: 'broker', type: 'mqtt', url: 'mqtt://127.0.0.1:1' }],
    ...over,
  };
}
