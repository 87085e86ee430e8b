/**
 * The agent's own metrics over OTLP/gRPC (config `selfMetrics`): every interval, the Prometheus
 * registry is converted (agent/api/otlp-metrics.ts) and handed to
 * @opentelemetry/exporter-metrics-otlp-grpc's OTLPMetricExporter.export(), aimed at the named
 * otlp uplink's collector with that uplink's url, TLS files, headers and compression.
 *
 * These are not readings: nothing is stored, nothing is retried. The next interval sends fresh
 * cumulative values anyway, so a lost export loses resolution, never a count. A failure is
 * counted (holdfast_self_metrics_exports_total{result="failed"} and
 * holdfast_self_metrics_export_failures_total{code}, the code from the same classification as
 * the lanes': ECONNREFUSED, GRPC_UNAVAILABLE, TLS_CERT_INVALID...) and logged at most once per
 * FAIL_LOG_MS per code, and once when exports succeed again.
 *
 * Timing: thousands of gateways share the config, so no two should export in step. The first
 * export comes at a random point of the first interval (a fleet restarted together spreads over
 * a whole interval), and every interval is intervalMs +- jitter. Fixed rate: a tick that finds
 * the previous export still in flight (a slow collector) is skipped and counted; at most one
 * export is ever in flight (and the exporter's own concurrency limit is 1).
 *
 * The exporter keeps one channel for the life of the agent (grpc-js reconnects it); its TLS
 * files are read once, at start.
 */
import { credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import type { Resource } from '@opentelemetry/resources';
import { gatewayResource } from '../../drivers/otlp/model.js';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { DeepReadonly, OtlpUplinkConfig, SelfMetricsConfig } from '../config/types.js';
import { classify, type RawFailure } from '../policy/classify.js';
import { LogLimiter } from '../log-limit.js';
import { VERSION } from '../version.js';
import { rawFromGrpcError } from '../../drivers/otlp/grpc-status.js';
import type { Metrics } from './metrics.js';
import { registryToResourceMetrics } from './otlp-metrics.js';
import { safeTimeout, type SafeTimer } from '../../drivers/timer.js';
import { Guard } from '../guard.js';

/** A self-metrics endpoint that stays down is logged this often per error code. */
export const FAIL_LOG_MS = 15 * 60_000;
/** How long stop() waits for an export in flight. */
const STOP_WAIT_MS = 500;

type ExporterOptions = NonNullable<ConstructorParameters<typeof OTLPMetricExporter>[0]>;
type ExportResult = Parameters<Parameters<OTLPMetricExporter['export']>[1]>[0];
/** ExportResultCode.SUCCESS of @opentelemetry/core (not a direct dependency). */
const EXPORT_SUCCESS = 0;
const EXPORT_FAILED = 1;

export type ExportOutcome = { result: 'ok' } | { result: 'skipped' } | { result: 'failed'; code: string; message: string };

/** The resource of the agent's own metrics: the gateway, as on its readings (one target per gateway). */
export function selfResource(gatewayId: string, hardwareProfile: string): Resource {
  return gatewayResource(gatewayId, hardwareProfile, VERSION);
}

/** An OTLPMetricExporter for an otlp uplink's collector, with its TLS, headers and compression. */
export function exporterFor(u: DeepReadonly<OtlpUplinkConfig>, headers: Readonly<Record<string, string>> | undefined, timeoutMs: number): OTLPMetricExporter {
  const read = (f?: string) => (f ? readFileSync(f) : null);
  const creds: ChannelCredentials = u.url.startsWith('https:')
    ? credentials.createSsl(read(u.tlsCaFile), read(u.tlsKeyFile), read(u.tlsCertFile))
    : credentials.createInsecure();
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(headers ?? {})) metadata.set(k.toLowerCase(), v);
  return new OTLPMetricExporter({
    url: u.url,
    credentials: creds,
    metadata,
    compression: u.compression as ExporterOptions['compression'],
    timeoutMillis: timeoutMs,
    concurrencyLimit: 1,
    userAgent: `holdfast/${VERSION}`,
  });
}

/** What a failed export said, as a RawFailure (a gRPC ServiceError carries a numeric code). */
function rawOf(error: unknown): RawFailure {
  const e = error as { code?: unknown; details?: unknown; message?: unknown } | undefined;
  if (e && typeof e.code === 'number') return rawFromGrpcError(e.code, String(e.details ?? e.message ?? ''));
  return { kind: 'socket', message: String(e?.message ?? error) };
}

export interface SelfExportOptions {
  cfg: DeepReadonly<SelfMetricsConfig>;
  metrics: Metrics;
  resource: Resource;
  exporter: OTLPMetricExporter;
  log: Logger;
  rand?: () => number;
  /** Owns the export timer (default: one that only logs). */
  guard?: Guard;
}

export class SelfMetricsExport {
  private timer: SafeTimer | null = null;
  private inflight: Promise<ExportOutcome> | null = null;
  private stopped = false;
  /** Failed exports since the last success (for the "recovered" line). */
  private failing = 0;
  private readonly failLog = new LogLimiter(FAIL_LOG_MS);
  private readonly rand: () => number;
  private readonly guard: Guard;

  constructor(private readonly opts: SelfExportOptions) {
    this.rand = opts.rand ?? Math.random;
    this.guard = opts.guard ?? new Guard({ log: opts.log });
  }

  start(): void {
    this.schedule(Math.floor(this.rand() * this.opts.cfg.intervalMs));
  }

  /** The next interval: intervalMs +- jitter. */
  private interval(): number {
    const c = this.opts.cfg;
    return Math.max(1, Math.round(c.intervalMs * (1 + c.jitter * (2 * this.rand() - 1))));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = safeTimeout(() => {
      this.schedule(this.interval());
      void this.guard.runAsync('metrics.export', () => this.exportNow());
    }, ms).unref();
  }

  /** One export now (skipped while one is in flight). Never throws. */
  exportNow(): Promise<ExportOutcome> {
    if (this.inflight) {
      this.opts.metrics.selfExports.inc({ result: 'skipped' });
      return Promise.resolve({ result: 'skipped' });
    }
    const p = this.once().then((r) => this.account(r));
    this.inflight = p;
    p.finally(() => {
      if (this.inflight === p) this.inflight = null;
    }).catch(() => undefined); // the caller sees the rejection through p
    return p;
  }

  private async once(): Promise<ExportOutcome> {
    let rm;
    try {
      rm = (await registryToResourceMetrics(this.opts.metrics.registry, this.opts.resource, this.opts.metrics.startedAt)).resourceMetrics;
    } catch (e) {
      // The only collect callback that can throw reads the store (buffer depth).
      return { result: 'failed', code: 'STORE_UNAVAILABLE', message: `metrics not collected: ${(e as Error).message}` };
    }
    const r = await new Promise<ExportResult>((resolve) => {
      try {
        this.opts.exporter.export(rm, resolve);
      } catch (e) {
        resolve({ code: EXPORT_FAILED, error: e as Error });
      }
    });
    if (r.code === EXPORT_SUCCESS) return { result: 'ok' };
    const raw = rawOf(r.error);
    return { result: 'failed', code: classify(raw).code, message: raw.message };
  }

  private account(r: ExportOutcome): ExportOutcome {
    const m = this.opts.metrics;
    m.selfExports.inc({ result: r.result });
    if (r.result === 'ok') {
      if (this.failing > 0) this.opts.log.info({ failedExports: this.failing }, 'self-metrics export works again');
      this.failing = 0;
    } else if (r.result === 'failed') {
      this.failing++;
      m.selfExportFailures.inc({ code: r.code });
      const l = this.failLog.take(r.code);
      if (l.log) this.opts.log.warn({ code: r.code, suppressedSinceLast: l.suppressed }, `self-metrics export failed (not retried; the next interval sends fresh values): ${r.message}`);
    }
    return r;
  }

  /**
   * Stops the timer and closes the exporter. An export in flight gets at most STOP_WAIT_MS: the
   * agent's last group commit comes after this, within pm2's kill_timeout, and is worth more
   * than one sample of its metrics (the exporter closes its channel once the call is over).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.clear();
    let wait: NodeJS.Timeout | undefined;
    await Promise.race([this.inflight, new Promise<void>((r) => (wait = setTimeout(r, STOP_WAIT_MS)))]);
    clearTimeout(wait);
    void this.opts.exporter.shutdown().catch(() => undefined);
  }
}
