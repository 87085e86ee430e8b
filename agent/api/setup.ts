/**
 * Sets up the metrics and the HTTP server for a running engine: where each metric comes from, what
 * the admin routes do, and when the gateway is ready.
 */
import { readFileSync } from 'node:fs';
import type { Engine } from '../engine.js';
import { retryReset, storeStatus } from '../../store/admin.js';
import { ApiServer } from './server.js';
import { Metrics, type DepthRow } from './metrics.js';
import type { SelfMetricsExport } from './self-export.js';
import { otlpHeaders } from '../uplinks.js';

const DEPTH_TTL_MS = 5000;

export function createMetrics(engine: Engine): Metrics {
  // Depth is a GROUP BY over recovery_tasks: cached for a few seconds so a tight scrape loop
  // cannot turn into a table scan loop on a gateway with a million buffered batches.
  let depth: { at: number; rows: DepthRow[] } = { at: -Infinity, rows: [] };
  return new Metrics({
    depth() {
      // Monotonic: a wall clock stepped back must not freeze the cache.
      const now = performance.now();
      if (now - depth.at > DEPTH_TTL_MS) {
        const rows = engine.db
          .prepare('SELECT uplink, status, count(*) AS tasks, coalesce(sum(reading_count), 0) AS readings FROM recovery_tasks GROUP BY uplink, status')
          .all() as DepthRow[];
        depth = { at: now, rows };
      }
      return depth.rows;
    },
    breakers: () => engine.lanes.map((l) => ({ uplink: l.name, state: l.snapshot().breaker })),
    cpuTempC: () => engine.thermal.tempC,
    throttleFactor: () => engine.thermal.factor,
    busVolts: () => engine.field?.busVolts() ?? [],
  });
}

export function createApi(engine: Engine): ApiServer {
  const a = engine.cfg.api;
  const token = a.tokenFile ? readFileSync(a.tokenFile, 'utf8').trim() : null;
  return new ApiServer({ listen: a.listen, port: a.port, allow: a.allow, token }, engine.metrics, {
    status: () => ({
      ...storeStatus(engine.db, Date.now(), engine.cfg.uplinks.map((u) => u.name)),
      lanes: engine.lanes.map((l) => l.snapshot()),
      fieldFaults: engine.field?.faults() ?? [],
      cpuTempC: engine.thermal.tempC,
      throttleFactor: engine.thermal.factor,
      storage: engine.storage.status(),
    }),
    ready: () => {
      if (engine.lanes.length === 0) return { ok: false, why: 'no uplink configured' };
      const st = engine.storage.keeper.state();
      if (!st.available) return { ok: false, why: `STORE_UNAVAILABLE: ${st.failure ? `${st.failure.kind} (${st.failure.errno})` : 'importing the spool'}; batches go to the spool` };
      try {
        // Takes (and releases) the write lock: fails when the disk is read-only or the file is locked.
        engine.db.exec('BEGIN IMMEDIATE; ROLLBACK');
        return { ok: true };
      } catch (e) {
        return { ok: false, why: `store not writable: ${(e as Error).message}` };
      }
    },
    resetBreaker: (uplink) => {
      const lane = engine.lanes.find((l) => l.name === uplink);
      lane?.resetBreaker();
      return lane !== undefined;
    },
    resetRetries: (uplink) => {
      const n = retryReset(engine.db, uplink);
      engine.sweep();
      return n;
    },
  }, engine.guard);
}

/**
 * The agent's own metrics over OTLP, when `selfMetrics` is configured (load.ts checked that it
 * names an otlp uplink; a disabled one is fine). Null when off, or when the uplink's TLS or
 * headers files cannot be read now: then it is logged and the agent runs without it.
 */
/**
 * The OTLP export of the agent's own metrics, when `selfMetrics` asks for it. The exporter and its
 * gRPC stack are loaded only then: a gateway without it does not carry them in memory.
 */
export async function createSelfExport(engine: Engine): Promise<SelfMetricsExport | null> {
  const c = engine.cfg.selfMetrics;
  if (!c) return null;
  const u = engine.cfg.uplinks.find((x) => x.name === c.uplink);
  if (u?.type !== 'otlp') return null;
  try {
    const { SelfMetricsExport, exporterFor, selfResource } = await import('./self-export.js');
    return new SelfMetricsExport({
      cfg: c,
      metrics: engine.metrics,
      resource: selfResource(engine.cfg.gatewayId, engine.cfg.hardware.profile),
      exporter: exporterFor(u, otlpHeaders(u), c.timeoutMs),
      log: engine.log,
      guard: engine.guard,
    });
  } catch (e) {
    engine.log.error({ err: e, uplink: u.name }, `self-metrics export not started: ${(e as Error).message}`);
    return null;
  }
}
