/**
 * No bare `throw new Error` on a path that can reach an operator: the throw sites of agent/,
 * drivers/ and hardware/ that could, each pinned to what the operator gets.
 * - a paced batch that is not a JSON array: PAYLOAD_UNREADABLE, its message naming what was found;
 * - malformed XML from an IEEE 2030.5 server: the parser's error is only the message of a failed
 *   connect, which the classifier codes UPLINK_ERROR (link, soft);
 * - the internal invariants (the 2030.5 writer's element tables, the serial binding's read bounds
 *   bound, loadDrivers before createDriver) say `internal:`;
 * - the guard's injected failure stays uncoded on purpose and is reported as INTERNAL_ERROR.
 */
import t from 'tap';
import { constants, openSync } from 'node:fs';
import pino from 'pino';
import { arrayBody } from '../agent/forward/pacer.js';
import { openMessage } from '../agent/forward/message.js';
import { classify } from '../agent/policy/classify.js';
import { HoldfastError, isHoldfastError, type ErrorCode } from '../agent/errors.js';
import { Guard } from '../agent/guard.js';
import { createDriver } from '../agent/uplinks.js';
import type { Config, UplinkConfig } from '../agent/config/types.js';
import { PayloadCodec } from '../store/codec.js';
import type { TaskRow } from '../store/tasks.js';
import { sequence } from '../drivers/sep2/xml.js';
import { Sep2Driver } from '../drivers/sep2/client.js';
import { adoptedBinding } from '../drivers/serial/port.js';
import { makePki, startSep2Server } from './helpers/sep2-server.js';

t.test('a paced batch that is not a JSON array is PAYLOAD_UNREADABLE, naming what was found', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['{"a":1}', /stored batch of 7 bytes is not a JSON array: it begins with byte 0x7B and ends with 0x7D/],
    ['', /stored batch of 0 bytes is not a JSON array: it is empty/],
    [' \n', /stored batch of 2 bytes is not a JSON array: it is only whitespace/],
    ['[1', /it begins with byte 0x5B and ends with 0x31/],
  ];
  for (const [text, message] of cases) {
    let caught: unknown;
    try {
      arrayBody(Buffer.from(text));
    } catch (e) {
      caught = e;
    }
    t.ok(isHoldfastError(caught, 'PAYLOAD_UNREADABLE'), `${JSON.stringify(text)}: a coded error`);
    t.match((caught as Error).message, /^PAYLOAD_UNREADABLE: /, 'the message starts with the code');
    t.match((caught as Error).message, message);
  }
  t.equal(arrayBody(Buffer.from(' [1,2] ')).toString(), '1,2', 'an array still opens');
});

t.test('the paced message names the code in the unreadable task\'s message (its last_error)', async (t) => {
  const codec = new PayloadCodec(null, null);
  const task = (id: number, json: string) =>
    ({ id, payloadId: id, key: `k${id}`, device: 'm1', readingCount: 1, retryCount: 0, firstAttemptAt: null, createdAt: 0, payload: codec.encode(json, `k${id}`) }) as unknown as TaskRow;
  const o = openMessage([task(1, '[{"v":1}]'), task(2, '{"v":2}'), task(3, '[{"v":3}]')], 'paced', codec, 0);
  t.same(o.sent.map((r) => r.id), [1, 3], 'the others are merged and sent');
  t.equal(o.unreadable.length, 1);
  t.equal(o.unreadable[0].task.id, 2, 'the task that is not an array alone is left out');
  t.match(o.unreadable[0].message, /^PAYLOAD_UNREADABLE: stored batch of 7 bytes is not a JSON array/);
  t.equal(o.msg?.readings.toString(), '[{"v":1},{"v":3}]');
});

t.test('malformed XML from a 2030.5 server: a failed connect coded UPLINK_ERROR, naming the resource and the fault', async (t) => {
  const pki = makePki();
  const srv = await startSep2Server({ pki, pen: 32473 });
  t.teardown(() => srv.close());
  const d = new Sep2Driver({ name: 'utility', url: srv.url, certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caCert, pen: 32473, gatewayId: 'gw', timeoutMs: 5000 });
  t.teardown(() => d.close());
  const bodies: Array<[string, RegExp]> = [
    ['<DeviceCapability><MirrorUsagePointListLink href="/mup"></DeviceCapability>', /^unreadable DeviceCapability: XML: unexpected <\/DeviceCapability>/],
    ['<!DOCTYPE x [<!ENTITY e "boom">]><DeviceCapability>&e;</DeviceCapability>', /^unreadable DeviceCapability: XML: DOCTYPE/],
    ['<html xmlns="http://www.w3.org/1999/xhtml">maintenance</html>', /^unreadable DeviceCapability: expected DeviceCapability in urn:ieee:std:2030.5:ns, got html in http:\/\/www.w3.org\/1999\/xhtml$/],
  ];
  for (const [body, message] of bodies) {
    srv.script({ method: 'GET', path: /^\/dcap$/, status: 200, body, times: 1 });
    const r = await d.connect();
    t.equal(r.ok, false, `${body.slice(0, 30)}: refused`);
    if (r.ok) continue;
    t.match(r.failure, { kind: 'http', message });
    t.match(classify(r.failure), { code: 'UPLINK_ERROR', scope: 'link', retry: 'soft' }, 'a coded, retried link failure');
  }
  srv.script({ method: 'GET', path: /^\/mup$/, status: 200, body: '<MirrorUsagePointList all="1"><x></MirrorUsagePointList>', times: 1 });
  const r = await d.connect();
  t.equal(r.ok, false);
  if (!r.ok) {
    t.match(r.failure.message, /^unreadable MirrorUsagePointList: XML: unexpected <\/MirrorUsagePointList>/);
    t.match(classify(r.failure), { code: 'UPLINK_ERROR', scope: 'link', retry: 'soft' });
  }
  t.same(await d.connect(), { ok: true }, 'a well-formed answer connects');
});

t.test('internal invariants say so', async (t) => {
  t.throws(() => sequence('Nope', {}), /^internal: no element order for Nope$/);
  t.throws(() => sequence('DateTimeInterval', { duration: 1, start: 2, end: 3 }), /^internal: DateTimeInterval has no element end$/);
  t.throws(() => sequence('DateTimeInterval', { duration: 1 }), /^internal: DateTimeInterval.start is required$/);
  // Not awaited loadDrivers() in this process: the OTLP module is not loaded.
  const u = { type: 'otlp', name: 'collector', url: 'http://127.0.0.1:4317' } as unknown as UplinkConfig;
  t.throws(() => createDriver({} as Config, u), /^internal: loadDrivers\(\) was not awaited/);
});

t.test('the serial binding\'s read bound is an internal invariant', async (t) => {
  let fd: number;
  try {
    fd = openSync('/dev/ptmx', constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (e) {
    t.fail(`a pty is needed (Linux): ${(e as Error).message}`);
    return;
  }
  const port = await adoptedBinding(fd).open({ path: 'ptmx', baudRate: 9600 });
  t.teardown(() => port.close());
  await t.rejects(port.read(Buffer.alloc(4), 2, 8), /^internal: buffer is too small \(4 bytes for 8 at 2\)$/);
});

t.test('the guard\'s injected failure is reported as INTERNAL_ERROR, naming the site and the hook', async (t) => {
  const events: Array<[string, ErrorCode, string]> = [];
  const g = new Guard({ log: pino({ level: 'silent' }), event: (site, code, message) => events.push([site, code, message]) }, 'tick');
  t.equal(g.run('tick', () => 1), undefined, 'the injected run failed');
  t.equal(g.run('tick', () => 2), 2, 'once only');
  t.same(events, [['tick', 'INTERNAL_ERROR', 'injected failure at tick (HOLDFAST_INJECT_THROW)']]);
  t.notOk(new Error('x') instanceof HoldfastError);
});
