/**
 * The small files a config names and the drivers read: passwords, tokens, keys, certificates,
 * headers, device maps, the config itself. Each is read only if it is a regular file of bounded
 * size (a config naming /dev/zero or a FIFO must not hang or fill memory), and a secret only if
 * group and others cannot read it. A problem is a result with a stable code, never a throw, so a
 * file that goes missing while the agent runs (a password being rotated) is a failed connect,
 * not a crash.
 *
 * The file is opened with O_NONBLOCK and checked with fstat on the open descriptor, so the file
 * checked is the file read, and opening a FIFO does not wait for a writer.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

/** The stable codes a file problem has (agent/error-catalogue.ts documents them). */
export type FileCode =
  | 'CONFIG_FILE_MISSING'
  | 'CONFIG_FILE_NOT_REGULAR'
  | 'CONFIG_FILE_TOO_LARGE'
  | 'CONFIG_PATH_LOOP'
  | 'CONFIG_FILE_UNREADABLE'
  | 'SECRET_FILE_INSECURE';

export interface FileProblem {
  code: FileCode;
  /** The path at fault and what is wrong with it, e.g. "/etc/holdfast/mqtt.pw does not exist". */
  message: string;
  errno?: string;
}

export interface FileRules {
  /** Refuse the file if group or others have any access to it (mode 0600 or stricter). */
  secret?: boolean;
  /** Refuse files larger than this (default DEFAULT_MAX_BYTES). */
  maxBytes?: number;
}

/** Credentials, certificates, maps: none is near this. */
export const DEFAULT_MAX_BYTES = 1024 * 1024;

export type ReadResult = { ok: true; data: Buffer } | ({ ok: false } & FileProblem);

/** Turns an fs error on `path` into a problem with a stable code. */
export function problemOf(path: string, e: unknown): FileProblem {
  const errno = (e as NodeJS.ErrnoException).code ?? 'EIO';
  switch (errno) {
    case 'ENOENT':
      return { code: 'CONFIG_FILE_MISSING', message: `${path} does not exist`, errno };
    case 'ENOTDIR':
      return { code: 'CONFIG_FILE_MISSING', message: `${path} does not exist (a part of the path is not a directory)`, errno };
    case 'ELOOP':
      return { code: 'CONFIG_PATH_LOOP', message: `${path} is a symbolic link loop (or has too many levels of links)`, errno };
    default:
      return { code: 'CONFIG_FILE_UNREADABLE', message: `cannot read ${path}: ${errno}`, errno };
  }
}

/** What is wrong with an open or stat'ed file under `rules`, or null. */
export function statProblem(path: string, st: Stats, rules: FileRules = {}): FileProblem | null {
  if (!st.isFile()) return { code: 'CONFIG_FILE_NOT_REGULAR', message: `${path} is ${kindOf(st)}, not a regular file` };
  const max = rules.maxBytes ?? DEFAULT_MAX_BYTES;
  if (st.size > max) return { code: 'CONFIG_FILE_TOO_LARGE', message: `${path} has ${st.size} bytes; the limit is ${max}` };
  if (rules.secret && (st.mode & 0o077) !== 0) {
    return { code: 'SECRET_FILE_INSECURE', message: `${path} has mode ${(st.mode & 0o777).toString(8)}; a secret must be 0600: run chmod 600 ${path}` };
  }
  return null;
}

export function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Checks a file without reading it (config validation). */
export function checkFile(path: string, rules: FileRules = {}): FileProblem | null {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    return problemOf(path, e);
  }
  return statProblem(path, st, rules);
}

/** Reads a whole small file, or says why not. Never throws. */
export function readSmallFile(path: string, rules: FileRules = {}): ReadResult {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return { ok: false, ...problemOf(path, e) };
  }
  try {
    const bad = statProblem(path, fstatSync(fd), rules);
    if (bad) return { ok: false, ...bad };
    // Read to the limit + 1, not to the size fstat gave: a file growing meanwhile stays bounded.
    const max = rules.maxBytes ?? DEFAULT_MAX_BYTES;
    const buf = Buffer.alloc(Math.min(max + 1, 64 * 1024));
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > max) return { ok: false, code: 'CONFIG_FILE_TOO_LARGE', message: `${path} has more than ${max} bytes` };
      parts.push(Buffer.from(buf.subarray(0, n)));
    }
    return { ok: true, data: Buffer.concat(parts, total) };
  } catch (e) {
    return { ok: false, ...problemOf(path, e) };
  } finally {
    closeSync(fd);
  }
}

/**
 * A directory (or the file in it) the agent will create: the nearest part of `path` that exists
 * must be a directory, and no part may be a symbolic link loop. Null when fine; a path that
 * exists is checked by the caller.
 */
export function creatableProblem(path: string): FileProblem | null {
  let p = path;
  for (;;) {
    try {
      const st = statSync(p);
      if (st.isDirectory()) return null;
      return { code: 'CONFIG_FILE_NOT_REGULAR', message: `${p} is ${st.isFile() ? 'a file' : kindOf(st)}, so ${path} cannot be created under it` };
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).code;
      if (errno === 'ELOOP') return { code: 'CONFIG_PATH_LOOP', message: `${p} is a symbolic link loop, so ${path} cannot be created`, errno };
      if (errno !== 'ENOENT' && errno !== 'ENOTDIR') return problemOf(p, e);
      if (errno === 'ENOENT' && isLink(p)) return { code: 'CONFIG_FILE_MISSING', message: `${p} is a symbolic link to a path that does not exist`, errno };
    }
    const up = dirname(p);
    if (up === p) return null;
    p = up;
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
