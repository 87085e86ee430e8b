/**
 * Device maps (drivers/modbus/devicemap.ts): the shipped maps load; every malformed map is
 * refused with a ConfigError (CONFIG_INVALID) naming the JSON path at fault and, for loaded
 * files, the file: overlapping registers, oversize points, the end of the address space,
 * duplicate names, unknown keys, wrong types, dangling scale factors, strings without length.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../agent/config/load.js';
import { HoldfastError } from '../agent/errors.js';
import { loadDeviceMap, validateDeviceMap } from '../agent/config/formats.js';
import { planReads } from '../drivers/modbus/plan.js';
import { modelPoints } from '../drivers/modbus/sunspec.js';

// dist/test/devicemap.test.js -> the repository root
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
type Raw = Record<string, unknown>;

const map = (...points: Raw[]): Raw => ({ name: 'test', points });
const u16 = (name: string, address: number, over: Raw = {}): Raw => ({ name, kind: 'holding', address, type: 'uint16', ...over });

function refused(t: TapTest, raw: unknown, code = 'CONFIG_INVALID'): ConfigError {
  try {
    validateDeviceMap(raw, 'test.json');
  } catch (e) {
    t.ok(e instanceof ConfigError && e instanceof HoldfastError, 'a ConfigError, which is a HoldfastError');
    t.equal((e as ConfigError).code, code);
    return e as ConfigError;
  }
  t.fail('map was accepted');
  throw new Error('map was accepted');
}

/** Expects exactly one problem, at `path`, whose message matches `re`. */
function oneProblem(t: TapTest, raw: unknown, path: string, re: RegExp): void {
  const e = refused(t, raw);
  t.same(e.problems.map((p) => p.path), [path], `problem at ${path}`);
  t.match(e.problems[0]?.message, re);
  t.match(e.message, 'test.json', 'the label is in the message');
}

t.test('the shipped maps load', async (t) => {
  const meter = loadDeviceMap(join(ROOT, 'config/devices/generic-energy-meter.json'));
  t.equal(meter.name, 'generic-energy-meter');
  t.same(meter.points.find((p) => p.name === 'counter'), { name: 'counter', kind: 'holding', address: 4, type: 'uint32' }, 'the loss-check counter (the simulator meter\'s holding 4-5)');
  for (const n of ['voltage_l1', 'voltage_l2', 'voltage_l3']) t.match(meter.points.find((p) => p.name === n), { kind: 'input', type: 'float32', unit: 'V' });
  t.ok(meter.points.filter((p) => p.name.startsWith('energy_')).every((p) => p.type === 'uint32' && p.unit === 'Wh'), 'energy as uint32 Wh');
  t.same(planReads(meter.points).map((i) => [i.kind, i.address, i.count]), [['holding', 1, 5], ['input', 0, 24]], 'two reads per poll');
  t.ok(Object.isFrozen(meter) && Object.isFrozen(meter.points[0]), 'frozen');

  const inv = loadDeviceMap(join(ROOT, 'config/devices/sunspec-inverter.json'));
  const discovered = [...modelPoints({ id: 1, address: 40002, length: 66 }), ...modelPoints({ id: 103, address: 40070, length: 50 })];
  for (const p of inv.points) {
    const { pollMs: _, ...rest } = p;
    t.same(rest, discovered.find((d) => d.name === p.name), `${p.name} is what discovery would produce`);
  }
  const fast = inv.points.filter((p) => p.pollMs === undefined);
  t.same(planReads(fast, { gap: inv.coalesceGap }).map((i) => [i.address, i.count]), [[40072, 37]], 'the inverter block is one read');
});

t.test('overlapping registers of one kind are refused, naming both points', async (t) => {
  oneProblem(t, map(u16('a', 10, { type: 'uint32' }), u16('b', 11)), '/points/1/address', /holding 11 of "b" overlaps "a" \(\/points\/0, holding 10\.\.11\)/);
  oneProblem(t, map(u16('s', 0, { type: 'string', length: 10 }), u16('x', 5)), '/points/1/address', /"s"/);
  oneProblem(t, map(u16('late', 20), u16('wide', 18, { type: 'float64' })), '/points/0/address', /"late" overlaps "wide" \(\/points\/1/);
  t.doesNotThrow(() => validateDeviceMap(map(u16('a', 10, { type: 'uint32' }), u16('b', 12))), 'adjacent is fine');
  t.doesNotThrow(() => validateDeviceMap(map(u16('h', 0), u16('i', 0, { kind: 'input' }), { name: 'c', kind: 'coil', address: 0, type: 'bool' })), 'one address in different kinds is fine');
  oneProblem(t, map({ name: 'c1', kind: 'coil', address: 3, type: 'bool' }, { name: 'c2', kind: 'coil', address: 3, type: 'bool' }), '/points/1/address', /coil 3/);
});

t.test('points no single read can fetch, or past the address space', async (t) => {
  oneProblem(t, map(u16('big', 0, { type: 'string', length: 126 })), '/points/0/length', /"big" is 126 registers, more than one read can fetch \(125\)/);
  t.doesNotThrow(() => validateDeviceMap(map(u16('max', 0, { type: 'string', length: 125 }))), '125 registers is fine');
  oneProblem(t, map(u16('end', 65535, { type: 'uint32' })), '/points/0/address', /past the end of the address space/);
  t.doesNotThrow(() => validateDeviceMap(map(u16('last', 65535))), 'the last register is fine');
  oneProblem(t, map(u16('a', 65536)), '/points/0/address', /<= 65535/);
});

t.test('duplicate names', async (t) => {
  oneProblem(t, map(u16('W', 0), u16('W', 1)), '/points/1/name', /duplicate point name "W" \(also \/points\/0\)/);
});

t.test('unknown keys and wrong types', async (t) => {
  oneProblem(t, map(u16('a', 0, { adress: 3 })), '/points/0/adress', /unknown key/);
  oneProblem(t, { ...map(u16('a', 0)), gap: 2 }, '/gap', /unknown key/);
  oneProblem(t, map(u16('a', '10' as unknown as number)), '/points/0/address', /integer/);
  oneProblem(t, map(u16('a', 1.5)), '/points/0/address', /integer/);
  oneProblem(t, map(u16('a', 0, { type: 'int8' })), '/points/0/type', /must be one of "int16"/);
  oneProblem(t, map(u16('a', 0, { kind: 'register' })), '/points/0/kind', /must be one of/);
  oneProblem(t, map(u16('a', 0, { scale: 0 })), '/points/0/scale', /must not be 0/);
  oneProblem(t, map(u16('a', 0, { wordOrder: 'middle' })), '/points/0/wordOrder', /"big", "little"/);
  oneProblem(t, map({ name: 'a', kind: 'holding', type: 'uint16' }), '/points/0/address', /is required/);
  oneProblem(t, { name: 'x', points: [] }, '/points', /fewer than 1/);
  oneProblem(t, map(u16('bad name', 0)), '/points/0/name', /pattern/);
  refused(t, [1, 2]);
  refused(t, null);
});

t.test('scale factors must name an int16 point of the map', async (t) => {
  oneProblem(t, map(u16('W', 0, { scaleFactor: 'W_SF' })), '/points/0/scaleFactor', /names no point of this map: "W_SF"/);
  oneProblem(t, map(u16('W', 0, { scaleFactor: 'W_SF' }), u16('W_SF', 1)), '/points/0/scaleFactor', /"W_SF" \(\/points\/1\) is uint16; a scale factor is an int16/);
  oneProblem(t, map(u16('W', 0, { type: 'int16', scaleFactor: 'W' })), '/points/0/scaleFactor', /its own scale factor/);
  t.doesNotThrow(() => validateDeviceMap(map(u16('W', 0, { scaleFactor: 'W_SF' }), u16('W_SF', 1, { type: 'int16' }))));
});

t.test('per-type rules', async (t) => {
  oneProblem(t, map(u16('s', 0, { type: 'string' })), '/points/0/length', /required for type "string"/);
  oneProblem(t, map(u16('a', 0, { type: 'uint32', length: 1 })), '/points/0/length', /uint32 is 2 register/);
  t.doesNotThrow(() => validateDeviceMap(map(u16('a', 0, { type: 'uint32', length: 2 }))), 'a matching length is fine');
  oneProblem(t, map({ name: 'c', kind: 'coil', address: 0, type: 'uint16' }), '/points/0/type', /coil is one bit/);
  oneProblem(t, map(u16('b', 0, { type: 'bool', scale: 2 })), '/points/0/scale', /not allowed on type "bool"/);
});

t.test('every problem is reported at once', async (t) => {
  const e = refused(t, map(u16('a', 0, { type: 'uint32' }), u16('a', 1), u16('s', 5, { type: 'string' }), u16('w', 9, { scaleFactor: 'nope' })));
  t.same(e.problems.map((p) => p.path).sort(), ['/points/1/address', '/points/1/name', '/points/2/length', '/points/3/scaleFactor']);
});

t.test('loadDeviceMap: file name, parse and missing-file errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-devmap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify(map(u16('a', 0), u16('b', 0), u16('c', 1), u16('d', 2), u16('e', 3, { foo: 1 }))));
  try {
    loadDeviceMap(bad);
    t.fail('accepted');
  } catch (e) {
    t.ok(e instanceof ConfigError);
    t.equal((e as ConfigError).code, 'CONFIG_INVALID');
    t.match((e as Error).message, bad, 'names the file');
    t.match((e as Error).message, '/points/4/foo: unknown key');
  }
  const notJson = join(dir, 'not.json');
  writeFileSync(notJson, '{ "name": ');
  t.throws(() => loadDeviceMap(notJson), { code: 'CONFIG_PARSE' });
  t.throws(() => loadDeviceMap(join(dir, 'missing.json')), { code: 'CONFIG_NOT_FOUND' });
});
