/**
 * A worker process of the fleet bench: hosts many gateways (real Engines) on one event loop and
 * answers the coordinator (scripts/bench/fleet/fleet.ts) over the IPC channel:
 *   start {specs, pinRandom}  -> started          builds and starts every gateway
 *   status {mark?}            -> status           connected gateways, backlog left (pending tasks
 *                                                 up to the ids marked at the restore), loop lag
 *   finish                    -> finished         sources stopped, the live tail delivered (<= 30 s),
 *                                                 counts by status and delivered keys, engines stopped
 * The event loop's delay (perf_hooks) is what sharing a process costs a gateway: its timers fire late.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Engine } from '../../../agent/engine.js';
import { buildGateway, deliveredKeys, maxTaskId, pendingUpTo, statusCounts, type GatewaySpec } from './gateway.js';
import { ALMOST_ONE } from '../../../test/helpers/rand.js';

export type ToWorker = { type: 'start'; specs: GatewaySpec[]; pinRandom: boolean } | { type: 'status'; mark?: boolean } | { type: 'finish' };
export type FromWorker =
  | { type: 'started' }
  | { type: 'status'; connected: number; backlog: number; lagP99Ms: number; lagMaxMs: number }
  | { type: 'finished'; counts: Record<string, number>; keys: string[]; leftPending: number };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const engines: Engine[] = [];
let marks: number[] = [];
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

function send(m: FromWorker): void {
  process.send?.(m);
}

function status(): FromWorker {
  let connected = 0;
  let backlog = 0;
  engines.forEach((e, i) => {
    if (e.lanes[0]?.snapshot().connected) connected++;
    if (marks.length > 0) backlog += pendingUpTo(e, marks[i]);
  });
  return { type: 'status', connected, backlog, lagP99Ms: lag.percentile(99) / 1e6, lagMaxMs: lag.max / 1e6 };
}

async function finish(): Promise<void> {
  for (const e of engines) for (const s of e.sources) s.stop();
  // Let the last batches commit, then wait for the live tail to be delivered.
  await sleep(2000);
  const pending = () => engines.reduce((n, e) => n + (statusCounts(e).pending ?? 0), 0);
  for (let i = 0; i < 60 && pending() > 0; i++) await sleep(500);
  const counts: Record<string, number> = {};
  const keys: string[] = [];
  for (const e of engines) {
    for (const [k, v] of Object.entries(statusCounts(e))) counts[k] = (counts[k] ?? 0) + v;
    keys.push(...deliveredKeys(e));
  }
  const leftPending = pending();
  await Promise.all(engines.map((e) => e.stop(5000)));
  // Exit only once the message is written: a large one (every delivered key) is still in the pipe
  // 100 ms later when the coordinator is busy, and exiting then loses it.
  process.send?.({ type: 'finished', counts, keys, leftPending } satisfies FromWorker, undefined, {}, () => process.exit(0));
}

process.on('message', (m: ToWorker) => {
  if (m.type === 'start') {
    if (m.pinRandom) Math.random = () => ALMOST_ONE;
    for (const spec of m.specs) engines.push(buildGateway(spec));
    void Promise.all(engines.map((e) => e.start())).then(() => send({ type: 'started' }));
  } else if (m.type === 'status') {
    if (m.mark) {
      marks = engines.map((e) => maxTaskId(e));
      lag.reset();
    }
    send(status());
  } else void finish();
});
process.on('disconnect', () => process.exit(0));
