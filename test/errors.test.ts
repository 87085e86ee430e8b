/**
 * The error-code catalogue (agent/errors.ts): every code is documented in README.md's
 * `## Error codes` table and the table documents nothing else; code families; HoldfastError.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CODES, familyOf, GRPC_STATUS_NAMES, grpcCode, HoldfastError, isHoldfastError, mqttCode } from '../agent/errors.js';
import { ROOT } from './helpers/agent.js';

/** The codes in the first column of the table(s) in README.md's `## Error codes` section. */
function documentedCodes(readme: string): { codes: string[]; found: boolean } {
  const lines = readme.split(/\r?\n/);
  const start = lines.findIndex((l) => /^##\s+Error codes\s*$/.test(l));
  if (start < 0) return { codes: [], found: false };
  const codes: string[] = [];
  let inFence = false;
  for (const line of lines.slice(start + 1)) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    if (inFence) continue;
    if (/^##\s/.test(line)) break; // the next section (### subsections stay inside)
    const m = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (m) codes.push(m[1]);
  }
  return { codes, found: true };
}

t.test('every code in CODES is documented in README.md, and nothing else is', async (t) => {
  const file = join(ROOT, 'README.md');
  if (!existsSync(file)) {
    t.fail(`README.md not found at ${file}: it must have a "## Error codes" section documenting ${Object.keys(CODES).length} codes`);
    return;
  }
  const { codes, found } = documentedCodes(readFileSync(file, 'utf8'));
  t.ok(found, 'README.md has a "## Error codes" section');
  if (!found) return;
  t.ok(codes.length > 0, 'the section has a table with rows "| `CODE` |"');

  const catalogue = Object.keys(CODES);
  const undocumented = catalogue.filter((c) => !codes.includes(c));
  const unknown = codes.filter((c) => !Object.hasOwn(CODES, c));
  const twice = codes.filter((c, i) => codes.indexOf(c) !== i);
  t.same(undocumented, [], `codes missing from README.md's error table: ${undocumented.join(', ') || 'none'}`);
  t.same(unknown, [], `codes in README.md's error table that are not in CODES (agent/errors.ts): ${unknown.join(', ') || 'none'}`);
  t.same(twice, [], `codes documented twice: ${twice.join(', ') || 'none'}`);
});

t.test('the README parser', async (t) => {
  const md = [
    '# X',
    '## Error codes',
    'intro with `NOT_A_ROW` inline',
    '| code | meaning |',
    '| --- | --- |',
    '| `A_CODE` | a |',
    '|`B_CODE`| b |',
    '| C_CODE | no backticks: not a row |',
    '### Families',
    '| `D_CODE` | d |',
    '```',
    '| `IN_FENCE` | x |',
    '```',
    '## Next',
    '| `AFTER` | x |',
  ].join('\n');
  t.same(documentedCodes(md), { codes: ['A_CODE', 'B_CODE', 'D_CODE'], found: true });
  t.same(documentedCodes('# nothing\n| `A` | x |'), { codes: [], found: false });
});

t.test('CODES', async (t) => {
  for (const [code, text] of Object.entries(CODES)) {
    t.match(code, /^[A-Z][A-Za-z0-9_]*$/, `${code} is an identifier`);
    t.ok(text.length > 10, `${code} has a description`);
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
