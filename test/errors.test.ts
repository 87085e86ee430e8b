/**
 * The error-code catalogue (agent/errors.ts, agent/error-catalogue.ts): every entry has a class,
 * a meaning and an action; docs/errors.md is generated from it and current; code families;
 * HoldfastError.
 */
import { STORE_CODES, StoreError } from '../store/errors.js';
import { DriverError } from '../drivers/errors.js';
import { ConfigError } from '../agent/config/load.js';
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLASSES, classesOf, CODES, familyOf, GRPC_STATUS_NAMES, grpcCode, HoldfastError, isHoldfastError, mqttCode, type CatalogCode,
} from '../agent/errors.js';
import { errorsReference } from '../scripts/errors-doc.js';
import { ROOT } from './helpers/agent.js';

const catalogue = Object.keys(CODES) as CatalogCode[];

t.test('docs/errors.md is generated from the catalogue and current', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  t.equal(doc, errorsReference(), 'regenerate with: node dist/scripts/errors-doc.js > docs/errors.md');
});

t.test('every catalogue entry has a valid class, a meaning and an action', async (t) => {
  t.ok(catalogue.length > 50, 'the catalogue is loaded');
  for (const code of catalogue) {
    t.match(code, /^[A-Z][A-Za-z0-9_]*$/, `${code} is an identifier`);
    const classes = classesOf(code);
    t.ok(classes.length > 0, `${code} has a class`);
    for (const c of classes) t.ok(Object.hasOwn(CLASSES, c), `${code}: class ${JSON.stringify(c)} is one of ${Object.keys(CLASSES).join(', ')}`);
    t.equal(new Set(classes).size, classes.length, `${code} lists each class once`);
    const { meaning, action } = CODES[code];
    t.ok(meaning.trim().length > 10, `${code} has a meaning`);
    t.ok(action.trim().length > 5, `${code} has an action`);
  }
  for (const [c, text] of Object.entries(CLASSES)) t.ok(text.trim().length > 10, `class ${c} is described`);
});

t.test('the generated table has exactly one row per catalogue code', async (t) => {
  const lines = errorsReference().split('\n');
  const header = lines.indexOf('| code | class | meaning | what to do |');
  t.ok(header >= 0, 'the table has its header');
  const rows = lines.slice(header + 2).filter((l) => l.startsWith('|'));
  const codes = rows.map((l) => /^\| `([^`]+)` \|/.exec(l)?.[1]);
  t.same(codes, catalogue, 'one row per code, in catalogue order');
  for (const row of rows) {
    // four cells: a `|` inside a cell is escaped, so only the unescaped ones separate
    t.equal(row.split(/(?<!\\)\|/).length, 6, `four cells: ${row.slice(0, 40)}`);
  }
});

t.test('code families', async (t) => {
  t.equal(mqttCode(135), 'MQTT_0x87');
  t.equal(mqttCode(0x80), 'MQTT_0x80');
  t.equal(mqttCode(0x8c), 'MQTT_0x8C', 'upper-case hex digits');
  t.equal(mqttCode(5), 'MQTT_0x05', 'two digits');
  for (let rc = 0x80; rc <= 0xff; rc++) {
    if (familyOf(mqttCode(rc)) !== 'MQTT_0xNN') t.fail(`familyOf(mqttCode(${rc}))`);
  }
  t.equal(familyOf('MQTT_0x87'), 'MQTT_0xNN');
  t.equal(familyOf('HTTP_503'), 'HTTP_NNN');
  t.equal(familyOf('HTTP_401'), 'HTTP_NNN');
  t.equal(familyOf('MODBUS_EXCEPTION_02'), 'MODBUS_EXCEPTION_NN');
  t.equal(familyOf('ETIMEDOUT'), 'ETIMEDOUT', 'a catalogue code is its own family');
  t.equal(grpcCode(14), 'GRPC_UNAVAILABLE');
  t.equal(grpcCode(3), 'GRPC_INVALID_ARGUMENT');
  t.equal(grpcCode(16), 'GRPC_UNAUTHENTICATED');
  t.equal(grpcCode(17), 'GRPC_STATUS_17', 'a number without a name keeps its number');
  for (let s = 1; s < GRPC_STATUS_NAMES.length; s++) {
    t.equal(familyOf(grpcCode(s)), grpcCode(s), `${grpcCode(s)} is a catalogue entry of its own (documented row)`);
  }
  t.equal(GRPC_STATUS_NAMES.length, 17, 'OK plus the 16 failure statuses');
  t.equal(familyOf('GRPC_STATUS_17'), 'GRPC_STATUS_NN');
  t.equal(familyOf('GRPC_STATUS_NN'), 'GRPC_STATUS_NN');
  t.equal(familyOf('MQTT_0xNN'), 'MQTT_0xNN');
  for (const bad of ['nope', '', 'MQTT_0x8', 'MQTT_0x087', 'mqtt_0x87', 'HTTP_50', 'HTTP_5031', 'HTTP_abc', 'MODBUS_EXCEPTION_2', 'etimedout', 'GRPC_OK', 'GRPC_NOPE', 'GRPC_STATUS_', 'grpc_unavailable']) {
    t.equal(familyOf(bad), undefined, `familyOf(${JSON.stringify(bad)}) is undefined`);
  }
  // Object.prototype members are not codes (`code in CODES` would say they are)
  for (const proto of ['toString', 'constructor', 'hasOwnProperty', '__proto__', 'valueOf']) {
    t.equal(familyOf(proto), undefined, `familyOf(${JSON.stringify(proto)}) is undefined`);
  }
});

t.test('HoldfastError', async (t) => {
  const cause = new Error('inner');
  const e = new HoldfastError('KEY_INVALID', 'line 2 is not "<keyId> <64 hex chars>"', '/etc/holdfast/holdfast.key', { cause });
  t.ok(e instanceof Error);
  t.equal(e.name, 'HoldfastError');
  t.equal(e.code, 'KEY_INVALID');
  t.equal(e.at, '/etc/holdfast/holdfast.key');
  t.equal(e.message, 'KEY_INVALID: /etc/holdfast/holdfast.key: line 2 is not "<keyId> <64 hex chars>"', 'code: path: message');
  t.equal(e.cause, cause);
  t.match(String(e), /^HoldfastError: KEY_INVALID: \/etc\/holdfast\/holdfast.key: /);

  const bare = new HoldfastError('USAGE', 'name one configuration file');
  t.equal(bare.message, 'USAGE: name one configuration file');
  t.equal(bare.at, undefined);

  const fam = new HoldfastError(mqttCode(0x87), 'not authorised', '/uplinks/0');
  t.equal(fam.message, 'MQTT_0x87: /uplinks/0: not authorised');

  t.ok(isHoldfastError(e));
  t.ok(isHoldfastError(e, 'KEY_INVALID'));
  t.notOk(isHoldfastError(e, 'USAGE'));
  t.notOk(isHoldfastError(new Error('KEY_INVALID: x')));
  t.notOk(isHoldfastError({ code: 'KEY_INVALID' }));
});

t.test('a room raises its own codes: the store', async (t) => {
  const e = new StoreError('KEY_INVALID', 'no key in file', '/etc/holdfast/holdfast.key');
  t.ok(e instanceof HoldfastError, 'a StoreError is a HoldfastError to the agent');
  t.ok(isHoldfastError(e, 'KEY_INVALID'));
  t.notOk(isHoldfastError(e, 'USAGE'));
  t.notOk(e instanceof ConfigError, 'a subclass keeps the ordinary check');
  t.equal(String(e), 'HoldfastError: KEY_INVALID: /etc/holdfast/holdfast.key: no key in file', 'the same text as the agent\'s');
  t.notOk(new Error('x') instanceof HoldfastError);
  for (const [code, doc] of Object.entries(STORE_CODES)) t.equal(CODES[code as CatalogCode], doc, `${code}: the catalogue gathers the store's entry`);
});

t.test('a driver refuses options that cannot work with a coded error the agent recognises', async (t) => {
  const e = new DriverError('CONFIG_INVALID', 'not a URL', 'ftp://x');
  t.ok(e instanceof HoldfastError);
  t.ok(isHoldfastError(e, 'CONFIG_INVALID'));
  t.equal(String(e), 'HoldfastError: CONFIG_INVALID: ftp://x: not a URL');
});
