import { readFileSync } from 'node:fs';

/** The package version, read once from package.json next to the build. */
export const VERSION: string = (() => {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      /* try the next */
    }
  }
  return '0.0.0';
})();

/**
 * The clock floor: no real wall clock reads earlier than the day this release was made, so a
 * wall time below it was stamped by a clock NTP had not set yet (a board without an RTC boots in
 * 1970). Raise it with each release.
 */
export const CLOCK_FLOOR_MS = Date.UTC(2026, 10, 1);
