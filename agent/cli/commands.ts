/**
 * The CLI commands. Admin commands open the agent's database directly (WAL + busy timeout), so
 * they work next to a live agent and on a stopped one; a breaker reset is also written as a
 * request that the live agent's sweeper applies within one sweep.
 */
import { HoldfastError, isHoldfastError } from '../errors.js';
import { loadConfig } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { generateKey } from '../../store/codec.js';
import { Store } from '../../store/store.js';
import { parseDuration } from '../../store/admin.js';
import { GC_GRACE_MS } from '../../store/segment-gc.js';
import { formatStatus } from './format.js';
import { formatStorage, storageReport } from '../storage/status.js';
import { simulateCommand } from './simulate.js';
import { privatePm2Logs } from './pm2-logs.js';
import { cmdSignCommand, configSignCommand, keypairCommand } from './remote-tools.js';
import { verdicts } from '../status/verdicts.js';
import { boardTempC, factsFromReport } from '../status/facts.js';
import { consoleCommand } from './console-attach.js';
import { CONFIG_HELP, configFrom, configOpt, configPath, noPositionals, type Values } from './args.js';

type Opt = { type: 'string' | 'boolean'; short?: string };

export interface Command {
  name: string;
  usage: string;
  summary: string;
  help: string;
  options: Record<string, Opt>;
  run(values: Values, positionals: string[]): Promise<number>;
}

/**
 * Runs `fn` on the agent's store, next to the agent if it runs (Store.attach: no writer; the close
 * syncs the newest segment first, as its checkpoint may make rows durable).
 */
function withStore<T>(cfg: Config, fn: (store: Store) => T): T {
  const store = Store.attach(cfg.dataDir, { busyTimeoutMs: cfg.store.busyTimeoutMs, synchronous: cfg.store.synchronous });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

export const COMMANDS: Command[] = [
  {
    name: 'run',
    usage: 'run --config FILE',
    summary: 'run the agent (foreground; pm2 keeps it alive)',
    help: `${CONFIG_HELP}\n\nValidates the config before anything starts, then acquires, stores and forwards until SIGTERM/SIGINT.\nUnder pm2 it says ready once the store is open and the API listens; SIGHUP reopens the log file.\nA failed start exits 78 (config refused), 75 (retry later: port in use), 74 (store), 70 (other).`,
    options: configOpt,
    async run(v, p) {
      privatePm2Logs();
      noPositionals(p);
      const cfg = configFrom(v);
      // Loaded only to run: the engine brings every driver (gRPC, OpenTelemetry, serial), which
      // the admin commands and --help have no use for.
      const { runAgent } = await import('./run.js');
      // The file too: a signed remote config (docs/remote.md) is merged onto it.
      await runAgent(cfg, configPath(v));
      return -1;
    },
  },
  {
    name: 'status',
    usage: 'status --config FILE [--json]',
    summary: 'buffer depth, oldest pending batch, breakers and last errors per uplink',
    help: `${CONFIG_HELP}\n      --json          print the status as JSON`,
    options: { ...configOpt, json: { type: 'boolean' } },
    async run(v, p) {
      noPositionals(p);
      const cfg = configFrom(v);
      let s;
      try {
        s = withStore(cfg, (st) => ({ ...st.admin.status(Date.now(), cfg.uplinks.map((u) => u.name)), storage: storageReport(cfg, st.admin) }));
      } catch (e) {
        // The database cannot be read: say so, and show what the files say (spool, quarantine, space).
        const storage = storageReport(cfg, null);
        const why = isHoldfastError(e) ? e.message : `STORE_UNAVAILABLE: ${(e as Error).message}`;
        const lines = verdicts(factsFromReport(cfg, null, storage, await boardTempC(cfg)));
        console.log(v.json ? JSON.stringify({ verdicts: lines, error: why, storage }, null, 2) : [...lines, '', why, ...formatStorage(storage)].join('\n'));
        return 1;
      }
      // The verdicts first, as the console's `status` shows them (agent/status/verdicts.ts).
      const lines = verdicts(factsFromReport(cfg, s, s.storage, await boardTempC(cfg)));
      console.log(v.json ? JSON.stringify({ verdicts: lines, ...s }, null, 2) : `${lines.join('\n')}\n\n${formatStatus(s, cfg.gatewayId)}\n\n${formatStorage(s.storage).join('\n')}`);
      return 0;
    },
  },
  {
    name: 'retry reset',
    usage: 'retry reset --config FILE [--uplink NAME]',
    summary: 'give dead-lettered (failed) tasks a fresh start; the agent re-admits them within one sweep',
    help: `${CONFIG_HELP}\n      --uplink NAME   only this uplink's tasks\n\nSame as: UPDATE recovery_tasks SET retry_count = 0 WHERE status = 'failed'`,
    options: { ...configOpt, uplink: { type: 'string' } },
    async run(v, p) {
      noPositionals(p);
      const n = withStore(configFrom(v), (st) => st.admin.retryReset(v.uplink as string | undefined));
      console.log(`${n} failed task(s) reset; the agent re-admits them at its next sweep`);
      return 0;
    },
  },
  {
    name: 'purge',
    usage: 'purge --config FILE --older-than DURATION',
    summary: 'delete delivered and dead-lettered tasks (and unreferenced payloads) older than DURATION',
    help: `${CONFIG_HELP}\n      --older-than D  e.g. 7d, 12h, 30m (pending data is never purged)\n\nThen deletes the segment files no payload refers to any more (next to a live agent: not the newest file, and\nonly files untouched for 2 minutes; the agent reclaims the rest after its own purge or at its next start).`,
    options: { ...configOpt, 'older-than': { type: 'string' } },
    async run(v, p) {
      noPositionals(p);
      const d = parseDuration(String(v['older-than'] ?? ''));
      if (d === undefined) throw new HoldfastError('USAGE', '--older-than needs a duration such as 7d, 12h, 30m');
      const cfg = configFrom(v);
      const { r, gc } = withStore(cfg, (st) => {
        const r = st.admin.purge(d, Date.now());
        return { r, gc: st.collectSegments(Math.max(GC_GRACE_MS, 2 * cfg.store.busyTimeoutMs)) };
      });
      console.log(`purged ${r.tasks} task(s), ${r.payloads} payload(s), ${r.events} event(s); ${gc.files} segment file(s) deleted (${(gc.bytes / 1048576).toFixed(1)} MB)`);
      return 0;
    },
  },
  {
    name: 'breaker reset',
    usage: 'breaker reset UPLINK --config FILE',
    summary: "close an uplink's circuit breaker and lift a hard-failure hold",
    help: `${CONFIG_HELP}\n\nA running agent applies it within one sweep (sweepIntervalMs).`,
    options: configOpt,
    async run(v, p) {
      if (p.length !== 1) throw new HoldfastError('USAGE', 'name exactly one uplink');
      const cfg = configFrom(v);
      if (!cfg.uplinks.some((u) => u.name === p[0])) {
        throw new HoldfastError('USAGE', `no uplink ${JSON.stringify(p[0])} in the config (have: ${cfg.uplinks.map((u) => u.name).join(', ')})`);
      }
      withStore(cfg, (st) => st.admin.requestBreakerReset(p[0], Date.now()));
      console.log(`breaker reset requested for ${p[0]}`);
      return 0;
    },
  },
  {
    name: 'config validate',
    usage: 'config validate FILE',
    summary: 'check a configuration file; print every problem with the path of the key at fault',
    help: 'Exit status 0 when valid, 78 when refused.',
    options: {},
    async run(_v, p) {
      const file = p[0] ?? process.env.HOLDFAST_CONFIG;
      if (!file || p.length > 1) throw new HoldfastError('USAGE', 'name one configuration file');
      const cfg = loadConfig(file);
      console.log(`${file}: valid (gateway ${cfg.gatewayId}, ${cfg.uplinks.length} uplink(s), ${cfg.sources.length} source(s))`);
      return 0;
    },
  },
  {
    name: 'config schema',
    usage: 'config schema',
    summary: 'print the JSON Schema of the configuration',
    help: 'The validator compiles exactly this schema.',
    options: {},
    async run(_v, p) {
      noPositionals(p);
      console.log(JSON.stringify(configSchema, null, 2));
      return 0;
    },
  },
  {
    name: 'keygen',
    usage: 'keygen --out FILE [--id KEYID]',
    summary: 'write a new AES-256 key (file mode 0600); appends to an existing keyring to rotate',
    help: '      --out FILE      key file (store.keyFile)\n      --id KEYID      key id (default k1); set store.keyId to it to write new batches with it',
    options: { out: { type: 'string', short: 'o' }, id: { type: 'string' } },
    async run(v, p) {
      noPositionals(p);
      if (typeof v.out !== 'string') throw new HoldfastError('USAGE', '--out FILE is required');
      const id = (v.id as string | undefined) ?? 'k1';
      const r = generateKey(v.out, id);
      console.log(`${r.created ? 'created' : 'added to'} ${v.out}: key ${id} (mode 0600)`);
      return 0;
    },
  },
  simulateCommand,
  keypairCommand,
  configSignCommand,
  cmdSignCommand,
  consoleCommand,
];
