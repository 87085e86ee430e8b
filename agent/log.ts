/**
 * The agent's log: pino JSON lines, one object per event, with the stable error `code` as a
 * field wherever there is one. `logFile: "-"` logs to stdout (pm2 captures it); otherwise the
 * directory is created (0750) and the file appended to (created 0640: a log names devices,
 * uplinks and addresses, not for every local user).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';

export const LOG_FILE_MODE = 0o640;
export const LOG_DIR_MODE = 0o750;

export interface AgentLog {
  log: Logger;
  /** Reopens the log file by its name (after logrotate moved it away); false when logging to stdout. */
  reopen(): boolean;
}

export function openLog(file: string, level: string, name = 'holdfast'): AgentLog {
  if (file === '-') {
    const dest = pino.destination({ dest: 1, sync: false });
    return { log: pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest), reopen: () => false };
  }
  mkdirSync(dirname(file), { recursive: true, mode: LOG_DIR_MODE });
  const dest = pino.destination({ dest: file, sync: false, mode: LOG_FILE_MODE });
  return {
    log: pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest),
    reopen: () => {
      dest.reopen();
      return true;
    },
  };
}

export function createLogger(file: string, level: string, name = 'holdfast'): Logger {
  return openLog(file, level, name).log;
}

/** A logger that drops everything (admin commands that must print only their result). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
