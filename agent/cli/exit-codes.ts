/**
 * Exit statuses (sysexits.h where one fits), so that pm2, systemd and a shell see why a start
 * failed, and a supervisor can tell "retrying cannot help" (78) from "retry later" (75).
 */
import { ConfigError } from '../config/load.js';

export const EXIT = Object.freeze({
  OK: 0,
  /** A crash while running (an uncaught exception: stopped in order, for the supervisor to restart). */
  FAILURE: 1,
  USAGE: 2,
  /** A start failure not listed below (EX_SOFTWARE). */
  SOFTWARE: 70,
  /** The store cannot be opened: corrupt, unreadable, written by a newer release (EX_IOERR). */
  STORE: 74,
  /** A resource that may come free: the API port is in use (EX_TEMPFAIL). */
  TEMPFAIL: 75,
  /** The configuration, or a file or directory it names, is refused (EX_CONFIG). */
  CONFIG: 78,
});

const CONFIG_CODES = /^(CONFIG_|KEY_|SECRET_FILE_INSECURE$|DATA_DIR_INSECURE$|USAGE$)/;
const STORE_CODES = /^(STORE_|SCHEMA_TOO_NEW$|SQLITE_|PAYLOAD_UNREADABLE$)/;
const TEMP_CODES = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EAGAIN', 'EMFILE', 'ENFILE', 'ENOMEM']);

/** The exit status of a start that threw `e`. */
export function startExitCode(e: unknown): number {
  if (e instanceof ConfigError) return EXIT.CONFIG;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return EXIT.SOFTWARE;
  if (CONFIG_CODES.test(code)) return EXIT.CONFIG;
  if (STORE_CODES.test(code)) return EXIT.STORE;
  if (TEMP_CODES.has(code)) return EXIT.TEMPFAIL;
  return EXIT.SOFTWARE;
}
