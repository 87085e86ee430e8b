/**
 * Configuration at the edge: read once, merge (file < env < remote), validate against the
 * published schema, check what a schema cannot (paths, permissions, cross-field rules), freeze.
 * Every problem is reported with the path of the key at fault; nothing starts on a bad config.
 */
import { realpathSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createRequire } from 'node:module';
import cron from 'node-cron';
import { configSchema } from './schema.js';
import { describeAjvError, lazyValidator } from './ajv-problems.js';
import { loadDeviceMap, loadProfile } from './formats.js';
import { ConfigError, deepFreeze, readJsonFile, type ConfigProblem } from './json-file.js';
import { checkFile } from '../../drivers/files.js';
import { pathChecks } from './paths.js';
import { RETRY_STRATEGIES, type Config, type HoldfastConfig, type RetryStrategy } from './types.js';

// ajv ships CommonJS; createRequire keeps its types and avoids the default-export dance.
const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;

const validateSchema = lazyValidator(() =>
  new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: false, discriminator: true }).compile(configSchema));

export { CONFIG_MAX_BYTES, ConfigError, type ConfigErrorCode, type ConfigProblem } from './json-file.js';

export interface LoadOptions {
  /** Environment to read overrides from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Directory that relative paths are resolved against (default: the config file's). */
  baseDir?: string;
  /** A remote layer (signed config over MQTT, later issue), merged last. */
  remote?: Record<string, unknown>;
}

/** Reads, merges, validates and freezes a config file. Throws ConfigError on any problem. */
export function loadConfig(file: string, opts: LoadOptions = {}): Config {
  const raw = readJsonFile(file);
  return buildConfig(raw, { baseDir: dirname(resolve(file)), ...opts }, file);
}

/** The indexes of the remote layer's uplinks that set retry.strategy themselves. */
function remoteStrategies(remote: Record<string, unknown> | undefined): Set<number> {
  const ups = remote?.uplinks;
  const out = new Set<number>();
  if (!Array.isArray(ups)) return out;
  ups.forEach((u: unknown, i) => {
    const retry = typeof u === 'object' && u !== null ? (u as { retry?: unknown }).retry : undefined;
    if (typeof retry === 'object' && retry !== null && (retry as { strategy?: unknown }).strategy !== undefined) out.add(i);
  });
  return out;
}

/** Validates an already-parsed config object (file layer). */
export function buildConfig(raw: unknown, opts: LoadOptions = {}, label?: string): Config {
  const env = opts.env ?? process.env;
  const doc = structuredClone(raw) as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ConfigError('CONFIG_INVALID', [{ path: '/', message: 'must be a JSON object' }], label);
  }
  const problems: ConfigProblem[] = [];
  // env layer (a relative HOLDFAST_DATA_DIR is relative to where the command runs)
  if (env.HOLDFAST_DATA_DIR) doc.dataDir = resolve(env.HOLDFAST_DATA_DIR);
  if (opts.remote) Object.assign(doc, structuredClone(opts.remote));
  spoolAlias(doc, problems);

  const schemaOk = validateSchema(doc);
  if (!schemaOk) for (const e of validateSchema.errors ?? []) problems.push(describeAjvError(e));
  const cfg = doc as unknown as HoldfastConfig;

  const strategy = env.RETRY_STRATEGY;
  if (strategy !== undefined && strategy !== '') {
    if (!RETRY_STRATEGIES.includes(strategy as RetryStrategy)) {
      problems.push({ path: 'env RETRY_STRATEGY', message: `must be one of ${RETRY_STRATEGIES.join(', ')} (got ${JSON.stringify(strategy)})` });
    } else if (schemaOk) {
      // file < env < remote: a strategy the remote layer names for an uplink stays.
      const fromRemote = remoteStrategies(opts.remote);
      cfg.uplinks.forEach((u, i) => {
        if (!fromRemote.has(i)) u.retry.strategy = strategy as RetryStrategy;
      });
    }
  }

  const base = opts.baseDir ?? process.cwd();
  const abs = (p: unknown) => (typeof p !== 'string' || p === '-' || isAbsolute(p) ? p : resolve(base, p));
  doc.dataDir = abs(doc.dataDir);
  doc.logFile = abs(doc.logFile);
  const store = doc.store as Record<string, unknown> | undefined;
  if (store && typeof store === 'object') {
    store.keyFile = abs(store.keyFile);
    store.spoolDir = abs(store.spoolDir);
    doc.spoolDir = store.spoolDir;
  }
  const api = doc.api as Record<string, unknown> | undefined;
  if (api && typeof api === 'object') api.tokenFile = abs(api.tokenFile);
  if (Array.isArray(doc.buses)) {
    for (const b of doc.buses as Record<string, unknown>[]) {
      if (!b || typeof b !== 'object' || !Array.isArray(b.devices)) continue;
      for (const d of b.devices as Record<string, unknown>[]) if (d && typeof d === 'object' && d.map !== 'sunspec') d.map = abs(d.map);
    }
  }
  if (Array.isArray(doc.uplinks)) {
    for (const u of doc.uplinks as Record<string, unknown>[]) {
      if (!u || typeof u !== 'object') continue;
      for (const k of ['passwordFile', 'headersFile', 'tlsCaFile', 'tlsCertFile', 'tlsKeyFile', 'certFile', 'keyFile', 'caFile']) if (u[k] !== undefined) u[k] = abs(u[k]);
    }
  }

  // File-system checks run even when the schema failed, so that every problem is reported at once.
  pathChecks(doc, problems);
  if (schemaOk) crossChecks(cfg, problems);
  if (problems.length > 0) throw new ConfigError('CONFIG_INVALID', dedupe(problems), label);
  return deepFreeze(cfg) as Config;
}

/**
 * `spoolDir` (top level, older configs) and `store.spoolDir` name the same folder: one fills the
 * other before validation; both given and different is refused.
 */
function spoolAlias(doc: Record<string, unknown>, problems: ConfigProblem[]): void {
  const top = doc.spoolDir;
  if (top === undefined) return;
  doc.store ??= {};
  const store = doc.store as Record<string, unknown>;
  if (typeof store !== 'object' || store === null || Array.isArray(store)) return;
  if (store.spoolDir === undefined) store.spoolDir = top;
  else if (store.spoolDir !== top) problems.push({ path: '/spoolDir', message: `differs from /store/spoolDir (${JSON.stringify(store.spoolDir)}); give the spool folder once, in store.spoolDir` });
}

function crossChecks(cfg: HoldfastConfig, problems: ConfigProblem[]): void {
  const seen = new Set<string>();
  cfg.uplinks.forEach((u, i) => {
    if (seen.has(u.name)) problems.push({ path: `/uplinks/${i}/name`, message: `duplicate uplink name ${JSON.stringify(u.name)}` });
    seen.add(u.name);
    if (u.retry.maxMs < u.retry.baseMs) problems.push({ path: `/uplinks/${i}/retry/maxMs`, message: `must be >= baseMs (${u.retry.baseMs})` });
    if (u.type === 'mqtt' && u.passwordFile !== undefined && u.username === undefined) problems.push({ path: `/uplinks/${i}/passwordFile`, message: 'needs a username' });
    if (u.type === 'otlp' && (u.tlsCertFile === undefined) !== (u.tlsKeyFile === undefined)) problems.push({ path: `/uplinks/${i}/tlsKeyFile`, message: 'mTLS needs both tlsCertFile and tlsKeyFile' });
    if (u.type === 'otlp' && u.url.startsWith('http://') && (u.tlsCaFile || u.tlsCertFile)) problems.push({ path: `/uplinks/${i}/url`, message: 'TLS files need an https:// url' });
  });
  const th = cfg.hardware.throttle;
  if (th.belowC >= th.aboveC) problems.push({ path: '/hardware/throttle/belowC', message: `must be below aboveC (${th.aboveC})` });
  if (!cron.validate(cfg.store.purgeCron)) problems.push({ path: '/store/purgeCron', message: `not a valid cron expression: ${JSON.stringify(cfg.store.purgeCron)}` });
  const devices = new Set<string>();
  cfg.sources.forEach((s, i) => {
    if (devices.has(s.device)) problems.push({ path: `/sources/${i}/device`, message: `duplicate device ${JSON.stringify(s.device)}` });
    devices.add(s.device);
  });
  busChecks(cfg, devices, problems);
  consoleChecks(cfg, problems);
  apiChecks(cfg, problems);
  selfMetricsChecks(cfg, problems);
}

/** selfMetrics.uplink must name an uplink of type otlp (a schema cannot follow the reference). */
function selfMetricsChecks(cfg: HoldfastConfig, problems: ConfigProblem[]): void {
  const want = cfg.selfMetrics?.uplink;
  if (want === undefined) return;
  const u = cfg.uplinks.find((x) => x.name === want);
  const otlp = cfg.uplinks.filter((x) => x.type === 'otlp').map((x) => JSON.stringify(x.name));
  const choice = otlp.length > 0 ? `the otlp uplinks are ${otlp.join(', ')}` : 'there is no uplink of type otlp';
  if (!u) problems.push({ path: '/selfMetrics/uplink', message: `no uplink is named ${JSON.stringify(want)}; ${choice}` });
  else if (u.type !== 'otlp') {
    problems.push({ path: '/selfMetrics/uplink', message: `uplink ${JSON.stringify(want)} is of type ${u.type}; the agent's metrics go out over OTLP only: name an uplink of type otlp (${choice})` });
  }
}

/**
 * Buses: transport fields, unique bus and device names, loadable device maps and board profile.
 * A unit id may be listed by several devices of a bus (a vendor map and SunSpec discovery of one
 * unit): each is polled by its own name, through the bus's one queue.
 */
function busChecks(cfg: HoldfastConfig, devices: Set<string>, problems: ConfigProblem[]): void {
  const buses = new Set<string>();
  const ports = new Map<string, string>();
  cfg.buses.forEach((b, i) => {
    const at = `/buses/${i}`;
    if (buses.has(b.name)) problems.push({ path: `${at}/name`, message: `duplicate bus name ${JSON.stringify(b.name)}` });
    buses.add(b.name);
    if (b.type === 'rtu' && !b.port) problems.push({ path: `${at}/port`, message: 'an rtu bus needs a serial port' });
    if (b.type === 'rtu' && b.port) {
      // One serial port is one bus: a second would fail at run time ("Cannot lock port") and its devices never be read.
      const real = realPath(b.port);
      const first = ports.get(real);
      if (first !== undefined) {
        problems.push({ path: `${at}/port`, message: `serial port ${b.port} is already bus ${JSON.stringify(first)}: one port is one bus (list both devices on that bus)` });
      } else ports.set(real, b.name);
    }
    if (b.type === 'tcp' && !b.host) problems.push({ path: `${at}/host`, message: 'a tcp bus needs a host' });
    if (b.voltage.min >= b.voltage.max) problems.push({ path: `${at}/voltage/max`, message: `must be above min (${b.voltage.min})` });
    if (b.retry.maxMs < b.retry.baseMs) problems.push({ path: `${at}/retry/maxMs`, message: `must be >= baseMs (${b.retry.baseMs})` });
    if (b.reprobe.maxMs < b.reprobe.baseMs) problems.push({ path: `${at}/reprobe/maxMs`, message: `must be >= baseMs (${b.reprobe.baseMs})` });
    b.devices.forEach((d, j) => {
      const dat = `${at}/devices/${j}`;
      if (devices.has(d.name)) problems.push({ path: `${dat}/name`, message: `duplicate device ${JSON.stringify(d.name)}` });
      devices.add(d.name);
      // A map that is not a readable regular file was reported by pathChecks, and is not read.
      if (d.map === 'sunspec' || checkFile(d.map)) return;
      try {
        loadDeviceMap(d.map);
      } catch (e) {
        problems.push({ path: `${dat}/map`, message: (e as Error).message });
      }
    });
  });
  const p = cfg.hardware.profile;
  if (cfg.buses.length > 0 && !((p.includes('/') || p.endsWith('.json')) && checkFile(resolve(p)))) {
    try {
      loadProfile(cfg.hardware.profile);
    } catch (e) {
      problems.push({ path: '/hardware/profile', message: (e as Error).message });
    }
  }
}

/** A port's path with its symlinks resolved (/dev/serial/by-id/... names the same port as /dev/ttyUSB0); as given when it does not exist. */
function realPath(p: string): string {
  try {
    return realpathSync(resolve(p));
  } catch {
    return resolve(p);
  }
}

/** The console's serial port must not be a port an RTU bus uses (compared by realpath, like busChecks). */
function consoleChecks(cfg: HoldfastConfig, problems: ConfigProblem[]): void {
  const port = cfg.console.serialPort;
  if (!cfg.console.enabled || port === undefined) return;
  const bus = cfg.buses.find((b) => b.type === 'rtu' && b.port && realPath(b.port) === realPath(port));
  if (bus) problems.push({ path: '/console/serialPort', message: `serial port ${port} is RTU bus ${JSON.stringify(bus.name)}: the console needs a port of its own` });
}

/** The HTTP server: a non-loopback bind needs an allow-list; the token file must be private. */
function apiChecks(cfg: HoldfastConfig, problems: ConfigProblem[]): void {
  const a = cfg.api;
  const loopback = a.listen === '127.0.0.1' || a.listen === '::1' || a.listen === 'localhost';
  if (a.enabled && !loopback && a.allow.length === 0) {
    problems.push({ path: '/api/allow', message: `listening on ${a.listen} needs an explicit CIDR allow-list (e.g. ["10.0.0.0/8"])` });
  }
  a.allow.forEach((c, i) => {
    const [ip, bits] = c.split('/');
    const v = isIP(ip);
    if (v === 0 || (bits !== undefined && Number(bits) > (v === 4 ? 32 : 128))) problems.push({ path: `/api/allow/${i}`, message: `not a CIDR: ${JSON.stringify(c)}` });
  });
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Topic prefix of an uplink (default holdfast/<gatewayId>). */
export function topicPrefix(cfg: Config, uplinkPrefix?: string): string {
  return uplinkPrefix ?? `holdfast/${cfg.gatewayId}`;
}
