/**
 * Hardware layer (hardware/): the sysfs readers against a fake tree in a temp folder (thermal
 * millidegrees, IIO raw/scale/offset -> volts, LED trigger and brightness), garbage and missing
 * files giving null with a reason, the three shipped board profiles loading and validating, bad
 * profiles refused with the JSON path at fault, and BoardSensors on top (including the real
 * generic-linux temperature, which must be a number or null and never throw). No real hardware.
 */
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HoldfastError } from '../agent/errors.js';
import { listProfiles, profilesDir, type BoardProfile } from '../hardware/profile.js';
import { loadProfile, ProfileError, validateProfile } from '../agent/config/formats.js';
import { Sysfs } from '../hardware/sysfs.js';
import { BoardSensors, FALLBACK_QUIET_MS } from '../hardware/sensors.js';
import { tempDir } from './helpers/config-fixtures.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Writes <root>/<rel> with text, creating folders. */
function put(root: string, rel: string, text: string): void {
  const file = join(root, rel);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}
const IIO = 'sys/bus/iio/devices/iio:device0';

function fakeTree(t: TapTest): string {
  const root = tempDir(t, 'holdfast-sysfs-');
  put(root, 'sys/class/thermal/thermal_zone0/temp', '48312\n');
  put(root, 'sys/class/thermal/thermal_zone1/temp', '61000\n');
  put(root, 'sys/class/thermal/thermal_zone2/temp', 'hot\n');
  put(root, 'sys/class/thermal/thermal_zone3/temp', '999999\n');
  put(root, `${IIO}/name`, 'ads1015\n');
  put(root, `${IIO}/in_voltage0_raw`, '20000\n');
  put(root, `${IIO}/in_voltage0_scale`, '0.062500000\n');
  put(root, `${IIO}/in_voltage1_raw`, '12000\n');
  put(root, `${IIO}/in_voltage2_raw`, '-17\n');
  put(root, `${IIO}/in_voltage2_scale`, 'garbage\n');
  put(root, `${IIO}/in_voltage3_raw`, '\n');
  put(root, 'sys/bus/iio/devices/iio:device1/in_voltage0_raw', '2048\n');
  put(root, 'sys/bus/iio/devices/iio:device1/in_voltage_scale', '0.805664062\n');
  put(root, 'sys/bus/iio/devices/iio:device1/in_voltage_offset', '-48\n');
  put(root, 'sys/class/leds/holdfast:red:fault/brightness', '0\n');
  put(root, 'sys/class/leds/holdfast:red:fault/trigger', 'none [heartbeat] timer\n');
  put(root, 'sys/class/leds/led0/brightness', '0\n');
  put(root, 'sys/class/leds/led0/max_brightness', '255\n');
  return root;
}

t.test('thermal zones: millidegrees -> degrees; missing, garbage, implausible -> null with a reason', async (t) => {
  const fs = new Sysfs(fakeTree(t));
  t.equal(fs.readThermalC('thermal_zone0'), 48.312);
  t.equal(fs.readThermalC('thermal_zone1'), 61);
  t.equal(fs.lastError('/sys/class/thermal/thermal_zone0/temp'), undefined, 'no reason after a good read');
  for (const [zone, reason] of [['thermal_zone2', /not a number/], ['thermal_zone3', /implausible/], ['thermal_zone9', /missing/], ['../../etc', /unsafe/]] as const) {
    t.equal(fs.readThermalC(zone), null, `${zone} -> null`);
    t.match(fs.lastError(`/sys/class/thermal/${zone}/temp`)?.reason, reason, `${zone}: reason`);
  }
  t.match(fs.lastError(), { path: '/sys/class/thermal/../../etc/temp' }, 'lastError() is the latest failure');
  t.doesNotThrow(() => new Sysfs('/nonexistent-root-for-holdfast').readThermalC('thermal_zone0'));
});

t.test('IIO ADC: (raw + offset) * scale / 1000 * divider, fallbacks, garbage -> null', async (t) => {
  const fs = new Sysfs(fakeTree(t));
  const src = (channel: string, scale = 2, device = 'iio:device0') => ({ device, channel, scale });
  t.equal(fs.readAdcVolts(src('in_voltage0')), 2.5, '20000 * 0.0625 mV = 1.25 V at the ADC, x2 divider');
  t.equal(fs.readAdcVolts(src('in_voltage1')), 24, 'no scale file: 1 mV per LSB (12000 mV x 2)');
  t.equal(fs.readAdcVolts({ ...src('in_voltage0', 1), name: 'ads1015' }), 1.25, 'name matches');
  t.equal(fs.readAdcVolts({ ...src('in_voltage0', 1), name: 'ads1115' }), null, 'name mismatch refused');
  t.match(fs.lastError(`/${IIO}/in_voltage0_raw`)?.reason, /not "ads1115"/);
  t.ok(Math.abs((fs.readAdcVolts(src('in_voltage0', 3, 'iio:device1')) as number) - (2000 * 0.805664062 * 3) / 1000) < 1e-9, 'shared in_voltage_scale and offset');
  t.equal(fs.readAdcVolts(src('in_voltage2')), null, 'garbage scale -> null');
  t.match(fs.lastError(`/${IIO}/in_voltage2_scale`)?.reason, /not a number/);
  t.equal(fs.readAdcVolts(src('in_voltage3')), null, 'empty raw -> null');
  t.equal(fs.readAdcVolts(src('in_voltage7')), null, 'missing channel -> null');
  t.match(fs.lastError(`/${IIO}/in_voltage7_raw`)?.reason, /missing/);
  t.equal(fs.readAdcVolts(src('in_voltage0', 0)), null, 'a zero divider is refused');
  t.equal(fs.readAdcVolts(src('in_voltage0', 2, 'iio:device0/../../x')), null, 'unsafe device name');
});

t.test('LEDs: trigger none first, brightness written and read back', async (t) => {
  const root = fakeTree(t);
  const fs = new Sysfs(root);
  const led = (name: string, file: string) => readFileSync(join(root, 'sys/class/leds', name, file), 'utf8');
  t.equal(fs.ledState('holdfast:red:fault'), false);
  t.equal(fs.setLed('holdfast:red:fault', true), true);
  t.equal(led('holdfast:red:fault', 'trigger'), 'none', 'trigger set to none');
  t.equal(led('holdfast:red:fault', 'brightness'), '1');
  t.equal(fs.ledState('holdfast:red:fault'), true);
  t.equal(fs.setLed('holdfast:red:fault', false), true);
  t.equal(led('holdfast:red:fault', 'brightness'), '0');
  t.equal(fs.ledState('holdfast:red:fault'), false);
  t.equal(fs.setLed('led0', true), true, 'an LED without a trigger file');
  t.equal(led('led0', 'brightness'), '255', 'max_brightness when readable');
  t.equal(fs.ledState('missing'), null);
  t.equal(fs.setLed('missing', true), false, 'no such LED: false, no throw');
  t.ok(fs.lastError('/sys/class/leds/missing/brightness'));
  t.equal(fs.setLed('../x', true), false, 'unsafe name');
});

t.test('the three shipped profiles load and validate', async (t) => {
  t.same(listProfiles(), ['din-rail-gateway', 'generic-linux', 'raspberry-pi-rs485-hat']);
  t.match(profilesDir(), /hardware[/\\]profiles$/);
  for (const name of listProfiles()) {
    const p = loadProfile(name);
    t.equal(p.name, name, `${name}: name matches the file`);
    t.equal(p.verified.onRealHardware, false, `${name}: states it was not verified on hardware`);
    t.ok(p.verified.notVerified.length > 0 && p.verified.assumptions.length > 0, `${name}: says what is assumed`);
    t.same(loadProfile(join(profilesDir(), `${name}.json`)), p, `${name}: also by file path`);
  }
  const pi = loadProfile('raspberry-pi-rs485-hat');
  t.match(pi.buses.rs485a, { port: 'sc0', voltage: { type: 'iio', device: 'iio:device0', channel: 'in_voltage0', scale: 2 } });
  t.equal(pi.serialPorts.sc0.device, '/dev/ttySC0');
  t.equal(loadProfile('generic-linux').temperatureFallback, 'systeminformation');
  t.equal(loadProfile('din-rail-gateway').leds.fault, 'holdfast:red:fault');
});

t.test('bad profiles are refused with the path at fault', async (t) => {
  const good = loadProfile('raspberry-pi-rs485-hat');
  const refused = (mutate: (p: any) => void): ProfileError => {
    const p = structuredClone(good) as any;
    mutate(p);
    try {
      validateProfile(p, 'test');
    } catch (e) {
      t.ok(e instanceof HoldfastError && e instanceof ProfileError);
      t.equal((e as ProfileError).code, 'CONFIG_INVALID');
      return e as ProfileError;
    }
    throw new Error('accepted');
  };
  const paths = (e: ProfileError) => e.problems.map((p) => p.path);
  t.same(paths(refused((p) => (p.buses.rs485a.voltage.scale = -1))), ['/buses/rs485a/voltage/scale']);
  t.same(paths(refused((p) => delete p.buses.rs485b.voltage.channel)), ['/buses/rs485b/voltage/channel']);
  t.same(paths(refused((p) => (p.buses.rs485a.port = 'sc7'))), ['/buses/rs485a/port']);
  t.same(paths(refused((p) => (p.buses.rs485a.voltage = { type: 'none', device: 'iio:device0' }))), ['/buses/rs485a/voltage/device']);
  t.same(paths(refused((p) => (p.serialPorts.sc0.rs485 = 'yes'))), ['/serialPorts/sc0/rs485']);
  t.same(paths(refused((p) => (p.thermalZones = ['cpu']))), ['/thermalZones/0']);
  t.same(paths(refused((p) => (p.leds.fault = '../../etc/passwd'))), ['/leds/fault']);
  t.same(paths(refused((p) => (p.extra = 1))), ['/extra']);
  t.same(paths(refused((p) => (p.serialPorts['bad port'] = { device: '/dev/ttyS0', rs485: false }))), ['/serialPorts/bad port']);
  t.same(paths(refused((p) => delete p.verified)), ['/verified']);
  t.same(paths(refused((p) => (p.verified.verified = ['ran it']))), ['/verified/verified'], 'no checks claimed off hardware');
  t.match(refused((p) => (p.buses.rs485a.voltage.scale = 0)).message, /CONFIG_INVALID: \/buses\/rs485a\/voltage\/scale/);

  const dir = tempDir(t);
  writeFileSync(join(dir, 'broken.json'), '{ nope');
  t.throws(() => loadProfile(join(dir, 'broken.json')), { code: 'CONFIG_PARSE' });
  t.throws(() => loadProfile('no-such-board'), { code: 'CONFIG_NOT_FOUND', message: /known profiles: din-rail-gateway/ });
  t.throws(() => loadProfile('../etc'), { code: 'CONFIG_NOT_FOUND' });
});

t.test('BoardSensors over a fake tree', async (t) => {
  const root = fakeTree(t);
  const pi = loadProfile('raspberry-pi-rs485-hat');
  const profile: BoardProfile = { ...pi, thermalZones: ['thermal_zone0', 'thermal_zone1', 'thermal_zone2', 'thermal_zone9'], leds: { fault: 'holdfast:red:fault' } };
  let asked = 0;
  const s = new BoardSensors(profile, new Sysfs(root), { fallback: async () => (asked++, 40) });
  t.equal(await s.cpuTempC(), 61, 'the hottest readable zone');
  t.equal(asked, 0, 'no fallback needed (and this profile has none)');
  t.equal(s.busVolts('rs485a'), 2.5);
  t.equal(s.busVolts('sc0'), 2.5, 'by port name too');
  t.equal(s.busVolts('nope'), null);
  t.equal(s.hasBusVoltage('rs485b'), true);
  t.equal(s.portPath('sc1'), '/dev/ttySC1');
  t.equal(s.portPath('/dev/ttyUSB3'), '/dev/ttyUSB3', 'a path passes through');
  t.equal(s.supportsRs485('/dev/ttySC0'), true);
  t.equal(s.faultLed(true), true);
  t.equal(new Sysfs(root).ledState('holdfast:red:fault'), true);

  const generic = loadProfile('generic-linux');
  const g = new BoardSensors(generic, new Sysfs(join(root, 'empty')), { fallback: async () => (asked++, 42.5) });
  t.equal(await g.cpuTempC(), 42.5, 'no zone readable: systeminformation fallback');
  t.equal(asked, 1);
  t.equal(g.busVolts('bus0'), null, 'no ADC');
  t.equal(g.hasBusVoltage('bus0'), false);
  t.equal(g.faultLed(true), false, 'no LEDs');
  const throwing = new BoardSensors(generic, new Sysfs(join(root, 'empty')), { fallback: async () => { throw new Error('boom'); } });
  t.equal(await throwing.cpuTempC(), null, 'a failing fallback is null');

  // A machine without sensors: the fallback finds nothing and is left alone for FALLBACK_QUIET_MS.
  let now = 0;
  let nulls = 0;
  const none = new BoardSensors(generic, new Sysfs(join(root, 'empty')), { fallback: async () => (nulls++, null), now: () => now });
  t.equal(await none.cpuTempC(), null);
  now += FALLBACK_QUIET_MS - 1;
  t.equal(await none.cpuTempC(), null);
  t.equal(nulls, 1, 'not asked again while quiet');
  now += 1;
  await none.cpuTempC();
  t.equal(nulls, 2, 'asked again after FALLBACK_QUIET_MS');
  t.equal(await g.cpuTempC(), 42.5, 'a fallback that answers is asked every sample');
  t.equal(asked, 2);
});

t.test('generic-linux on this machine: a number or null, never a throw', async (t) => {
  const s = new BoardSensors(loadProfile('generic-linux'));
  const c = await s.cpuTempC();
  t.ok(c === null || (typeof c === 'number' && Number.isFinite(c)), `cpuTempC() = ${c}`);
});
