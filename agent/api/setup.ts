/**
 * Sets up the metrics and the HTTP server for a running engine: where each metric comes from, what
 * the admin routes do, and when the gateway is ready.
 */
import { readFileSync } from 'node:fs';
import { registerSecret } from '../../drivers/redact.js';
import type { Engine } from '../engine.js';
import type { Config } from '../config/types.js';
import type { Guard } from '../guard.js';
import type { StoreAdmin } from '../../store/admin.js';
import type { LaneSnapshot } from '../forward/lane-deps.js';
import type { StorageStatus } from '../storage/storage.js';
import type { StoreState } from '../storage/keeper.js';
import type { Verdict } from '../policy/faults.js';
import { ApiServer } from './server.js';
import { Metrics, type DepthRow } from './metrics.js';
import type { SelfMetricsExport } from './self-export.js';
import { otlpHeaders } from '../uplinks.js';

const DEPTH_TTL_MS = 5000;

/** What the metrics and the local API read and do: a view of the running gateway, not the engine. */
export interface GatewayView {
  /** The admin queries of the store in use (a stand-in in memory while it is unavailable). */
  store(): StoreAdmin;
  storeState(): StoreState;
  storage(): StorageStatus;
  lanes(): readonly { readonly name: string; snapshot(): LaneSnapshot; resetBreaker(): void }[];
  fieldFaults(): readonly Verdict[];
  busVolts(): { bus: string; volts: number | null }[];
  thermal(): { tempC: number | null; factor: number };
  /** Re-admits reset tasks at once (the engine's sweep). */
  sweep(): void;
}

export function createMetrics(view: GatewayView): Metrics {
  // Depth is a GROUP BY over recovery_tasks: cached for a few seconds so a tight scrape loop
  // cannot turn into a table scan loop on a gateway with a million buffered batches.
  let depth: { at: number; rows: DepthRow[] } = { at: -Infinity, rows: [] };
  return new Metrics({
    depth() {
      // Monotonic: a wall clock stepped back must not freeze the cache.
      const now = performance.now();
      if (now - depth.at > DEPTH_TTL_MS) depth = { at: now, rows: view.store().depth() };
      return depth.rows;
    },
    breakers: () => view.lanes().map((l) => ({ uplink: l.name, state: l.snapshot().breaker })),
    cpuTempC: () => view.thermal().tempC,
    throttleFactor: () => view.thermal().factor,
    busVolts: () => view.busVolts(),
  });
}

export function createApi(cfg: Config, metrics: Metrics, view: GatewayView, guard: Guard): ApiServer {
  const a = cfg.api;
  const token = a.tokenFile ? readFileSync(a.tokenFile, 'utf8').trim() : null;
  if (token) registerSecret(token);
  const limits = { maxConnections: a.maxConnections, headersTimeoutMs: a.headersTimeoutMs, idleTimeoutMs: a.idleTimeoutMs };
  return new ApiServer({ listen: a.listen, port: a.port, allow: a.allow, token, limits }, metrics, {
    status: () => ({
      ...view.store().status(Date.now(), cfg.uplinks.map((u) => u.name)),
      lanes: view.lanes().map((l) => l.snapshot()),
      fieldFaults: view.fieldFaults(),
      cpuTempC: view.thermal().tempC,
      throttleFactor: view.thermal().factor,
      storage: view.storage(),
    }),
    ready: () => {
      if (view.lanes().length === 0) return { ok: false, why: 'no uplink configured' };
      const st = view.storeState();
      if (!st.available) return { ok: false, why: `STORE_UNAVAILABLE: ${st.failure ? `${st.failure.kind} (${st.failure.errno})` : 'importing the spool'}; batches go to the spool` };
      // Takes (and releases) the write lock: fails when the disk is read-only or the file is locked.
      const why = view.store().notWritable();
      return why === null ? { ok: true } : { ok: false, why: `store not writable: ${why}` };
    },
    resetBreaker: (uplink) => {
      const lane = view.lanes().find((l) => l.name === uplink);
      lane?.resetBreaker();
      return lane !== undefined;
    },
    resetRetries: (uplink) => {
      const n = view.store().retryReset(uplink);
      view.sweep();
      return n;
    },
  }, guard);
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
