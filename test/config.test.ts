/**
 * Configuration: malformed and hostile configs are refused before anything starts, with the
 * path of the key at fault, through buildConfig/loadConfig and through the real CLI
 * (`config validate` and `run`, exit 78, nothing created). Also defaults, env overrides,
 * relative paths, deep freezing, the published schema, and the CLI's usage conventions.
 */
import t from 'tap';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { buildConfig, ConfigError, loadConfig, type LoadOptions } from '../agent/config/load.js';
import { configSchema } from '../agent/config/schema.js';
import { HoldfastError } from '../agent/errors.js';
import { generateKey } from '../store/codec.js';
import { cli, ROOT } from './helpers/agent.js';
import { CLEAN_ENV, tempDir, validRaw, writeJson } from './helpers/config-fixtures.js';

const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;

type Raw = Record<string, unknown>;
/** tap's subtest type (the last overload of t.test takes just the callback). */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Runs fn, expects a ConfigError, returns it. */
function refused(t: TapTest, fn: () => unknown, code = 'CONFIG_INVALID'): ConfigError {
  try {
    fn();
  } catch (e) {
    t.ok(e instanceof ConfigError, 'a ConfigError');
    t.ok(e instanceof HoldfastError, 'which is a HoldfastError');
    t.equal((e as ConfigError).code, code, `code ${code}`);
    return e as ConfigError;
  }
  t.fail('config was accepted');
  throw new Error('config was accepted');
}

function paths(e: ConfigError): string[] {
  return e.problems.map((p) => p.path);
}


const build = (raw: unknown, dir: string, opts: LoadOptions = {}) => buildConfig(raw, { env: {}, baseDir: dir, ...opts });

/** A hostile config: how to make it, what must be refused, and where. */
interface BadCase {
  name: string;
  raw(dir: string): Raw;
  setup?(dir: string): void;
  /** Paths that must all be reported. */
  paths: string[];
  /** Substrings the message must contain (beyond the paths). */
  says?: string[];
}

const uplink = (over: Raw = {}) => ({ name: 'broker', type: 'mqtt', url: 'mqtt://127.0.0.1:1', ...over });
const keyOf = (dir: string) => join(dir, 'keys', 'holdfast.key');

const BAD: BadCase[] = [
  { name: 'string where integer', raw: (d) => validRaw(d, { sweepIntervalMs: '5' }), paths: ['/sweepIntervalMs'], says: ['integer'] },
  { name: 'unknown top-level key', raw: (d) => validRaw(d, { bogusKey: true }), paths: ['/bogusKey'], says: ['unknown key'] },
  {
    name: 'unknown nested key',
    raw: (d) => validRaw(d, { uplinks: [uplink({ retry: { baseMs: 100, bogus: 1 } })] }),
    paths: ['/uplinks/0/retry/bogus'],
    says: ['unknown key'],
  },
  {
    name: 'negative commit interval',
    raw: (d) => validRaw(d, { store: { keyFile: keyOf(d), commitIntervalMs: -1 } }),
    paths: ['/store/commitIntervalMs'],
  },
  {
    name: 'negative retry base',
    raw: (d) => validRaw(d, { uplinks: [uplink({ retry: { baseMs: -5 } })] }),
    paths: ['/uplinks/0/retry/baseMs'],
  },
  {
    name: 'maxMs < baseMs',
    raw: (d) => validRaw(d, { uplinks: [uplink({ retry: { baseMs: 5000, maxMs: 1000 } })] }),
    paths: ['/uplinks/0/retry/maxMs'],
    says: ['baseMs'],
  },
  {
    name: 'throttle release above its trigger',
    raw: (d) => validRaw(d, { hardware: { throttle: { aboveC: 70, belowC: 75 } } }),
    paths: ['/hardware/throttle/belowC'],
    says: ['below aboveC'],
  },
  {
    name: 'throttle factor 0 (would stop the drain)',
    raw: (d) => validRaw(d, { hardware: { throttle: { factor: 0 } } }),
    paths: ['/hardware/throttle/factor'],
  },
  {
    name: 'duplicate uplink names',
    raw: (d) => validRaw(d, { uplinks: [uplink(), uplink({ url: 'mqtt://127.0.0.1:2' })] }),
    paths: ['/uplinks/1/name'],
    says: ['duplicate', '"broker"'],
  },
  {
    name: 'selfMetrics names an unknown uplink',
    raw: (d) => validRaw(d, { uplinks: [uplink(), { name: 'otel', type: 'otlp', url: 'http://127.0.0.1:4317' }], selfMetrics: { uplink: 'nosuch' } }),
    paths: ['/selfMetrics/uplink'],
    says: ['no uplink is named "nosuch"', 'the otlp uplinks are "otel"'],
  },
  {
    name: 'selfMetrics names an mqtt uplink',
    raw: (d) => validRaw(d, { uplinks: [uplink()], selfMetrics: { uplink: 'broker' } }),
    paths: ['/selfMetrics/uplink'],
    says: ['uplink "broker" is of type mqtt', 'over OTLP only', 'there is no uplink of type otlp'],
  },
  {
    name: 'selfMetrics: interval too short, unknown key, no uplink',
    raw: (d) => validRaw(d, { selfMetrics: { intervalMs: 10, every: 5 } }),
    paths: ['/selfMetrics/intervalMs', '/selfMetrics/every', '/selfMetrics/uplink'],
  },
  {
    name: 'bad cron expression',
    raw: (d) => validRaw(d, { store: { keyFile: keyOf(d), purgeCron: '61 3 * * *' } }),
    paths: ['/store/purgeCron'],
    says: ['cron'],
  },
  {
    name: 'missing key file with encryption on',
    raw: (d) => validRaw(d, { store: { keyFile: join(d, 'nokeys', 'absent.key') } }),
    paths: ['/store/keyFile'],
    says: ['KEY_FILE_MISSING', 'holdfast keygen'],
  },
  {
    name: 'key file mode 0644',
    raw: (d) => validRaw(d),
    setup: (d) => chmodSync(keyOf(d), 0o644),
    paths: ['/store/keyFile'],
    says: ['KEY_FILE_INSECURE', 'chmod 600'],
  },
  {
    name: 'world-readable existing data dir',
    raw: (d) => validRaw(d),
    setup: (d) => {
      mkdirSync(join(d, 'data'));
      chmodSync(join(d, 'data'), 0o755);
    },
    paths: ['/dataDir'],
    says: ['DATA_DIR_INSECURE', 'chmod 700'],
  },
];

t.test('buildConfig refuses each hostile config with the path of the key at fault', async (t) => {
  for (const c of BAD) {
    t.test(c.name, async (t) => {
      const dir = tempDir(t);
      const raw = c.raw(dir);
      c.setup?.(dir);
      const e = refused(t, () => build(raw, dir));
      for (const p of c.paths) t.ok(paths(e).includes(p), `problem at ${p} (got ${paths(e).join(', ')})`);
      for (const p of c.paths) t.match(e.message, p, `message names ${p}`);
      for (const s of c.says ?? []) t.match(e.message, s, `message says ${s}`);
      t.equal(e.at, e.problems[0].path, 'error.at is the first path');
    });
  }
});

t.test('the same configs through `holdfast config validate` and `holdfast run`: exit 78, nothing started', async (t) => {
  for (const c of BAD) {
    t.test(c.name, async (t) => {
      const dir = tempDir(t);
      const raw = c.raw(dir);
      c.setup?.(dir);
      const file = writeJson(join(dir, 'holdfast.json'), raw);
      const dataDir = raw.dataDir as string;
      const dataExisted = existsSync(dataDir);

      const v = cli(['config', 'validate', file], CLEAN_ENV);
      t.equal(v.code, 78, `config validate exits 78 (stderr: ${v.stderr})`);
      for (const p of c.paths) t.match(v.stderr, p, `validate stderr names ${p}`);
      for (const s of c.says ?? []) t.match(v.stderr, s, `validate stderr says ${s}`);
      t.notMatch(v.stdout, /valid \(/, 'not reported valid');

      const r = cli(['run', '--config', file], CLEAN_ENV);
      t.equal(r.code, 78, `run exits 78 (stderr: ${r.stderr})`);
      for (const p of c.paths) t.match(r.stderr, p, `run stderr names ${p}`);
      t.match(r.stderr, 'CONFIG_INVALID');
      if (dataExisted) t.same(readdirSync(dataDir), [], 'no database created in the existing data dir');
      else t.notOk(existsSync(dataDir), 'no data directory created');
      t.notOk(existsSync(join(dataDir, 'holdfast.db')), 'no database');
      t.notOk(existsSync(raw.logFile as string), 'no log file: the agent did not start');
      t.notOk(existsSync(raw.spoolDir as string), 'no spool dir');
    });
  }
});

t.test('a valid config passes `config validate` (exit 0) and creates nothing', async (t) => {
  const dir = tempDir(t);
  const file = writeJson(join(dir, 'holdfast.json'), validRaw(dir));
  const r = cli(['config', 'validate', file], CLEAN_ENV);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, 'valid (gateway gw-test, 1 uplink(s), 1 source(s))');
  t.notOk(existsSync(join(dir, 'data')), 'validate creates no data dir');
});

t.test('several problems in one file are all reported at once', async (t) => {
  t.test('schema problems', async (t) => {
    const dir = tempDir(t);
    const raw = validRaw(dir, {
      sweepIntervalMs: '5',
      bogusKey: 1,
      logLevel: 'loud',
      store: { keyFile: keyOf(dir), commitIntervalMs: -1, extra: true },
      uplinks: [uplink({ retry: { baseMs: -5, bogus: 1 } }), uplink({ name: 'b2', url: 'http://nope' })],
    });
    delete raw.gatewayId;
    const file = writeJson(join(dir, 'holdfast.json'), raw);
    const want = [
      '/sweepIntervalMs',
      '/bogusKey',
      '/logLevel',
      '/store/commitIntervalMs',
      '/store/extra',
      '/uplinks/0/retry/baseMs',
      '/uplinks/0/retry/bogus',
      '/uplinks/1/url',
      '/gatewayId',
    ];
    const e = refused(t, () => loadConfig(file, { env: {} }));
    for (const p of want) t.ok(paths(e).includes(p), `reports ${p}`);
    t.equal(new Set(paths(e)).size, paths(e).length, 'each problem once');
    t.match(e.problems.find((p) => p.path === '/logLevel')?.message, /must be one of .*"info"/);
    t.match(e.problems.find((p) => p.path === '/gatewayId')?.message, 'is required');

    const v = cli(['config', 'validate', file], CLEAN_ENV);
    t.equal(v.code, 78);
    for (const p of want) t.match(v.stderr, p, `stderr names ${p}`);
  });

  t.test('cross-field and file-system problems', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'data'), { mode: 0o755 });
    chmodSync(join(dir, 'data'), 0o755);
    const raw = validRaw(dir, {
      store: { keyFile: join(dir, 'absent.key'), purgeCron: 'not a cron at all' },
      sources: [
        { type: 'simulated', device: 'd1' },
        { type: 'simulated', device: 'd1' },
      ],
      uplinks: [uplink({ retry: { baseMs: 5000, maxMs: 10 } }), uplink({ passwordFile: 'pw' })],
    });
    const e = refused(t, () => build(raw, dir, { env: { RETRY_STRATEGY: 'BOGUS' } }));
    for (const p of ['/uplinks/0/retry/maxMs', '/uplinks/1/name', '/uplinks/1/passwordFile', '/store/purgeCron', '/sources/1/device', '/store/keyFile', '/dataDir', 'env RETRY_STRATEGY']) {
      t.ok(paths(e).includes(p), `reports ${p} (got ${paths(e).join(', ')})`);
    }
  });

  // Schema, environment and file-system problems come in one report, not one per attempt.
  t.test('schema and file-system problems together', async (t) => {
    const dir = tempDir(t);
    const raw = validRaw(dir, { sweepIntervalMs: '5', store: { keyFile: join(dir, 'absent.key') } });
    const e = refused(t, () => build(raw, dir, { env: { RETRY_STRATEGY: 'BOGUS' } }));
    for (const p of ['/sweepIntervalMs', '/store/keyFile', 'env RETRY_STRATEGY']) {
      t.ok(paths(e).includes(p), `reports ${p} (got ${paths(e).join(', ')})`);
    }
  });
});

t.test('invalid JSON, missing file, non-object', async (t) => {
  const dir = tempDir(t);
  const bad = writeJson(join(dir, 'bad.json'), '{ "gatewayId": "x", ');
  let e = refused(t, () => loadConfig(bad, { env: {} }), 'CONFIG_PARSE');
  t.equal(e.problems[0].path, '/');
  t.match(e.message, 'bad.json');
  const missing = join(dir, 'nope.json');
  e = refused(t, () => loadConfig(missing, { env: {} }), 'CONFIG_NOT_FOUND');
  t.match(e.message, 'nope.json');
  refused(t, () => build([], dir));
  refused(t, () => build(null, dir));
  refused(t, () => build('gw', dir));

  for (const [file, code] of [
    [bad, 'CONFIG_PARSE'],
    [missing, 'CONFIG_NOT_FOUND'],
  ] as const) {
    const v = cli(['config', 'validate', file], CLEAN_ENV);
    t.equal(v.code, 78, `validate ${code}`);
    t.match(v.stderr, code);
    const r = cli(['run', '--config', file], CLEAN_ENV);
    t.equal(r.code, 78, `run ${code}`);
    t.match(r.stderr, code);
  }
  t.same(readdirSync(dir).sort(), ['bad.json'], 'nothing created next to the config');
});

t.test('encryption "off" explicitly needs no key file', async (t) => {
  const dir = tempDir(t);
  const cfg = build(validRaw(dir, { store: { encryption: 'off', keyFile: join(dir, 'absent.key') } }), dir);
  t.equal(cfg.store.encryption, 'off');
  const cfg2 = build(validRaw(dir, { store: { encryption: 'off' } }), dir);
  t.equal(cfg2.store.keyFile, '/etc/holdfast/holdfast.key', 'default key file, never looked at');
  refused(t, () => build(validRaw(dir, { store: { encryption: 'rot13' } }), dir));
});

t.test('defaults filled in', async (t) => {
  const dir = tempDir(t);
  const raw = validRaw(dir);
  const before = JSON.stringify(raw);
  const cfg = build(raw, dir);
  t.equal(JSON.stringify(raw), before, 'the input object is not modified');
  t.equal(cfg.logLevel, 'info');
  t.equal(cfg.sweepIntervalMs, 5000);
  t.match(cfg.store, {
    encryption: 'aes-256-gcm',
    keyId: 'k1',
    commitIntervalMs: 200,
    synchronous: 'NORMAL',
    busyTimeoutMs: 5000,
    maxQueuedReadings: 200000,
    retentionDays: 7,
    purgeCron: '17 3 * * *',
  });
  t.same(cfg.batch, { maxReadings: 500, maxAgeMs: 1000 });
  t.match(cfg.sources[0], { type: 'simulated', device: 'sim-1', intervalMs: 1000, points: 4 });
  const u = cfg.uplinks[0];
  t.match(u, { enabled: true, keepaliveS: 30, connectTimeoutMs: 10000, ackTimeoutMs: 15000, maxPacketBytes: 262144, maxInflight: 32 });
  t.same(u.retry, {
    strategy: 'EXPONENTIAL_BACKOFF',
    baseMs: 1000,
    maxMs: 300000,
    reconnectMaxMs: 3000,
    jitter: 0.2,
    maxAttempts: 50,
    maxAgeMs: 7 * 24 * 3600 * 1000,
    hardFailureHoldMs: 300000,
  });
  t.same(u.breaker, { windowMs: 60000, minCalls: 5, failureRate: 0.5, openMs: 3000, halfOpenProbes: 3 });
  t.same(u.drain, { startJitterMs: 1000, readingsPerSec: 20000, messagesPerSec: 50, pullTasks: 200 });
  t.same(u.retryBudget, { ratio: 0.2, minPerSec: 1 });

  const min = validRaw(dir);
  delete min.sources;
  delete min.logFile;
  delete min.spoolDir;
  const c2 = build(min, dir);
  t.same(c2.sources, [], 'sources default to none');
  t.equal(c2.logFile, '/var/log/recovery/engine.log');
  t.equal(c2.spoolDir, '/tmp/recovery_cache');
  t.equal(c2.selfMetrics, undefined, 'self-metrics export is off unless configured');

  const c3 = build(validRaw(dir, {
    uplinks: [uplink(), { name: 'otel', type: 'otlp', url: 'http://127.0.0.1:4317', enabled: false }],
    selfMetrics: { uplink: 'otel' },
  }), dir);
  t.same(c3.selfMetrics, { uplink: 'otel', intervalMs: 60000, jitter: 0.2, timeoutMs: 10000 }, 'selfMetrics defaults; a disabled otlp uplink may carry them');
});

t.test('the result is deeply frozen', async (t) => {
  const dir = tempDir(t);
  const cfg = build(validRaw(dir), dir) as unknown as Record<string, any>;
  t.ok(Object.isFrozen(cfg));
  t.ok(Object.isFrozen(cfg.uplinks));
  t.ok(Object.isFrozen(cfg.uplinks[0].retry));
  t.ok(Object.isFrozen(cfg.store));
  // ES modules are strict mode: assignment to a frozen property throws
  t.throws(() => {
    cfg.gatewayId = 'other';
  }, TypeError);
  t.throws(() => {
    cfg.store.keyFile = '/tmp/x';
  }, TypeError);
  t.throws(() => {
    cfg.uplinks[0].retry.baseMs = 1;
  }, TypeError);
  t.throws(() => {
    cfg.uplinks.push({});
  }, TypeError);
  t.throws(() => {
    delete cfg.sources[0].device;
  }, TypeError);
  t.throws(() => {
    cfg.batch.newKey = 1;
  }, TypeError);
  t.equal(cfg.gatewayId, 'gw-test');
  t.equal(cfg.uplinks[0].retry.baseMs, 1000);
});

t.test('RETRY_STRATEGY env', async (t) => {
  const dir = tempDir(t);
  const raw = validRaw(dir, {
    uplinks: [uplink({ retry: { strategy: 'FIXED' } }), uplink({ name: 'second' }), uplink({ name: 'third', retry: { strategy: 'DECORRELATED_JITTER' } })],
  });
  const cfg = build(raw, dir, { env: { RETRY_STRATEGY: 'LINEAR' } });
  t.same(
    cfg.uplinks.map((u) => u.retry.strategy),
    ['LINEAR', 'LINEAR', 'LINEAR'],
    'applied to every uplink',
  );
  t.same(
    build(raw, dir, { env: { RETRY_STRATEGY: '' } }).uplinks.map((u) => u.retry.strategy),
    ['FIXED', 'EXPONENTIAL_BACKOFF', 'DECORRELATED_JITTER'],
    'empty means not set',
  );
  // file < env < remote: a remote uplink that names its strategy keeps it; one that does not gets the env's.
  const remote = { uplinks: [uplink({ retry: { strategy: 'ADAPTIVE' } }), uplink({ name: 'second' })] };
  t.same(
    build(raw, dir, { env: { RETRY_STRATEGY: 'LINEAR' }, remote }).uplinks.map((u) => u.retry.strategy),
    ['ADAPTIVE', 'LINEAR'],
    'the remote layer wins over the env where it sets the strategy',
  );
  t.same(
    build(raw, dir, { env: { RETRY_STRATEGY: 'LINEAR' }, remote: { batch: { maxReadings: 10 } } }).uplinks.map((u) => u.retry.strategy),
    ['LINEAR', 'LINEAR', 'LINEAR'],
    'a remote layer without uplinks leaves the env over the file',
  );
  for (const bad of ['BOGUS', 'linear']) {
    const e = refused(t, () => build(raw, dir, { env: { RETRY_STRATEGY: bad } }));
    t.same(paths(e), ['env RETRY_STRATEGY']);
    t.match(e.message, 'EXPONENTIAL_BACKOFF, DECORRELATED_JITTER, LINEAR, FIXED');
    t.match(e.message, JSON.stringify(bad));
  }

  const file = writeJson(join(dir, 'holdfast.json'), raw);
  const v = cli(['config', 'validate', file], { ...CLEAN_ENV, RETRY_STRATEGY: 'BOGUS' });
  t.equal(v.code, 78);
  t.match(v.stderr, 'RETRY_STRATEGY');
  const r = cli(['run', '--config', file], { ...CLEAN_ENV, RETRY_STRATEGY: 'BOGUS' });
  t.equal(r.code, 78);
  t.notOk(existsSync(join(dir, 'data')), 'nothing started');
  t.equal(cli(['config', 'validate', file], { ...CLEAN_ENV, RETRY_STRATEGY: 'LINEAR' }).code, 0);
});

t.test('HOLDFAST_DATA_DIR overrides dataDir', async (t) => {
  const dir = tempDir(t);
  const other = join(dir, 'elsewhere', 'data');
  const cfg = build(validRaw(dir), dir, { env: { HOLDFAST_DATA_DIR: other } });
  t.equal(cfg.dataDir, other);

  // the override is checked like the file's own value
  const insecure = join(dir, 'open');
  mkdirSync(insecure);
  chmodSync(insecure, 0o755);
  const e = refused(t, () => build(validRaw(dir), dir, { env: { HOLDFAST_DATA_DIR: insecure } }));
  t.same(paths(e), ['/dataDir']);
  t.match(e.message, insecure);

  const file = writeJson(join(dir, 'holdfast.json'), validRaw(dir));
  const v = cli(['config', 'validate', file], { ...CLEAN_ENV, HOLDFAST_DATA_DIR: insecure });
  t.equal(v.code, 78, 'the CLI reads the override');
  t.match(v.stderr, 'DATA_DIR_INSECURE');
  const r = cli(['run', '--config', file], { ...CLEAN_ENV, HOLDFAST_DATA_DIR: insecure });
  t.equal(r.code, 78);
  t.same(readdirSync(insecure), [], 'no database created');
});

t.test('relative paths are resolved against the config file directory', async (t) => {
  const dir = tempDir(t);
  const confDir = join(dir, 'etc', 'conf');
  mkdirSync(confDir, { recursive: true });
  generateKey(join(confDir, 'keys', 'k.key'), 'k1');
  const file = writeJson(join(confDir, 'holdfast.json'), {
    gatewayId: 'gw-rel',
    dataDir: '../../var/data',
    logFile: 'log/engine.log',
    spoolDir: './cache',
    store: { keyFile: 'keys/k.key' },
    uplinks: [uplink()],
  });
  const cfg = loadConfig(file, { env: {} });
  t.equal(cfg.dataDir, join(dir, 'var', 'data'));
  t.equal(cfg.logFile, join(confDir, 'log', 'engine.log'));
  t.equal(cfg.spoolDir, join(confDir, 'cache'));
  t.equal(cfg.store.keyFile, join(confDir, 'keys', 'k.key'));

  // not the process's cwd: validating from elsewhere gives the same answer
  t.not(process.cwd(), confDir);
  const v = cli(['config', 'validate', file], CLEAN_ENV);
  t.equal(v.code, 0, v.stderr);

  const stdoutLog = loadConfig(writeJson(join(confDir, 'stdout.json'), { ...JSON.parse(readFileSync(file, 'utf8')), logFile: '-' }), { env: {} });
  t.equal(stdoutLog.logFile, '-', '"-" (stdout) is left alone');
});

t.test('`holdfast config schema` prints the published schema; config/demo.json conforms', async (t) => {
  const r = cli(['config', 'schema'], CLEAN_ENV);
  t.equal(r.code, 0, r.stderr);
  const schema = JSON.parse(r.stdout) as { type: string; properties: Record<string, unknown>; required: string[] };
  t.equal(schema.type, 'object');
  for (const k of ['gatewayId', 'uplinks', 'store', 'dataDir', 'batch', 'sources']) t.ok(k in schema.properties, `properties.${k}`);
  t.same(schema, JSON.parse(JSON.stringify(configSchema)), 'exactly the schema the validator compiles');

  const demo = JSON.parse(readFileSync(join(ROOT, 'config', 'demo.json'), 'utf8')) as Raw;
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: false, discriminator: true });
  const validate = ajv.compile(schema);
  const ok = validate(structuredClone(demo));
  t.ok(ok, `demo.json conforms to the printed schema ${JSON.stringify(validate.errors)}`);

  // and the whole loader (cross checks too), with the demo's relative key file laid out in a temp dir
  const dir = tempDir(t);
  const confDir = join(dir, 'config');
  mkdirSync(confDir);
  // the demo's device map, relative to the config file
  mkdirSync(join(confDir, 'devices'));
  copyFileSync(join(ROOT, 'config', 'devices', 'generic-energy-meter.json'), join(confDir, 'devices', 'generic-energy-meter.json'));
  generateKey(join(dir, 'var', 'demo', 'keys', 'holdfast.key'), 'k1');
  const cfg = buildConfig(demo, { env: { HOLDFAST_DATA_DIR: join(dir, 'data') }, baseDir: confDir });
  t.equal(cfg.gatewayId, 'demo-gw-01');
  t.equal(cfg.store.keyFile, join(dir, 'var', 'demo', 'keys', 'holdfast.key'));
  t.equal(cfg.uplinks.length, 1);

  t.notOk(validate({ gatewayId: 'x', dataDir: '/d', uplinks: [], extra: 1 }), 'the printed schema refuses unknown keys');
});

t.test('CLI usage: --help, unknown commands and flags', async (t) => {
  const commands = [
    ['run'],
    ['status'],
    ['retry', 'reset'],
    ['purge'],
    ['breaker', 'reset'],
    ['config', 'validate'],
    ['config', 'schema'],
    ['keygen'],
  ];
  for (const c of commands) {
    for (const h of c[0] === 'status' ? ['--help', '-h'] : ['--help']) {
      const r = cli([...c, h], CLEAN_ENV);
      t.equal(r.code, 0, `${c.join(' ')} ${h} exits 0`);
      t.match(r.stdout, `Usage: holdfast ${c.join(' ')}`, `${c.join(' ')} ${h} prints its usage`);
    }
  }
  for (const top of [['--help'], ['help']]) {
    const r = cli(top, CLEAN_ENV);
    t.equal(r.code, 0, `${top[0]} exits 0`);
    t.match(r.stdout, 'Usage: holdfast');
    for (const c of commands) t.match(r.stdout, c.join(' '), `top help lists ${c.join(' ')}`);
  }

  for (const args of [['frobnicate'], ['config', 'frob'], ['retry'], ['config']]) {
    const r = cli(args, CLEAN_ENV);
    t.equal(r.code, 2, `unknown command ${args.join(' ')} exits 2`);
    t.match(r.stderr, 'USAGE');
  }
  for (const args of [
    ['status', '--bogus'],
    ['config', 'validate', '--nope', 'x.json'],
    ['run', '--config'],
    ['keygen', '--out', '/tmp/x', '--frob'],
  ]) {
    const r = cli(args, CLEAN_ENV);
    t.equal(r.code, 2, `bad flags ${args.join(' ')} exit 2`);
    t.match(r.stderr, 'USAGE');
  }
  const noConfig = cli(['run'], CLEAN_ENV);
  t.equal(noConfig.code, 2, 'run without a config is a usage error');
  t.match(noConfig.stderr, '--config');
  t.equal(cli([], CLEAN_ENV).code, 2, 'no command at all exits 2');
});

t.test('storage keys: quota, full policy, spool folder (store.spoolDir, or the older top-level spoolDir), uplink priority', async (t) => {
  const dir = tempDir(t);
  const d = build(validRaw(dir), dir);
  t.match(d.store, { maxBytes: 0, minFreeRatio: 0.05, fullPolicy: 'drop-oldest', downsampleMs: 60000, spoolMaxBytes: 64 * 1024 * 1024 });
  t.equal(d.store.spoolDir, join(dir, 'cache'), 'the top-level spoolDir fills store.spoolDir');
  t.equal(d.spoolDir, d.store.spoolDir);
  t.equal(d.uplinks[0].priority, 0, 'priority defaults to 0');

  const raw = validRaw(dir, { uplinks: [uplink({ priority: 5 })] });
  delete raw.spoolDir;
  (raw.store as Raw).spoolDir = 'spool';
  (raw.store as Raw).fullPolicy = 'downsample';
  const c = build(raw, dir);
  t.equal(c.store.spoolDir, join(dir, 'spool'), 'store.spoolDir, resolved against the config folder');
  t.equal(c.spoolDir, c.store.spoolDir, 'and the top-level key reads the same');
  t.equal(c.uplinks[0].priority, 5);
  t.equal(c.store.fullPolicy, 'downsample');

  const none = validRaw(dir);
  delete none.spoolDir;
  t.equal(build(none, dir).store.spoolDir, '/tmp/recovery_cache', 'the production default');
  const same = validRaw(dir, { store: { keyFile: keyOf(dir), spoolDir: join(dir, 'cache') } });
  t.equal(build(same, dir).store.spoolDir, join(dir, 'cache'), 'the same path in both is fine');

  const both = validRaw(dir, { store: { keyFile: keyOf(dir), spoolDir: '/elsewhere' } });
  const e = refused(t, () => build(both, dir));
  t.same(e.problems.map((p) => p.path), ['/spoolDir'], 'two different spool folders are refused');
  for (const [path, bad] of [['/store/fullPolicy', { fullPolicy: 'delete-everything' }], ['/store/maxBytes', { maxBytes: -1 }], ['/store/minFreeRatio', { minFreeRatio: 0.9 }]] as const) {
    const r = refused(t, () => build(validRaw(dir, { store: { keyFile: keyOf(dir), ...bad } }), dir));
    t.ok(r.problems.some((p) => p.path === path), `${path} checked`);
  }
  const p = refused(t, () => build(validRaw(dir, { uplinks: [uplink({ priority: 1.5 })] }), dir));
  t.ok(p.problems.some((x) => x.path === '/uplinks/0/priority'), 'priority is an integer');
  const open = join(dir, 'open-spool');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  const insecure = validRaw(dir, { spoolDir: open });
  const i = refused(t, () => build(insecure, dir));
  t.match(i.problems.find((x) => x.path === '/store/spoolDir')?.message, /DATA_DIR_INSECURE: .* has mode 755/, 'a spool folder others can read is refused');
});
