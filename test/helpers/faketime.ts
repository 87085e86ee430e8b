/**
 * Test helper: runs a process under libfaketime (Debian's `libfaketime`, brought by
 * `bash scripts/system-deps.sh test`) with a wall clock the test can step while it runs, as NTP
 * does. Only the wall clock is faked (FAKETIME_DONT_FAKE_MONOTONIC): the monotonic clock goes on
 * as the kernel counts it. The offset is read from a file at most once a second.
 *
 *   const ft = fakeTime(dir, '+365d');
 *   startAgent(a, ft.env);
 *   ft.set('+0');                 // the clock steps back by a year
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** libfaketime's multi-threaded build (Node runs threads), wherever the architecture put it. */
export function libfaketime(): string | null {
  for (const base of ['/usr/lib', '/usr/lib64', '/usr/local/lib']) {
    const direct = join(base, 'faketime', 'libfaketimeMT.so.1');
    if (existsSync(direct)) return direct;
    let dirs: string[] = [];
    try {
      dirs = readdirSync(base);
    } catch {
      continue;
    }
    for (const d of dirs) {
      const f = join(base, d, 'faketime', 'libfaketimeMT.so.1');
      if (existsSync(f)) return f;
    }
  }
  return null;
}

export interface FakeTime {
  /** Environment for the faked process. */
  env: NodeJS.ProcessEnv;
  /** Sets the offset from the real clock: '+365d', '+0', '-1764800000' (seconds), as libfaketime reads it. */
  set(offset: string): void;
}

export function fakeTime(dir: string, initial: string): FakeTime {
  const lib = libfaketime();
  if (!lib) throw new Error('libfaketime not found: run `bash scripts/system-deps.sh test`');
  const file = join(dir, 'faketime.rc');
  writeFileSync(file, `${initial}\n`);
  return {
    env: { LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: file, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    set(offset: string) {
      writeFileSync(file, `${offset}\n`);
    },
  };
}

/** The offset that puts the faked clock at `at` (epoch ms) now: whole seconds, as libfaketime takes them. */
export function offsetTo(at: number): string {
  const s = Math.round((at - Date.now()) / 1000);
  return s >= 0 ? `+${s}` : `${s}`;
}
