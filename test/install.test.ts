/**
 * scripts/install.sh, for real, into a temporary root (--root, --no-npm): no root privileges
 * needed, nothing outside the temp folder touched. The script runs from a copy of the checkout's
 * runtime files (a snapshot: another build in the checkout cannot change the source between two
 * runs). Shown: a dry run prints every step and writes nothing; an install creates every
 * directory and file with its mode, keeps an operator's config, writes a key the agent's own
 * loader accepts, copies code that runs; a second run changes nothing and says so; --uninstall
 * keeps the data, the config and the key, --purge removes them. The systemd unit passes
 * `systemd-analyze verify` and its offline security check, starts the agent as pm2 does, and the
 * tmpfiles.d entry recreates the spool after /tmp is emptied.
 */
import t, { type Test } from 'tap';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadKeyring, parseKeyring } from '../store/codec.js';
import { configSchema } from '../agent/config/schema.js';
import { ROOT } from './helpers/agent.js';
import { tempDir } from './helpers/config-fixtures.js';

/** What the installer reads from the repository (the ecosystem file is whichever exists). */
const SOURCE_PARTS = [
  'package.json', 'package-lock.json', 'dist/agent', 'dist/drivers', 'dist/store', 'dist/hardware', 'hardware/profiles',
  'config/production.json', 'config/devices', 'ecosystem.config.js', 'ecosystem.config.cjs',
  'scripts/install.sh', 'scripts/holdfast.service', 'scripts/holdfast.tmpfiles', 'scripts/holdfast.logrotate',
];
/** What it copies into /opt/holdfast. */
const CODE_PARTS = ['package.json', 'package-lock.json', 'dist/agent', 'dist/drivers', 'dist/store', 'dist/hardware', 'hardware/profiles', 'config/devices'];
/** systemd's tools log to the journal (or kmsg) when stderr is not a terminal: here, to stderr, where the test reads it. */
const SYSTEMD_ENV = { ...process.env, SYSTEMD_LOG_TARGET: 'console' };
const PRODUCTION = JSON.parse(readFileSync(join(ROOT, 'config/production.json'), 'utf8')) as { dataDir: string; logFile: string; store: { spoolDir: string; keyFile: string } };

/** A snapshot of the checkout's runtime files and the install scripts, in a temp folder. */
function stageSource(t: Test): string {
  const src = tempDir(t, 'holdfast-src-');
  chmodSync(src, 0o755);
  for (const rel of SOURCE_PARTS) {
    if (existsSync(join(ROOT, rel))) cpSync(join(ROOT, rel), join(src, rel), { recursive: true });
  }
  return src;
}

interface Run { status: number | null; out: string; err: string; lines: string[] }
function install(src: string, args: string[], opts: SpawnSyncOptions = {}): Run {
  const r = spawnSync('bash', [join(src, 'scripts/install.sh'), ...args], { encoding: 'utf8', timeout: 120_000, ...opts });
  const out = String(r.stdout);
  return { status: r.status, out, err: String(r.stderr), lines: out.split('\n').filter((l) => l !== '') };
}
/** Installs and insists on success (the output is in the failure). */
function mustInstall(t: Test, src: string, args: string[]): Run {
  const r = install(src, args);
  t.equal(r.status, 0, `install.sh ${args.join(' ')} exits 0`, { out: r.out, err: r.err });
  return r;
}
const verbs = (r: Run, verb: string) => r.lines.filter((l) => l.startsWith(`${verb} `));
const modeOf = (p: string) => statSync(p).mode & 0o7777;
const last = (r: Run) => r.lines[r.lines.length - 1] ?? '';

/** Every file and symlink under dir (directories themselves not listed). */
function filesUnder(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else found.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found.sort();
}

function sameTree(a: string, b: string): boolean {
  return spawnSync('diff', ['-r', '-q', a, b]).status === 0;
}

t.test('--help names every option the script accepts; a wrong one is a usage error', async (t) => {
  const src = stageSource(t);
  const help = install(src, ['--help']);
  t.equal(help.status, 0, '--help exits 0');
  // The options are read from the script's own argument parser, so the help cannot fall behind.
  const script = readFileSync(join(src, 'scripts/install.sh'), 'utf8');
  const accepted = [...script.matchAll(/^\s+(?:-h \| )?(--[a-z-]+)(?:=\*)?\)/gm)].map((m) => m[1]);
  t.ok(accepted.length >= 8, `options found in the parser: ${accepted.join(' ')}`);
  for (const o of accepted) t.match(help.out, new RegExp(`^\\s+(-h, )?${o}\\b`, 'm'), `--help describes ${o}`);
  for (const bad of [['--bogus'], ['--purge'], ['--root'], ['--root', '/']]) {
    const r = install(src, bad);
    t.equal(r.status, 2, `${bad.join(' ')}: usage error (exit 2)`);
    t.match(r.err, /see --help/, `${bad.join(' ')}: says why`);
  }
});

t.test('a dry run prints every step and writes nothing', async (t) => {
  const src = stageSource(t);
  const root = join(tempDir(t), 'root');
  mkdirSync(root);
  for (const mode of ['--pm2', '--systemd']) {
    const r = install(src, ['--root', root, '--dry-run', mode]);
    t.equal(r.status, 0, `${mode}: exit 0`, { out: r.out, err: r.err });
    t.same(readdirSync(root), [], `${mode}: the root is still empty`);
    t.same(verbs(r, 'done'), [], `${mode}: nothing done`);
    const would = verbs(r, 'would').join('\n');
    const planned = [
      '/var/lib/recovery: created (mode 0750)', '/var/lib/recovery/data: created (mode 0700)', '/var/log/recovery: created (mode 0750)',
      '/tmp/recovery_cache: created (mode 0700)', '/etc/holdfast: created (mode 0750)', '/etc/tmpfiles.d/holdfast.conf: installed',
      '/etc/holdfast/holdfast.json: installed', '/etc/holdfast/holdfast.key: new AES-256 key', '/opt/holdfast: copied',
      '/opt/holdfast/node_modules: npm ci --omit=dev', '/usr/local/bin/holdfast: installed',
    ];
    if (mode === '--systemd') planned.push('/etc/systemd/system/holdfast.service: installed');
    for (const p of planned) t.ok(would.includes(`${root}${p}`), `${mode}: would ${p}`);
    t.match(r.out, /^skip system user holdfast \(--root: not created; on the target: useradd --system/m, `${mode}: the user is recorded, not created`);
    t.match(last(r), /^dry run: \d+ step\(s\) would change something; nothing was changed$/, `${mode}: the last line says so`);
    for (const l of r.lines.slice(1)) t.match(l, /^(ok {3}|would |skip |dry run: )/, `${mode}: a step line: ${l.slice(0, 60)}`);
  }
});

t.test('an install into a temporary root: modes, contents, code that runs; a second run changes nothing', async (t) => {
  const src = stageSource(t);
  const dir = tempDir(t);
  const root = join(dir, 'root');
  const r1 = mustInstall(t, src, ['--root', root, '--no-npm']);
  t.ok(verbs(r1, 'done').length >= 10, 'the first run changes things');
  t.match(last(r1), /^next: set gatewayId/, 'it tells what to edit next');
  const at = (p: string) => join(root, p);

  const modes: [string, number][] = [
    ['/var/lib/recovery', 0o750], ['/var/lib/recovery/data', 0o700], ['/var/log/recovery', 0o750], ['/tmp/recovery_cache', 0o700],
    ['/etc/holdfast', 0o750], ['/etc/holdfast/holdfast.json', 0o640], ['/etc/holdfast/holdfast.key', 0o600],
    ['/etc/tmpfiles.d/holdfast.conf', 0o644], ['/opt/holdfast', 0o755], ['/usr/local/bin/holdfast', 0o755],
    ['/opt/holdfast/dist/agent/cli/main.js', 0o755],
  ];
  for (const [p, mode] of modes) t.equal(modeOf(at(p)).toString(8), mode.toString(8), `${p} is ${mode.toString(8)}`);
  // The production config's own paths are the ones made.
  t.equal(PRODUCTION.dataDir, '/var/lib/recovery/data', 'production dataDir');
  t.equal(dirname(PRODUCTION.logFile), '/var/log/recovery', 'production log directory');
  t.equal(PRODUCTION.store.spoolDir, '/tmp/recovery_cache', 'production spool');
  t.equal(PRODUCTION.store.keyFile, '/etc/holdfast/holdfast.key', 'production key file');
  t.equal(readFileSync(at('/etc/holdfast/holdfast.json'), 'utf8'), readFileSync(join(src, 'config/production.json'), 'utf8'), 'the config is config/production.json');
  t.match(readFileSync(at('/etc/tmpfiles.d/holdfast.conf'), 'utf8'), /^d \/tmp\/recovery_cache 0700 holdfast holdfast -$/m, 'tmpfiles.d recreates the spool');
  if (existsSync(join(src, 'scripts/holdfast.logrotate'))) {
    t.equal(modeOf(at('/etc/logrotate.d/holdfast')), 0o644, 'the logrotate entry is installed, 0644');
  }
  t.notOk(existsSync(at('/etc/systemd/system/holdfast.service')), 'pm2 mode: no systemd unit');

  // The key: the agent's own loader (format, mode) accepts it; 32 random bytes under id k1.
  const keyFile = at('/etc/holdfast/holdfast.key');
  const ring = loadKeyring(keyFile, 'k1');
  t.equal(ring.get('k1')?.length, 32, 'key k1 is 32 bytes');
  t.same([...parseKeyring(readFileSync(keyFile, 'utf8'), keyFile).keys()], ['k1'], 'one key, id k1');

  // The code: exactly the runtime parts, nothing else of the checkout.
  const eco = existsSync(join(src, 'ecosystem.config.js')) ? 'ecosystem.config.js' : 'ecosystem.config.cjs';
  for (const rel of [...CODE_PARTS, eco]) t.ok(sameTree(join(src, rel), at(`/opt/holdfast/${rel}`)), `/opt/holdfast/${rel} is the source's`);
  t.notOk(existsSync(at('/opt/holdfast/dist/test')), 'no tests copied');
  t.notOk(existsSync(at('/opt/holdfast/scripts')), 'no scripts copied');

  // ... and it runs: with the dependencies at hand (--no-npm), the installed CLI accepts a config
  // that uses the installed key, a device map and a board profile from the installed tree.
  symlinkSync(join(ROOT, 'node_modules'), at('/opt/holdfast/node_modules'));
  const pass = join(dir, 'mqtt.pass');
  writeFileSync(pass, 'secret\n', { mode: 0o600 });
  const cfg = join(dir, 'check.json');
  writeFileSync(cfg, JSON.stringify({
    gatewayId: 'gw-install', dataDir: join(dir, 'data'), logFile: join(dir, 'engine.log'),
    store: { keyFile, spoolDir: join(dir, 'spool') },
    hardware: { profile: 'din-rail-gateway' },
    uplinks: [{ name: 'broker', type: 'mqtt', url: 'mqtt://127.0.0.1:1', username: 'gw', passwordFile: pass }],
    buses: [{ name: 'plant', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'meter-1', unitId: 1, map: at('/opt/holdfast/config/devices/generic-energy-meter.json') }] }],
  }));
  // The installed command, pointed at the temp root instead of /opt/holdfast.
  const wrapper = readFileSync(at('/usr/local/bin/holdfast'), 'utf8');
  t.match(wrapper, /^exec \S+ \/opt\/holdfast\/dist\/agent\/cli\/main\.js "\$@"$/m, 'holdfast runs /opt/holdfast/dist/agent/cli/main.js');
  const cmd = join(dir, 'holdfast');
  writeFileSync(cmd, wrapper.replaceAll('/opt/holdfast/', `${root}/opt/holdfast/`), { mode: 0o755 });
  const env: NodeJS.ProcessEnv = { ...process.env, HOLDFAST_CONFIG: cfg };
  const v = spawnSync(cmd, ['config', 'validate'], { encoding: 'utf8', env });
  t.equal(v.status, 0, 'the installed agent validates the config ($HOLDFAST_CONFIG)', { out: v.stdout, err: v.stderr });
  t.match(v.stdout, /valid \(gateway gw-install/, 'and says so');
  delete env.HOLDFAST_CONFIG;
  const d = spawnSync(cmd, ['config', 'validate'], { encoding: 'utf8', env });
  t.match(`${d.stdout}${d.stderr}`, '/etc/holdfast/holdfast.json', 'without HOLDFAST_CONFIG the command reads /etc/holdfast/holdfast.json');
  rmSync(at('/opt/holdfast/node_modules'));

  // Again: nothing to do.
  const r2 = mustInstall(t, src, ['--root', root, '--no-npm']);
  t.same([...verbs(r2, 'done'), ...verbs(r2, 'would')], [], 'the second run changes nothing');
  for (const l of r2.lines.slice(1)) t.match(l, /^(ok {3}|skip |nothing changed)/, `second run: ${l.slice(0, 60)}`);
  t.match(last(r2), /^nothing changed \(\d+ step\(s\) skipped\)$/, 'and ends saying so');
  t.match(r2.out, /holdfast\.json: kept as it is \(an existing config is never overwritten\)/, 'the config is kept, and it says so');

  // The operator edits the config and loosens the key: the config stays, the key is tightened.
  const edited = '{ "gatewayId": "edited-by-the-operator" }\n';
  writeFileSync(at('/etc/holdfast/holdfast.json'), edited);
  chmodSync(at('/etc/holdfast/holdfast.json'), 0o600);
  const keyBytes = readFileSync(keyFile);
  chmodSync(keyFile, 0o644);
  const r3 = mustInstall(t, src, ['--root', root, '--no-npm']);
  t.equal(readFileSync(at('/etc/holdfast/holdfast.json'), 'utf8'), edited, 'the edited config is untouched');
  t.equal(modeOf(at('/etc/holdfast/holdfast.json')), 0o600, 'its mode too');
  t.equal(modeOf(keyFile), 0o600, 'the key is 0600 again');
  t.same(readFileSync(keyFile), keyBytes, 'the same key');
  t.same(verbs(r3, 'done'), [`done ${keyFile}: mode 0644 -> 0600`], 'that is the one change');

  // New code: the changed part is copied again; a file gone from the source goes from /opt too.
  const extra = 'dist/agent/added-by-an-upgrade.js';
  writeFileSync(join(src, extra), 'export {};\n');
  const r4 = mustInstall(t, src, ['--root', root, '--no-npm']);
  t.same(verbs(r4, 'done'), [`done ${root}/opt/holdfast: copied dist/agent`], 'only dist/agent is copied');
  t.ok(existsSync(at(`/opt/holdfast/${extra}`)), 'the new file is there');
  rmSync(join(src, extra));
  mustInstall(t, src, ['--root', root, '--no-npm']);
  t.notOk(existsSync(at(`/opt/holdfast/${extra}`)), 'a file removed from the source is removed from /opt/holdfast');
  t.match(last(mustInstall(t, src, ['--root', root, '--no-npm'])), /^nothing changed/, 'and then nothing changes');

  // Two installs, two keys.
  const other = join(dir, 'other');
  mustInstall(t, src, ['--root', other, '--no-npm']);
  t.not(readFileSync(join(other, 'etc/holdfast/holdfast.key'), 'utf8'), keyBytes.toString(), 'each install draws its own key');
});

t.test('an existing config is kept on the first install, mode and all', async (t) => {
  const src = stageSource(t);
  const root = join(tempDir(t), 'root');
  const config = join(root, 'etc/holdfast/holdfast.json');
  mkdirSync(dirname(config), { recursive: true });
  writeFileSync(config, '{ "gatewayId": "site-7" }\n', { mode: 0o600 });
  const r = mustInstall(t, src, ['--root', root, '--no-npm']);
  t.equal(readFileSync(config, 'utf8'), '{ "gatewayId": "site-7" }\n', 'content kept');
  t.equal(modeOf(config), 0o600, 'mode kept');
  t.match(r.out, /^ok {3}\S+holdfast\.json: kept as it is/m, 'it says so');
  t.notMatch(r.out, /^next: /m, 'and asks for no edit');
});

t.test('--systemd: the unit, as systemd reads it, and back to pm2', async (t) => {
  const src = stageSource(t);
  const dir = tempDir(t);
  const root = join(dir, 'root');
  const r1 = mustInstall(t, src, ['--root', root, '--no-npm', '--systemd']);
  const unitFile = join(root, 'etc/systemd/system/holdfast.service');
  t.equal(modeOf(unitFile), 0o644, 'the unit is installed, 0644');
  t.match(r1.out, /^skip systemctl daemon-reload; systemctl enable --now holdfast \(--root\)$/m, 'systemctl is not called under --root');
  const unit = readFileSync(unitFile, 'utf8');
  const shipped = readFileSync(join(src, 'scripts/holdfast.service'), 'utf8');
  const node = spawnSync('bash', ['-c', 'command -v node'], { encoding: 'utf8' }).stdout.trim();
  t.equal(unit, shipped.replace('ExecStart=/usr/bin/node ', `ExecStart=${node} `), 'the shipped unit with the node found on PATH');
  t.match(last(mustInstall(t, src, ['--root', root, '--no-npm', '--systemd'])), /^nothing changed/, 'a second --systemd run changes nothing');

  // The unit starts the agent as pm2 does (ecosystem file): same flags, environment, signal.
  const settings = new Map<string, string[]>();
  for (const l of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(l);
    if (m) settings.set(m[1], [...(settings.get(m[1]) ?? []), m[2]]);
  }
  const one = (k: string) => (settings.get(k) ?? []).join(' ');
  const ecoFile = join(ROOT, existsSync(join(ROOT, 'ecosystem.config.js')) ? 'ecosystem.config.js' : 'ecosystem.config.cjs');
  const eco = (await import(pathToFileURL(ecoFile).href)) as { apps?: unknown; default?: { apps?: unknown } };
  const app = ((eco.apps ?? eco.default?.apps) as { node_args: string[]; args: string; env: Record<string, string> }[])[0];
  t.equal(one('ExecStart'), `${node} ${app.node_args.join(' ')} /opt/holdfast/dist/agent/cli/main.js ${app.args}`, 'ExecStart: the ecosystem\'s node_args and args');
  const environment = one('Environment').split(/\s+/);
  for (const k of ['NODE_ENV', 'MALLOC_ARENA_MAX']) t.ok(environment.includes(`${k}=${app.env[k]}`), `Environment has the ecosystem's ${k}`);
  t.ok(environment.includes('HOLDFAST_CONFIG=/etc/holdfast/holdfast.json'), 'Environment names the installed config');
  t.equal(one('Type'), 'exec', 'Type=exec');
  t.equal(one('KillSignal'), 'SIGINT', 'stopped with SIGINT, as pm2 stops it');
  const shutdownMs = (configSchema.properties.shutdownTimeoutMs as { default: number }).default;
  t.ok(Number(one('TimeoutStopSec')) * 1000 >= shutdownMs + 2000, `TimeoutStopSec leaves 2 s over shutdownTimeoutMs (${shutdownMs} ms)`);
  t.equal(one('PrivateTmp'), 'no', 'PrivateTmp=no: the spool in /tmp stays shared and survives a stop');
  const rw = one('ReadWritePaths').split(/\s+/).map((p) => p.replace(/^-/, ''));
  for (const p of [dirname(PRODUCTION.dataDir), dirname(PRODUCTION.logFile), PRODUCTION.store.spoolDir]) t.ok(rw.includes(p), `ReadWritePaths has ${p}`);
  t.equal(one('User'), 'holdfast', 'User=holdfast');
  t.equal(one('SupplementaryGroups'), 'dialout', 'the serial ports through group dialout');
  for (const k of ['DeviceAllow', 'ProtectClock', 'ProtectKernelTunables', 'MemoryDenyWriteExecute', 'PrivateUsers']) {
    t.notOk(settings.has(k), `no ${k}= (it would break the serial ports, the LEDs or V8)`);
  }
  t.equal(one('PrivateDevices'), 'no', 'PrivateDevices=no');

  // systemd's own reading of the unit. It does not check that the user exists; it does check
  // ExecStart's program, which is the node found on PATH. main.js is pointed at the checkout's.
  const analyze = 'systemd-analyze';
  const have = spawnSync(analyze, ['--version'], { encoding: 'utf8' });
  if (have.status !== 0) {
    t.fail('systemd-analyze is missing: bash scripts/system-deps.sh test installs it (Debian package systemd)');
    return;
  }
  const check = join(dir, 'verify');
  mkdirSync(check);
  const copy = join(check, 'holdfast.service');
  writeFileSync(copy, unit.replace('/opt/holdfast/dist/agent/cli/main.js', join(ROOT, 'dist/agent/cli/main.js')));
  const verify = spawnSync(analyze, ['verify', '--man=no', copy], { encoding: 'utf8', env: SYSTEMD_ENV });
  t.equal(verify.status, 0, 'systemd-analyze verify: exit 0');
  t.equal(verify.stderr.trim(), '', 'systemd-analyze verify: no error, no warning', { stdout: verify.stdout });
  // The check can fail: a misspelt key is reported.
  const typo = join(check, 'typo', 'holdfast.service');
  mkdirSync(dirname(typo));
  writeFileSync(typo, readFileSync(copy, 'utf8').replace(/^RestartSec=/m, 'RestratSec='));
  const bad = spawnSync(analyze, ['verify', '--man=no', typo], { encoding: 'utf8', env: SYSTEMD_ENV });
  t.match(bad.stderr, /Unknown key.*RestratSec/, 'a misspelt key is reported by the same check');
  // The hardening, scored by systemd (0 best, 10 worst): under 3.5 (it is 2.5 with systemd 252).
  const security = spawnSync(analyze, ['security', '--offline=yes', '--threshold=35', '--no-pager', copy], { encoding: 'utf8', env: SYSTEMD_ENV });
  t.equal(security.status, 0, 'systemd-analyze security: exposure at most 3.5', { out: security.stdout.split('\n').slice(-3).join('\n'), err: security.stderr });

  // Back to pm2: the unit goes (two supervisors would start two agents on one store).
  const r3 = mustInstall(t, src, ['--root', root, '--no-npm']);
  t.notOk(existsSync(unitFile), 'the unit is removed');
  t.match(r3.out, /^done \S+holdfast\.service: removed \(pm2 supervises\)$/m, 'and it says so');
});

t.test('the tmpfiles.d entry makes the spool again after /tmp is emptied', async (t) => {
  const src = stageSource(t);
  const root = join(tempDir(t), 'root');
  mustInstall(t, src, ['--root', root, '--no-npm']);
  const tmpfiles = 'systemd-tmpfiles';
  if (spawnSync(tmpfiles, ['--version']).status !== 0) {
    t.fail('systemd-tmpfiles is missing: bash scripts/system-deps.sh test installs it (Debian package systemd)');
    return;
  }
  // User holdfast of the root, as the user running the test: the owner change is then allowed.
  const uid = process.getuid!();
  const gid = process.getgid!();
  writeFileSync(join(root, 'etc/passwd'), `holdfast:x:${uid}:${gid}::/var/lib/recovery:/usr/sbin/nologin\n`);
  writeFileSync(join(root, 'etc/group'), `holdfast:x:${gid}:\n`);
  const spool = join(root, 'tmp/recovery_cache');
  rmSync(spool, { recursive: true });
  const r = spawnSync(tmpfiles, ['--create', `--root=${root}`, join(root, 'etc/tmpfiles.d/holdfast.conf')], { encoding: 'utf8', env: SYSTEMD_ENV });
  t.equal(r.status, 0, 'systemd-tmpfiles --create accepts the entry', { err: r.stderr });
  t.equal(modeOf(spool), 0o700, 'the spool is back, 0700');
  t.equal(statSync(spool).uid, uid, 'owned by user holdfast');
});

t.test('--uninstall keeps the data, the config and the key; --purge removes them', async (t) => {
  const src = stageSource(t);
  const root = join(tempDir(t), 'root');
  mustInstall(t, src, ['--root', root, '--no-npm', '--systemd']);
  const at = (p: string) => join(root, p);
  const kept: Record<string, string> = {
    '/var/lib/recovery/data/holdfast.db': 'the store',
    '/var/log/recovery/engine.log': '{"msg":"a log line"}\n',
    '/tmp/recovery_cache/batch-1.spool': 'a spooled batch',
    '/etc/holdfast/mqtt.pass': 'secret\n',
  };
  for (const [p, text] of Object.entries(kept)) writeFileSync(at(p), text, { mode: 0o600 });
  kept['/etc/holdfast/holdfast.json'] = readFileSync(at('/etc/holdfast/holdfast.json'), 'utf8');
  kept['/etc/holdfast/holdfast.key'] = readFileSync(at('/etc/holdfast/holdfast.key'), 'utf8');

  const dry = install(src, ['--root', root, '--uninstall', '--purge', '--dry-run']);
  t.equal(dry.status, 0, 'a dry purge exits 0');
  t.same(verbs(dry, 'done'), [], 'a dry purge does nothing');
  t.ok(existsSync(at('/var/lib/recovery/data/holdfast.db')), 'the data is still there after the dry run');

  const u1 = mustInstall(t, src, ['--root', root, '--uninstall']);
  for (const p of ['/opt/holdfast', '/usr/local/bin/holdfast', '/etc/systemd/system/holdfast.service', '/etc/tmpfiles.d/holdfast.conf', '/etc/logrotate.d/holdfast']) {
    t.notOk(existsSync(at(p)), `${p} removed`);
  }
  for (const [p, text] of Object.entries(kept)) t.equal(readFileSync(at(p), 'utf8'), text, `${p} kept`);
  t.match(u1.out, /holdfast\.key: kept \(--purge removes it\)/, 'it says what it kept');
  t.match(last(mustInstall(t, src, ['--root', root, '--uninstall'])), /^nothing changed/, 'a second uninstall changes nothing');

  // Installed again: the same key and config, the data where it was.
  mustInstall(t, src, ['--root', root, '--no-npm']);
  for (const [p, text] of Object.entries(kept)) t.equal(readFileSync(at(p), 'utf8'), text, `${p} unchanged by the new install`);

  // A `holdfast` command that is not ours stays.
  const foreign = join(tempDir(t), 'foreign');
  mkdirSync(foreign);
  const root2 = join(foreign, 'root');
  mkdirSync(join(root2, 'usr/local/bin'), { recursive: true });
  writeFileSync(join(root2, 'usr/local/bin/holdfast'), '#!/bin/sh\necho someone else\n');
  const u3 = mustInstall(t, src, ['--root', root2, '--uninstall']);
  t.ok(existsSync(join(root2, 'usr/local/bin/holdfast')), 'a holdfast command the installer did not write is left');
  t.match(u3.err, /is not the command this script installs/, 'with a warning');

  const purge = mustInstall(t, src, ['--root', root, '--uninstall', '--purge']);
  for (const p of ['/var/lib/recovery', '/var/log/recovery', '/tmp/recovery_cache', '/etc/holdfast']) t.notOk(existsSync(at(p)), `${p} purged`);
  t.same(filesUnder(root), [], 'no file left under the root');
  t.match(purge.out, /^skip userdel holdfast \(--root\)$/m, 'the user is not touched under --root');
});

t.test('without --root: root only, and a dry run plans the real system without changing it', async (t) => {
  // Run as an unprivileged user: if the script failed to refuse, it could change nothing here.
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-sys-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const src = join(dir, 'src');
  for (const rel of SOURCE_PARTS) if (existsSync(join(ROOT, rel))) cpSync(join(ROOT, rel), join(src, rel), { recursive: true });
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  const asUser: SpawnSyncOptions = process.getuid!() === 0 ? { uid: 65534, gid: 65534, cwd: '/' } : {};
  const refused = install(src, [], asUser);
  t.equal(refused.status, 1, 'an install on the real system by a non-root user is refused');
  t.match(refused.err, /run me as root/, 'saying so');
  t.equal(refused.out, '', 'before any step');

  const plan = install(src, ['--dry-run', '--systemd'], asUser);
  t.equal(plan.status, 0, 'a dry run of the real system exits 0', { out: plan.out, err: plan.err });
  t.same(verbs(plan, 'done'), [], 'and does nothing');
  t.match(plan.out, /^(ok {3}system user holdfast|would system user holdfast: created)/m, 'the user is checked');
  t.match(plan.out, /^(ok {3}|would )\/var\/lib\/recovery\/data: (mode 0700|created \(mode 0700\))$/m, 'the data directory, by its real path');
  t.match(plan.out, /^(ok {3}|would )\/etc\/systemd\/system\/holdfast\.service: /m, 'the unit');
  t.match(plan.out, /^would holdfast\.service: (enabled|started)|^ok {3}holdfast\.service: enabled/m, 'systemctl, as a plan');
  t.match(last(plan), /^dry run: /, 'a dry run to the end');
});

const shellcheck = spawnSync('shellcheck', ['--version']).status === 0;
t.test('shellcheck has nothing to say about install.sh', { skip: shellcheck ? false : 'shellcheck is not installed' }, async (t) => {
  const r = spawnSync('shellcheck', [join(ROOT, 'scripts/install.sh')], { encoding: 'utf8' });
  t.equal(r.status, 0, 'shellcheck scripts/install.sh', { out: r.stdout });
});
