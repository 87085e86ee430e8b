/**
 * agent/shutdown.ts: the stop's deadlines come in order inside the budget, a step that never
 * settles is left behind with SHUTDOWN_TIMEOUT (naming it), one that fails is logged, and the
 * default shutdownTimeoutMs leaves room below pm2's kill_timeout.
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pino } from 'pino';
import { shutdownPlan, step } from '../agent/shutdown.js';
import { within } from '../drivers/timer.js';
import { configSchema } from '../agent/config/schema.js';
import { ROOT } from './helpers/agent.js';

t.test('the plan: acknowledgements, then closing, then every step, all before the budget ends', async (t) => {
  for (const [start, budget] of [[0, 1000], [1_700_000_000_000, 7000], [5, 60_000], [123, 1001]] as const) {
    const p = shutdownPlan(start, budget);
    const order = [p.startedAt, p.acksBy, p.closeBy, p.stepsBy, p.hardBy];
    t.same([...order].sort((a, b) => a - b), order, `${budget} ms: in order`);
    t.ok(p.acksBy > p.startedAt && p.stepsBy < p.hardBy, `${budget} ms: acks get time, and the store's close has a margin`);
    t.equal(p.hardBy - p.startedAt, budget, `${budget} ms: ends with the budget`);
  }
});

t.test('within and step', async (t) => {
  t.equal(await within(new Promise(() => {}), 0), false, 'a promise that never settles: timeout');
  t.equal(await within(Promise.resolve(1), 3_600_000), true, 'a settled one: done at once (the long timer is cleared)');
  t.equal(await within(Promise.reject(new Error('x')), 3_600_000), true, 'a rejection is done too');
  t.equal(await within(undefined, 0), true, 'no step at all');

  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  await step(log, 'uplink stuck', new Promise(() => {}), 0);
  t.match(lines.at(-1), { code: 'SHUTDOWN_TIMEOUT', step: 'uplink stuck', level: 40 }, 'a step left behind: warned with the code and the step');
  await step(log, 'HTTP server', Promise.reject(new Error('boom')), Date.now() + 60_000);
  t.match(lines.at(-1), { step: 'HTTP server', level: 50, err: { message: 'boom' } }, 'a failed step: logged, the stop goes on');
  const n = lines.length;
  await step(log, 'fine', Promise.resolve(), Date.now() + 60_000);
  t.equal(lines.length, n, 'a step done in time says nothing');
});

t.test('the default shutdownTimeoutMs leaves room below pm2 kill_timeout', async (t) => {
  const require = createRequire(import.meta.url);
  const eco = require(join(ROOT, 'ecosystem.config.js')) as { apps: { kill_timeout: number }[] };
  const def = (configSchema.properties.shutdownTimeoutMs as { default: number }).default;
  t.ok(def + 2000 <= eco.apps[0].kill_timeout, `default ${def} ms + 2 s for closing the store and exiting <= kill_timeout ${eco.apps[0].kill_timeout} ms`);
});
