/**
 * The paths a config names, checked at load so that a config that passes `config validate`
 * does not crash the agent later: every file exists, is a regular file and is no symbolic link
 * loop, and a secret is not readable by group or others; a directory or log file the agent
 * creates has a place to be created. Each problem carries its stable code (drivers/files.ts) at
 * the start of the message, and the key's path. Run on whatever the document holds, typed or
 * not, after relative paths were resolved.
 */
import { statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { checkFile, creatableProblem, kindOf, problemOf, type FileProblem } from '../../drivers/files.js';
import type { ConfigProblem } from './load.js';

type Doc = Record<string, unknown>;

const obj = (v: unknown): Doc => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Doc) : {});
const list = (v: unknown): Doc[] => (Array.isArray(v) ? v.map(obj) : []);
const say = (p: FileProblem) => `${p.code}: ${p.message}`;

/** Per uplink type: the files it names, and which of them are secrets. */
const UPLINK_FILES: Record<string, readonly (readonly [key: string, secret: boolean])[]> = {
  mqtt: [['passwordFile', true]],
  otlp: [['headersFile', true], ['tlsKeyFile', true], ['tlsCaFile', false], ['tlsCertFile', false]],
  sep2: [['keyFile', true], ['certFile', false], ['caFile', false]],
};

/** Every check of this module; the key file and the data directory keep their own codes. */
export function pathChecks(doc: Doc, problems: ConfigProblem[]): void {
  const file = (path: string, value: unknown, secret: boolean) => {
    if (typeof value !== 'string' || value === '') return;
    const p = checkFile(value, { secret });
    if (p) problems.push({ path, message: say(p) });
  };
  list(doc.uplinks).forEach((u, i) => {
    for (const [key, secret] of UPLINK_FILES[String(u.type)] ?? []) file(`/uplinks/${i}/${key}`, u[key], secret);
  });
  file('/api/tokenFile', obj(doc.api).tokenFile, true);
  list(doc.buses).forEach((b, i) => {
    list(b.devices).forEach((d, j) => {
      if (d.map !== 'sunspec') file(`/buses/${i}/devices/${j}/map`, d.map, false);
    });
  });
  const profile = obj(doc.hardware).profile;
  // A bare name is one of hardware/profiles/; a path is read as given (hardware/profile.ts).
  if (typeof profile === 'string' && (profile.includes('/') || profile.endsWith('.json'))) file('/hardware/profile', resolve(profile), false);
  keyFileCheck(doc, problems);
  dirCheck('/dataDir', doc.dataDir, problems, true);
  // The spool holds batches as the store does: private like the data directory.
  const store = obj(doc.store);
  dirCheck(store.spoolDir !== undefined ? '/store/spoolDir' : '/spoolDir', store.spoolDir ?? doc.spoolDir, problems, true);
  logFileCheck(doc.logFile, problems);
}

/** The store's key file: KEY_FILE_MISSING and KEY_FILE_INSECURE as before, any other problem by its code. */
function keyFileCheck(doc: Doc, problems: ConfigProblem[]): void {
  const store = obj(doc.store);
  const keyFile = store.keyFile;
  if (store.encryption === 'off' || typeof keyFile !== 'string') return;
  const p = checkFile(keyFile, { secret: true });
  if (!p) return;
  if (p.code === 'CONFIG_FILE_MISSING') {
    problems.push({ path: '/store/keyFile', message: `KEY_FILE_MISSING: ${keyFile} does not exist; create it with: holdfast keygen --out ${keyFile} (or set "encryption": "off" explicitly)` });
  } else if (p.code === 'SECRET_FILE_INSECURE') {
    problems.push({ path: '/store/keyFile', message: `KEY_FILE_INSECURE: ${p.message.replace('a secret must be 0600: ', '')}` });
  } else {
    problems.push({ path: '/store/keyFile', message: say(p) });
  }
}

/**
 * A directory the agent creates if missing. If it exists it must be a directory (and the data
 * directory private: DATA_DIR_INSECURE); if not, it must be creatable.
 */
function dirCheck(path: string, value: unknown, problems: ConfigProblem[], private_: boolean): void {
  if (typeof value !== 'string' || value === '') return;
  const st = statOrCreatable(path, value, problems);
  if (!st) return;
  if (!st.isDirectory()) problems.push({ path, message: `${value} exists and is ${st.isFile() ? 'a file' : kindOf(st)}, not a directory` });
  else if (private_ && (st.mode & 0o077) !== 0) {
    problems.push({ path, message: `DATA_DIR_INSECURE: ${value} has mode ${(st.mode & 0o777).toString(8)}; run chmod 700 ${value}` });
  }
}

/** The path's stat; null when it does not exist (a problem pushed unless it can be created) or cannot be looked at. */
function statOrCreatable(path: string, value: string, problems: ConfigProblem[]): Stats | null {
  try {
    return statSync(value);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    const p = errno === 'ENOENT' || errno === 'ENOTDIR' ? creatableProblem(value) : problemOf(value, e);
    if (p) problems.push({ path, message: say(p) });
    return null;
  }
}

/** The log file is appended to (created, with its folder, if missing); "-" is stdout. */
function logFileCheck(value: unknown, problems: ConfigProblem[]): void {
  if (typeof value !== 'string' || value === '' || value === '-') return;
  const st = statOrCreatable('/logFile', value, problems);
  if (!st) return;
  // A character device (a console, /dev/null) is a fine place for a log; a directory or FIFO is not.
  if (!st.isFile() && !st.isCharacterDevice()) problems.push({ path: '/logFile', message: say({ code: 'CONFIG_FILE_NOT_REGULAR', message: `${value} is ${kindOf(st)}, not a file to append to` }) });
}
