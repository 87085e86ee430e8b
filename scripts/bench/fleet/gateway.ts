/**
 * One simulated gateway: the agent's real Engine (store, ingest, lane, MQTT driver) on a config
 * of its own (data folder, gateway id, client id), with a simulated meter as its field side.
 * Several of them share one process (scripts/bench/fleet/worker.ts, the fleet test).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { buildConfig } from '../../../agent/config/load.js';
import { configSchema } from '../../../agent/config/schema.js';
import { Engine } from '../../../agent/engine.js';

export interface GatewaySpec {
  id: string;
  /** The gateway's own folder (data, spool). */
  dir: string;
  brokerUrl: string;
  keyFile: string;
  /** Merged into the uplink config (scripts/bench/fleet/strategies.ts). */
  uplink: Record<string, unknown>;
  /** One batch per this many ms (the live rate). */
  batchMs: number;
  /** A fake sysfs root (fakeSysfs): a cool CPU, no throttling. */
  sysfsRoot: string;
}

/**
 * A sysfs tree under `dir` with one thermal zone at 45 C. Without a readable zone every engine
 * would ask systeminformation at start, which spawns commands: 70 ms a gateway, the fleet's
 * connect time, not the agent's.
 */
export function fakeSysfs(dir: string): string {
  const zone = path.join(dir, 'sys', 'class', 'thermal', 'thermal_zone0');
  mkdirSync(zone, { recursive: true });
  writeFileSync(path.join(zone, 'temp'), '45000\n');
  return dir;
}

const silent = pino({ level: 'silent' });

export function gatewayConfig(g: GatewaySpec): Record<string, unknown> {
  const raw: Record<string, unknown> = {
    gatewayId: g.id,
    dataDir: path.join(g.dir, 'data'),
    spoolDir: path.join(g.dir, 'cache'),
    // Polled four times a batch; a batch is sealed at the first commit tick (200 ms) past maxAgeMs.
    sources: [{ type: 'simulated', device: 'meter', intervalMs: Math.max(1, Math.round(g.batchMs / 4)), points: 5 }],
    batch: { maxReadings: 10_000, maxAgeMs: Math.max(1, g.batchMs - 200) },
    api: { enabled: false },
    hardware: { sysfsRoot: g.sysfsRoot },
    store: { keyFile: g.keyFile },
    uplinks: [{ name: 'up', type: 'mqtt', url: g.brokerUrl, ...g.uplink }],
  };
  // The technician console (when this tree has one) is not part of the uplink path.
  if ('console' in configSchema.properties) raw.console = { enabled: false };
  return raw;
}

export function buildGateway(g: GatewaySpec): Engine {
  mkdirSync(g.dir, { recursive: true });
  // env {}: RETRY_STRATEGY of the shell must not override the strategy under test.
  return new Engine(buildConfig(gatewayConfig(g), { env: {} }, g.id), silent);
}

/** Pending tasks committed up to `maxId` (the backlog at the restore) of one gateway. */
export function pendingUpTo(e: Engine, maxId: number): number {
  return e.store.db.prepare(`SELECT count(*) FROM recovery_tasks WHERE status = 'pending' AND id <= ?`).pluck().get(maxId) as number;
}

export function maxTaskId(e: Engine): number {
  return (e.store.db.prepare('SELECT coalesce(max(id), 0) FROM recovery_tasks').pluck().get() as number) ?? 0;
}

export function statusCounts(e: Engine): Record<string, number> {
  const rows = e.store.db.prepare('SELECT status, count(*) AS n FROM recovery_tasks GROUP BY status').all() as { status: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export function deliveredKeys(e: Engine): string[] {
  return e.store.db.prepare(`SELECT idempotency_key FROM recovery_tasks WHERE status = 'delivered'`).pluck().all() as string[];
}
