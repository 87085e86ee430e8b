/**
 * The agent's log: pino JSON lines, one object per event, with the stable error `code` as a
 * field wherever there is one. `logFile: "-"` logs to stdout (pm2 captures it); otherwise the
 * directory is created and the file appended to.
 */
import { pino, type Logger } from 'pino';

export function createLogger(file: string, level: string, name = 'holdfast'): Logger {
  const dest = file === '-' ? pino.destination({ dest: 1, sync: false }) : pino.destination({ dest: file, mkdir: true, sync: false });
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** A logger that drops everything (admin commands that must print only their result). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
