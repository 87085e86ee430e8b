/**
 * The one reader of the JSON files the agent takes (the config, device maps, board profiles) and
 * the error that refuses one: a regular file, bounded in size, a UTF-8 byte order mark dropped,
 * then parsed; every problem listed by JSON path in a ConfigError (exit status 78 in the CLI).
 */
import { readSmallFile } from '../../drivers/files.js';
import { HoldfastError } from '../errors.js';

/** One problem in a config, by JSON path (`/uplinks/0/retry/baseMs`). */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** A config file, device map or profile larger than this is not one (and is not read past it). */
export const CONFIG_MAX_BYTES = 1024 * 1024;

export type ConfigErrorCode =
  | 'CONFIG_INVALID' | 'CONFIG_PARSE' | 'CONFIG_NOT_FOUND' | 'CONFIG_REJECTED'
  | 'CONFIG_FILE_NOT_REGULAR' | 'CONFIG_FILE_TOO_LARGE' | 'CONFIG_PATH_LOOP' | 'CONFIG_FILE_UNREADABLE';

export class ConfigError extends HoldfastError {
  readonly problems: ConfigProblem[];
  constructor(code: ConfigErrorCode, problems: ConfigProblem[], file?: string) {
    const lines = problems.map((p) => `  ${p.path || '/'}: ${p.message}`).join('\n');
    super(code, `configuration refused${file ? ` (${file})` : ''}:\n${lines}`, problems[0]?.path);
    this.problems = problems;
  }
}


/**
 * Reads and parses a JSON file; `what` names it in the messages ("device map"). Throws
 * ConfigError: CONFIG_NOT_FOUND (or the file check's own code) and CONFIG_PARSE.
 */
export function readJsonFile(file: string, what?: string, hint = ''): unknown {
  // Only a regular file, and only up to the limit: a config of /dev/zero or a FIFO is refused unread.
  const r = readSmallFile(file, { maxBytes: CONFIG_MAX_BYTES });
  if (!r.ok) {
    const code = r.code === 'CONFIG_FILE_MISSING' ? 'CONFIG_NOT_FOUND' : r.code === 'SECRET_FILE_INSECURE' ? 'CONFIG_FILE_UNREADABLE' : r.code;
    throw new ConfigError(code, [{ path: '/', message: `cannot read ${what ? `${what} ` : ''}${file}: ${r.message}${hint}` }], file);
  }
  // A UTF-8 byte order mark (Windows editors write one) is not part of the JSON.
  let text = r.data.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError('CONFIG_PARSE', [{ path: '/', message: `not JSON: ${(e as Error).message}` }], file);
  }
}

/** Freezes a parsed document through and through: validated once, then never changed. */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
