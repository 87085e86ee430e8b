/**
 * The local HTTP server of a running agent: /metrics passes Debian's `promtool check metrics`,
 * /healthz and /readyz answer, and the admin API refuses a missing or wrong token and a client
 * outside the allow-list (401/403, no detail) and resets a breaker with the right token.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startBroker, waitFor } from './helpers/mosquitto.js';
import { count, launchAgent, makeAgentDir } from './helpers/agent.js';

async function get(port: number, path: string, init: RequestInit = {}) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, init);
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') ?? '' };
}

t.test('metrics, health, readiness and the admin API', async (t) => {
  const broker = await startBroker();
  await broker.stop(); // the uplink stays down: its breaker opens, something to reset
  const port = await freePort();
  const a = makeAgentDir(broker.url, { sources: [{ type: 'simulated', device: 'sim-1', intervalMs: 20, points: 3 }] }, {
    breaker: { minCalls: 2, openMs: 60000, failureRate: 0.5, windowMs: 60000, halfOpenProbes: 1 },
  });
  const tokenFile = join(a.dir, 'api.token');
  writeFileSync(tokenFile, 's3cret-token-for-tests\n');
  chmodSync(tokenFile, 0o600);
  a.config.api = { port, tokenFile };
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a, async () => {
    await broker.stop();
  });
  await waitFor(async () => (await get(port, '/healthz').catch(() => ({ status: 0 }))).status === 200, 20_000, 'healthz');
  t.equal((await get(port, '/readyz')).status, 200, 'ready: store writable, one uplink configured');

  await waitFor(() => count(a, `SELECT count(*) FROM recovery_events WHERE kind = 'breaker'`) > 0, 30_000, 'breaker open');
  await waitFor(() => count(a, `SELECT count(*) FROM recovery_tasks WHERE status = 'pending'`) > 0, 30_000, 'something buffered');
  const m = await get(port, '/metrics');
  t.equal(m.status, 200, '/metrics answers');
  t.match(m.type, /text\/plain/, 'in the text exposition format');
  for (const name of ['holdfast_buffer_batches', 'holdfast_buffer_readings', 'holdfast_deliveries_total', 'holdfast_breaker_state', 'holdfast_delivery_latency_seconds', 'holdfast_field_faults_total']) {
    t.match(m.text, new RegExp(`# TYPE ${name} `), `has ${name}`);
  }
  t.match(m.text, /holdfast_breaker_state\{uplink="broker",state="open"\} 1/, 'the open breaker shows');
  t.match(m.text, /holdfast_buffer_batches\{uplink="broker",status="pending"\} [1-9]/, 'the pending buffer shows');
  t.match(m.text, /holdfast_readings_committed_total [1-9]/, 'committed readings counted');
  const check = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8' });
  t.equal(check.status, 0, `promtool check metrics passes ${check.stdout}${check.stderr}`);

  const auth = (token?: string) => (token ? { headers: { authorization: `Bearer ${token}` } } : {});
  t.equal((await get(port, '/api/status')).status, 401, 'no token: 401');
  const wrong = await get(port, '/api/status', auth('nope'));
  t.equal(wrong.status, 403, 'wrong token: 403');
  t.notMatch(wrong.text, /token|s3cret/i, 'no detail leaked');
  const st = await get(port, '/api/status', auth('s3cret-token-for-tests'));
  t.equal(st.status, 200, 'right token: status');
  t.equal((JSON.parse(st.text) as { lanes: { breaker: string }[] }).lanes[0].breaker, 'open', 'status JSON shows the breaker open');
  t.equal((await get(port, '/api/breakers/broker/reset', { method: 'POST', ...auth('wrong') })).status, 403, 'reset refused with a wrong token');
  const reset = await get(port, '/api/breakers/broker/reset', { method: 'POST', ...auth('s3cret-token-for-tests') });
  t.equal(reset.status, 200, 'reset with the right token');
  const after = JSON.parse((await get(port, '/api/status', auth('s3cret-token-for-tests'))).text) as { lanes: { breaker: string }[] };
  t.not(after.lanes[0].breaker, 'open', `breaker no longer open (${after.lanes[0].breaker})`);
  t.equal((await get(port, '/api/breakers/nosuch/reset', { method: 'POST', ...auth('s3cret-token-for-tests') })).status, 404, 'unknown uplink: 404');
  await agent.stop();
});

t.test('a client outside the allow-list is refused on every route', async (t) => {
  const port = await freePort();
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [] });
  // Bound to loopback, but the allow-list names only another network: loopback clients are outside it.
  a.config.api = { port, allow: ['10.0.0.0/8'] };
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const agent = launchAgent(t, a);
  await waitFor(async () => (await get(port, '/healthz').catch(() => ({ status: 0 }))).status !== 0, 20_000, 'server up');
  for (const p of ['/healthz', '/metrics', '/api/status']) t.equal((await get(port, p)).status, 403, `${p}: 403`);
  await agent.stop();
});

t.test('a non-loopback bind without an allow-list is refused at validation', async (t) => {
  const a = makeAgentDir('mqtt://127.0.0.1:1', { sources: [] });
  a.config.api = { listen: '0.0.0.0', port: 9999 };
  writeFileSync(a.configFile, JSON.stringify(a.config));
  const r = spawnSync(process.execPath, [join(process.cwd(), 'dist/agent/cli/main.js'), 'config', 'validate', a.configFile], { encoding: 'utf8' });
  t.equal(r.status, 78, 'exit 78');
  t.match(r.stderr, /\/api\/allow/, 'names /api/allow');
});
