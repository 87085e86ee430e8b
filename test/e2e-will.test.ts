/**
 * The last will after a kill -9: the broker publishes the agent's will, and it carries no `ts`
 * (that moment cannot be stamped at CONNECT, when the will is handed over) but the time the
 * connection came up, so a subscriber never sees "offline" stamped in the past as if it were now.
 */
import t from 'tap';
import { startBroker, waitFor } from './helpers/mosquitto.js';
import { subscribe } from './helpers/mqtt-sub.js';
import { launchAgent, makeAgentDir } from './helpers/agent.js';

t.test('kill -9: the will says offline, since when the connection was up, and no time of its own', async (t) => {
  const broker = await startBroker();
  t.teardown(() => broker.kill());
  const rec = await subscribe(broker.url, 'holdfast/gw-test/status');
  t.teardown(() => rec.close());
  const a = makeAgentDir(broker.url);
  const agent = launchAgent(t, a);
  const states = () => rec.messages.map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);
  await waitFor(() => states().some((s) => s.state === 'online'), 30_000, 'the birth message');
  const online = states().find((s) => s.state === 'online')!;
  await new Promise((r) => setTimeout(r, 1500));
  const killedAt = Date.now();
  await agent.kill9();
  await waitFor(() => states().some((s) => s.state === 'offline'), 30_000, 'the will');
  const will = states().find((s) => s.state === 'offline')!;
  t.match(will, { state: 'offline', gatewayId: 'gw-test', will: true }, 'the broker published the will');
  t.notOk('ts' in will, 'no ts: the will cannot know when the agent died');
  t.type(will.connectedAt, 'number');
  t.ok(Math.abs((will.connectedAt as number) - (online.ts as number)) < 1000, 'connectedAt is the connect time (the birth message\'s ts)');
  t.ok((will.connectedAt as number) < killedAt - 1000, 'and is the past, said as such');
  const retained = await subscribe(broker.url, 'holdfast/gw-test/status');
  t.teardown(() => retained.close());
  await waitFor(() => retained.messages.some((m) => m.retain), 10_000, 'the retained status');
  t.match(JSON.parse(retained.messages.find((m) => m.retain)!.payload.toString()), { state: 'offline', will: true }, 'a late subscriber gets the will as the retained status');
});
