/**
 * A config refuses what cannot work, before anything starts: files it names that are missing,
 * symbolic link loops, not regular files, secrets readable by others; intervals out of their
 * range; a config file that is a device, a FIFO or too large. A UTF-8 BOM is accepted. Through
 * buildConfig/loadConfig and through the real CLI (`config validate` and `run`: exit 78, nothing
 * created).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig, CONFIG_MAX_BYTES, ConfigError, loadConfig } from '../agent/config/load.js';
import { configSchema } from '../agent/config/schema.js';
import { cli } from './helpers/agent.js';
import { CLEAN_ENV, tempDir, validRaw, writeJson } from './helpers/config-fixtures.js';

type Raw = Record<string, unknown>;
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function refused(t: TapTest, fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    t.ok(e instanceof ConfigError, `a ConfigError (${(e as Error).message.slice(0, 200)})`);
    return e as ConfigError;
  }
  t.fail('config was accepted');
  throw new Error('config was accepted');
}

const secretFile = (dir: string, name: string, text: string, mode = 0o600) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
};
const rtuBus = (name: string, port: string, device: string) => ({ name, type: 'rtu', port, devices: [{ name: device, map: 'sunspec' }] });
const loopAt = (dir: string, name = 'loop') => {
  const l = join(dir, name);
  symlinkSync(l, l);
  return l;
};
const mqtt = (over: Raw = {}) => ({ name: 'broker', type: 'mqtt', url: 'mqtt://127.0.0.1:1', ...over });

interface Case {
  name: string;
  raw(dir: string): Raw;
  /** The key at fault and what its message must say. */
  path: string;
  says: (string | RegExp)[];
}

const CASES: Case[] = [
  {
    name: 'MQTT passwordFile missing',
    raw: (d) => validRaw(d, { uplinks: [mqtt({ username: 'u', passwordFile: join(d, 'absent.pw') })] }),
    path: '/uplinks/0/passwordFile',
    says: ['CONFIG_FILE_MISSING', 'absent.pw'],
  },
  {
    name: 'MQTT passwordFile mode 0644',
    raw: (d) => validRaw(d, { uplinks: [mqtt({ username: 'u', passwordFile: secretFile(d, 'open.pw', 'pw\n', 0o644) })] }),
    path: '/uplinks/0/passwordFile',
    says: ['SECRET_FILE_INSECURE', 'open.pw', 'chmod 600'],
  },
  {
    name: 'MQTT passwordFile is a directory',
    raw: (d) => (mkdirSync(join(d, 'pwdir')), validRaw(d, { uplinks: [mqtt({ username: 'u', passwordFile: join(d, 'pwdir') })] })),
    path: '/uplinks/0/passwordFile',
    says: ['CONFIG_FILE_NOT_REGULAR', 'pwdir'],
  },
  {
    name: 'OTLP headersFile mode 0644',
    raw: (d) => validRaw(d, { uplinks: [{ name: 'otel', type: 'otlp', url: 'http://127.0.0.1:4317', headersFile: secretFile(d, 'headers.json', '{}', 0o644) }] }),
    path: '/uplinks/0/headersFile',
    says: ['SECRET_FILE_INSECURE', 'headers.json'],
  },
  {
    name: 'OTLP tlsKeyFile mode 0640',
    raw: (d) => validRaw(d, {
      uplinks: [{ name: 'otel', type: 'otlp', url: 'https://127.0.0.1:4317', tlsCertFile: secretFile(d, 'c.pem', 'x', 0o644), tlsKeyFile: secretFile(d, 'k.pem', 'x', 0o640) }],
    }),
    path: '/uplinks/0/tlsKeyFile',
    says: ['SECRET_FILE_INSECURE', 'k.pem', 'mode 640'],
  },
  {
    name: 'IEEE 2030.5 keyFile mode 0644 (certificate and CA may be public)',
    raw: (d) => validRaw(d, {
      uplinks: [{ name: 'utility', type: 'sep2', url: 'https://127.0.0.1:8443', certFile: secretFile(d, 'c.pem', 'x', 0o644), keyFile: secretFile(d, 'key.pem', 'x', 0o644), caFile: secretFile(d, 'ca.pem', 'x', 0o644) }],
    }),
    path: '/uplinks/0/keyFile',
    says: ['SECRET_FILE_INSECURE', 'key.pem'],
  },
  {
    name: 'api tokenFile mode 0644',
    raw: (d) => validRaw(d, { api: { tokenFile: secretFile(d, 'token', 'abc', 0o644) } }),
    path: '/api/tokenFile',
    says: ['SECRET_FILE_INSECURE', 'token'],
  },
  {
    name: 'dataDir is a symlink loop',
    raw: (d) => validRaw(d, { dataDir: loopAt(d) }),
    path: '/dataDir',
    says: ['CONFIG_PATH_LOOP', 'loop'],
  },
  {
    name: 'dataDir under a symlink loop',
    raw: (d) => validRaw(d, { dataDir: join(loopAt(d), 'data') }),
    path: '/dataDir',
    says: ['CONFIG_PATH_LOOP'],
  },
  {
    name: 'dataDir under a regular file',
    raw: (d) => (writeFileSync(join(d, 'plain'), 'x'), validRaw(d, { dataDir: join(d, 'plain', 'data') })),
    path: '/dataDir',
    says: ['CONFIG_FILE_NOT_REGULAR', 'cannot be created'],
  },
  {
    name: 'logFile is a symlink loop',
    raw: (d) => validRaw(d, { logFile: loopAt(d, 'log-loop') }),
    path: '/logFile',
    says: ['CONFIG_PATH_LOOP', 'log-loop'],
  },
  {
    name: 'logFile is a directory',
    raw: (d) => (mkdirSync(join(d, 'logs')), validRaw(d, { logFile: join(d, 'logs') })),
    path: '/logFile',
    says: ['CONFIG_FILE_NOT_REGULAR', 'a directory'],
  },
  {
    name: 'store keyFile is a symlink loop (not reported as missing)',
    raw: (d) => validRaw(d, { store: { keyFile: loopAt(d, 'key-loop') } }),
    path: '/store/keyFile',
    says: ['CONFIG_PATH_LOOP'],
  },
  {
    name: 'a device map that is /dev/zero (refused unread)',
    raw: (d) => validRaw(d, { buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'm', map: '/dev/zero' }] }] }),
    path: '/buses/0/devices/0/map',
    says: ['CONFIG_FILE_NOT_REGULAR', '/dev/zero', 'character device'],
  },
  {
    name: 'two rtu buses on one serial port',
    raw: (d) => validRaw(d, { buses: [rtuBus('a', join(d, 'ttyS9'), 'm1'), rtuBus('b', join(d, 'ttyS9'), 'm2')] }),
    path: '/buses/1/port',
    says: ['ttyS9', 'already bus "a"', 'one port is one bus'],
  },
  {
    name: 'two rtu buses on one serial port, once by a symlink (as /dev/serial/by-id names it)',
    raw: (d) => {
      writeFileSync(join(d, 'ttyUSB0'), '');
      symlinkSync(join(d, 'ttyUSB0'), join(d, 'by-id-port'));
      return validRaw(d, { buses: [rtuBus('a', join(d, 'ttyUSB0'), 'm1'), rtuBus('b', join(d, 'by-id-port'), 'm2')] });
    },
    path: '/buses/1/port',
    says: ['by-id-port', 'already bus "a"'],
  },
  {
    name: 'commitIntervalMs 1e30 (Node would arm it as 1 ms)',
    raw: (d) => validRaw(d, { store: { keyFile: join(d, 'keys', 'holdfast.key'), commitIntervalMs: 1e30 } }),
    path: '/store/commitIntervalMs',
    says: ['must be <= 60000'],
  },
  {
    name: 'a retry interval of 1e30',
    raw: (d) => validRaw(d, { uplinks: [mqtt({ retry: { maxMs: 1e30 } })] }),
    path: '/uplinks/0/retry/maxMs',
    says: ['must be <='],
  },
  {
    name: 'shutdownTimeoutMs beyond a minute',
    raw: (d) => validRaw(d, { shutdownTimeoutMs: 600_000 }),
    path: '/shutdownTimeoutMs',
    says: ['must be <= 60000'],
  },
];

t.test('each refusal: the key at fault, its code and the file named', async (t) => {
  for (const c of CASES) {
    t.test(c.name, async (t) => {
      const dir = tempDir(t);
      const e = refused(t, () => buildConfig(c.raw(dir), { env: {}, baseDir: dir }));
      const p = e.problems.find((x) => x.path === c.path);
      t.ok(p, `a problem at ${c.path} (got ${e.problems.map((x) => `${x.path}: ${x.message}`).join('; ')})`);
      for (const s of c.says) t.match(p?.message, s, `says ${s}`);
    });
  }
});

t.test('the same through `holdfast config validate` and `holdfast run`: exit 78, nothing created', async (t) => {
  for (const c of CASES) {
    t.test(c.name, async (t) => {
      const dir = tempDir(t);
      const raw = c.raw(dir);
      const file = writeJson(join(dir, 'holdfast.json'), raw);
      const v = cli(['config', 'validate', file], CLEAN_ENV);
      t.equal(v.code, 78, `validate exits 78 (${v.stderr.slice(0, 300)})`);
      t.match(v.stderr, c.path);
      for (const s of c.says) t.match(v.stderr, s, `validate says ${s}`);
      const r = cli(['run', '--config', file], CLEAN_ENV);
      t.equal(r.code, 78, `run exits 78, no crash (${r.stderr.slice(0, 300)})`);
      t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
      t.notOk(existsSync(join(String(raw.dataDir), 'holdfast.db')), 'no database: the agent did not start');
    });
  }
});

t.test('the config file itself: regular files only, size-limited, a BOM accepted', async (t) => {
  const dir = tempDir(t);
  const good = validRaw(dir);
  const text = JSON.stringify(good, null, 2);

  const bom = writeJson(join(dir, 'bom.json'), `\ufeff${text}`);
  t.equal(loadConfig(bom, { env: {} }).gatewayId, 'gw-test', 'a UTF-8 BOM is accepted');
  const vb = cli(['config', 'validate', bom], CLEAN_ENV);
  t.equal(vb.code, 0, `validate accepts it (${vb.stderr})`);

  const big = writeJson(join(dir, 'big.json'), text + ' '.repeat(CONFIG_MAX_BYTES + 1 - text.length));
  let e = refused(t, () => loadConfig(big, { env: {} }));
  t.equal(e.code, 'CONFIG_FILE_TOO_LARGE');
  t.match(e.message, 'big.json');
  const justFits = writeJson(join(dir, 'fits.json'), text + ' '.repeat(CONFIG_MAX_BYTES - text.length));
  t.equal(loadConfig(justFits, { env: {} }).gatewayId, 'gw-test', `exactly ${CONFIG_MAX_BYTES} bytes is accepted`);

  e = refused(t, () => loadConfig('/dev/zero', { env: {} }));
  t.equal(e.code, 'CONFIG_FILE_NOT_REGULAR', '/dev/zero is refused unread');
  t.match(e.message, '/dev/zero is a character device');

  const fifo = join(dir, 'fifo.json');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  e = refused(t, () => loadConfig(fifo, { env: {} }));
  t.equal(e.code, 'CONFIG_FILE_NOT_REGULAR', 'a FIFO is refused without waiting for a writer');

  const loop = loopAt(dir, 'cfg-loop');
  e = refused(t, () => loadConfig(loop, { env: {} }));
  t.equal(e.code, 'CONFIG_PATH_LOOP');

  e = refused(t, () => loadConfig(dir, { env: {} }));
  t.equal(e.code, 'CONFIG_FILE_NOT_REGULAR', 'a directory');

  for (const [file, code] of [['/dev/zero', 'CONFIG_FILE_NOT_REGULAR'], [big, 'CONFIG_FILE_TOO_LARGE'], [fifo, 'CONFIG_FILE_NOT_REGULAR']] as const) {
    const v = cli(['config', 'validate', file], CLEAN_ENV);
    t.equal(v.code, 78, `validate ${file}: 78`);
    t.match(v.stderr, code);
    const r = cli(['run', '--config', file], CLEAN_ENV);
    t.equal(r.code, 78, `run ${file}: 78`);
  }
});

t.test('every duration in the schema has a maximum a Node timer can hold', async (t) => {
  const TIMER_MAX = 2 ** 31 - 1;
  // Ages compared with a clock, never armed as a timer.
  const notTimers = new Set(['retry.maxAgeMs']);
  const found: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    for (const [k, v] of Object.entries((n.properties as Record<string, unknown>) ?? {})) {
      const p = path ? `${path}.${k}` : k;
      const s = v as { type?: string; maximum?: number };
      if (/Ms$/.test(k)) {
        found.push(p);
        t.ok(typeof s.maximum === 'number', `${p} has a maximum`);
        if (!notTimers.has(p.replace(/^.*\.(retry\.maxAgeMs)$/, '$1'))) t.ok((s.maximum ?? Infinity) <= TIMER_MAX, `${p} <= 2^31-1 ms (${s.maximum})`);
      }
      walk(v, p);
    }
    for (const k of ['items', 'oneOf']) {
      const sub = n[k];
      if (Array.isArray(sub)) sub.forEach((x) => walk(x, path));
      else walk(sub, path);
    }
  };
  walk(configSchema, '');
  t.ok(found.length >= 25, `${found.length} durations found`);
});
