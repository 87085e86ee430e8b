/**
 * OTLP/gRPC uplink driver: each stored batch becomes one OTLP ExportMetricsServiceRequest to an
 * OpenTelemetry collector (port 4317), sent as exactly one unary gRPC call per send().
 *
 * Data model: model.ts (one stored batch -> one ResourceMetrics, a gauge per point). The
 * batch's idempotency key goes as the gRPC metadata `idempotency-key` of its call.
 *
 * Why not OTLPMetricExporter.export(): in 0.223.x its gRPC path makes a single attempt (the
 * RetryingTransport wraps the HTTP transports only), but it answers with an ExportResult
 * {code, error} alone: a partial success is only written to the OTel diag logger. The driver
 * therefore uses the exporter's own serializer (ProtobufMetricsSerializer from
 * @opentelemetry/otlp-transformer, the code that OTLPMetricExporter runs) and makes the unary
 * call itself with @grpc/grpc-js, which gives it the response (partial success), the status
 * and its trailers (google.rpc.RetryInfo) of every call. Retries are off at every layer:
 * no exporter retry loop, `grpc.enable_retries` 0 (not even grpc-js transparent retries) and
 * no service config from DNS (`grpc.service_config_disable_resolution`), so one send() is one
 * request on the wire and the lane's policy alone decides when to try again.
 *
 * connect() makes a fresh channel and sends an EMPTY ExportMetricsServiceRequest (zero
 * resource_metrics: the collector answers OK without touching a pipeline). That is one real
 * connection attempt through TCP, TLS, HTTP/2 and the collector's auth (which gRPC checks per
 * call, so a ready channel alone would not reveal bad headers). A fresh channel per connect()
 * also drops grpc-js's own reconnect backoff, which could otherwise keep failing calls for up
 * to two minutes after the collector is back. While connected, the driver watches the channel:
 * when it leaves READY (collector gone, connection reset) it reports onDown once.
 */
import { Client, credentials, Metadata, connectivityState, type ChannelCredentials, type ChannelOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { readSmallFile, type FileProblem } from '../files.js';
import type { RawFailure } from '../uplink.js';
import { DriverError } from '../errors.js';
import type { ConnectResult, OutboundMessage, UplinkDriver } from '../uplink.js';
import { GrpcStatus, grpcRawFailure, rawFromGrpcError } from './grpc-status.js';
import { batchToResourceMetrics, type BuiltBatch } from './model.js';

export const OTLP_METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';
export const DEFAULT_OTLP_SEND_WINDOW = 4;
/** gRPC metadata carrying a batch's idempotency key (the IETF Idempotency-Key header's name). */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

export interface OtlpDriverOptions {
  name: string;
  /** The agent's version: the user agent and the instrumentation scope (the driver does not read the package). */
  version?: string;
  /** http://host:4317 (plaintext) or https://host:4317 (TLS). */
  url: string;
  gatewayId: string;
  hardwareProfile: string;
  /** gRPC metadata on every call, e.g. { authorization: 'Bearer ...' }; keys are lower-cased. */
  headers?: Record<string, string>;
  /** TLS (https:// only): CA bundle to trust instead of the system roots, and a client pair for mTLS. */
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  compression: 'none' | 'gzip';
  /** Deadline of each call (send, connect's empty export). */
  timeoutMs: number;
  /** Calls in flight the lane may keep (default 4). */
  sendWindow?: number;
  /**
   * Told of every partial success (after the batch counts as delivered): `rejected` > 0 means
   * the collector refused that many data points; 0 with a message is a warning. Must not throw
   * (a throw is caught and ignored: the batch stays delivered).
   */
  onPartial?: (e: PartialEvent) => void;
  now?: () => number;
}

/** A partial success, with the batch it answered. */
export interface PartialEvent extends PartialSuccess {
  uplink: string;
  taskId: number;
  key: string;
}

/** A collector's partial success: some data points were refused, the rest were accepted. */
export interface PartialSuccess {
  rejected: number;
  message: string;
}

/**
 * SendResult with the OTLP extras. The ok branch is a subtype of uplink.ts's, so the driver
 * still implements UplinkDriver; the lane ignores the extras, and a partial success reaches the
 * agent through the onPartial option instead.
 */
export type OtlpSendResult =
  | { ok: true; requestAt: number; ackAt: number; dataPoints: number; skipped: number; invalid: number; partial?: PartialSuccess }
  | { ok: false; requestAt: number; failure: RawFailure };

export type OtlpExportResult = { ok: true; partial?: PartialSuccess } | { ok: false; failure: RawFailure };

/** The stored batch's readings, parsed. */
export function readingsOf(m: OutboundMessage): unknown {
  return JSON.parse(m.readings.toString('utf8'));
}

function target(url: string): { address: string; tls: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DriverError('CONFIG_INVALID', 'not a URL (want http://host:4317 or https://host:4317)', url);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new DriverError('CONFIG_INVALID', 'the scheme must be http: (plaintext) or https: (TLS)', url);
  }
  // URL keeps IPv6 brackets in hostname ([::1]), which is what a gRPC target wants.
  return { address: `${u.hostname}:${u.port || '4317'}`, tls: u.protocol === 'https:' };
}

type ErrWithCode = Error & { code?: string };

export class OtlpDriver implements UplinkDriver {
  readonly name: string;
  readonly sendWindow: number;
  private readonly address: string;
  private readonly tls: boolean;
  private readonly now: () => number;
  private client: Client | null = null;
  private up = false;
  private downCb: ((f: RawFailure) => void) | null = null;
  private readonly inflight = new Set<ClientUnaryCall>();
  private readonly md: Metadata;
  /** Data points the collector refused in partial successes since start (also per result). */
  rejectedTotal = 0;
  /** Values left out because a gauge cannot carry them (strings, null), since start. */
  skippedTotal = 0;

  constructor(private readonly opts: OtlpDriverOptions) {
    this.name = opts.name;
    this.sendWindow = opts.sendWindow ?? DEFAULT_OTLP_SEND_WINDOW;
    this.now = opts.now ?? Date.now;
    const t = target(opts.url);
    this.address = t.address;
    this.tls = t.tls;
    if (!t.tls && (opts.tlsCaFile || opts.tlsCertFile || opts.tlsKeyFile)) {
      throw new DriverError('CONFIG_INVALID', 'TLS files are set but the URL is http:; use https:', opts.url);
    }
    if (Boolean(opts.tlsCertFile) !== Boolean(opts.tlsKeyFile)) {
      throw new DriverError('CONFIG_INVALID', 'mTLS needs both tlsCertFile and tlsKeyFile', opts.url);
    }
    this.md = new Metadata();
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      try {
        this.md.set(k.toLowerCase(), v);
      } catch (e) {
        throw new DriverError('CONFIG_INVALID', `not a valid gRPC metadata header: ${(e as Error).message}`, k);
      }
    }
  }

  get connected(): boolean {
    return this.up;
  }

  onDown(cb: (f: RawFailure) => void): void {
    this.downCb = cb;
  }

  /** Credentials read at each connect(), so a rotated certificate is picked up on reconnect. */
  private credentials(): { creds: ChannelCredentials } | { problem: FileProblem } {
    if (!this.tls) return { creds: credentials.createInsecure() };
    const files: (Buffer | null)[] = [];
    for (const [f, secret] of [[this.opts.tlsCaFile, false], [this.opts.tlsKeyFile, true], [this.opts.tlsCertFile, false]] as const) {
      if (!f) {
        files.push(null);
        continue;
      }
      const r = readSmallFile(f, { secret });
      if (!r.ok) return { problem: r };
      files.push(r.data);
    }
    return { creds: credentials.createSsl(files[0], files[1], files[2]) };
  }

  private channelOptions(): ChannelOptions {
    return {
      'grpc.default_compression_algorithm': this.opts.compression === 'gzip' ? 2 : 0,
      'grpc.primary_user_agent': `holdfast/${this.opts.version ?? '0.0.0'}`,
      'grpc.enable_retries': 0,
      'grpc.service_config_disable_resolution': 1,
      // An idle channel would go IDLE after 30 min, which the watcher would take for a loss.
      'grpc.client_idle_timeout_ms': 2147483647,
    };
  }

  /** The configured headers, plus the batch's idempotency key on a send (not on connect's empty export). */
  private metadata(idempotencyKey?: string): Metadata {
    const md = this.md.clone();
    if (idempotencyKey !== undefined) md.set(IDEMPOTENCY_KEY_HEADER, idempotencyKey);
    return md;
  }

  async connect(): Promise<ConnectResult> {
    this.drop();
    let creds: ChannelCredentials;
    try {
      const c = this.credentials();
      if ('problem' in c) return { ok: false, failure: { kind: 'file', code: c.problem.code, message: c.problem.message } };
      creds = c.creds;
    } catch (e) {
      const err = e as ErrWithCode;
      return { ok: false, failure: { kind: 'tls', code: err.code, message: `TLS files unreadable: ${err.message}` } };
    }
    let client: Client;
    try {
      client = new Client(this.address, creds, this.channelOptions());
    } catch (e) {
      return { ok: false, failure: { kind: 'socket', message: `cannot create the gRPC channel: ${(e as Error).message}` } };
    }
    this.client = client;
    const r = await this.call(client, Buffer.alloc(0));
    if (this.client !== client) return { ok: false, failure: { kind: 'socket', code: 'ECONNRESET', message: 'closed while connecting' } };
    if (!r.ok) {
      this.drop();
      return r;
    }
    this.up = true;
    this.watch(client);
    return { ok: true };
  }

  /** Reports onDown once when the channel of this connection leaves READY. */
  private watch(client: Client): void {
    const channel = client.getChannel();
    const wait = (state: connectivityState) => {
      try {
        channel.watchConnectivityState(state, Infinity, () => {
          if (this.client !== client || !this.up) return;
          const now = channel.getConnectivityState(false);
          if (now === connectivityState.READY) return wait(now);
          this.up = false;
          this.downCb?.({ kind: 'socket', code: 'ECONNRESET', message: `connection to ${this.opts.url} lost (channel ${connectivityState[now]})` });
        });
      } catch {
        /* channel already shut down */
      }
    };
    wait(channel.getConnectivityState(false));
  }

  private drop(): void {
    const c = this.client;
    this.client = null;
    this.up = false;
    c?.close();
  }

  /** One unary call, one attempt. */
  private call(client: Client, body: Buffer, idempotencyKey?: string): Promise<OtlpExportResult> {
    return new Promise((resolve) => {
      let call: ClientUnaryCall | undefined;
      try {
        call = client.makeUnaryRequest<Buffer, Buffer>(
          OTLP_METRICS_EXPORT_PATH,
          (b) => b,
          (b) => b,
          body,
          this.metadata(idempotencyKey),
          { deadline: Date.now() + this.opts.timeoutMs },
          (err: ServiceError | null, resp?: Buffer) => {
            if (call) this.inflight.delete(call);
            if (err) {
              const bin = err.metadata?.get('grpc-status-details-bin')[0];
              resolve({ ok: false, failure: rawFromGrpcError(err.code, err.details ?? err.message, bin instanceof Uint8Array ? bin : undefined) });
              return;
            }
            resolve({ ok: true, ...partialOf(resp) });
          },
        );
        this.inflight.add(call);
      } catch (e) {
        // A closed channel throws synchronously.
        resolve({ ok: false, failure: grpcRawFailure(GrpcStatus.UNAVAILABLE, `call not started: ${(e as Error).message}`) });
      }
    });
  }

  async send(msg: OutboundMessage): Promise<OtlpSendResult> {
    const requestAt = this.now();
    let built: BuiltBatch;
    try {
      built = batchToResourceMetrics(readingsOf(msg), {
        gatewayId: this.opts.gatewayId,
        hardwareProfile: this.opts.hardwareProfile,
        version: this.opts.version,
      });
    } catch (e) {
      return { ok: false, requestAt, failure: { kind: 'unreadable', message: `batch not sent, unreadable: ${(e as Error).message}` } };
    }
    this.skippedTotal += built.skipped;
    const extras = { dataPoints: built.dataPoints, skipped: built.skipped, invalid: built.invalid };
    if (built.dataPoints === 0) return { ok: true, requestAt, ackAt: this.now(), ...extras };
    const client = this.client;
    if (!client) return { ok: false, requestAt, failure: grpcRawFailure(GrpcStatus.UNAVAILABLE, 'not connected') };
    const r = await this.call(client, Buffer.from(ProtobufMetricsSerializer.serializeRequest(built.resourceMetrics) ?? new Uint8Array(0)), msg.key);
    if (!r.ok) return { ok: false, requestAt, failure: r.failure };
    if (r.partial) {
      this.rejectedTotal += r.partial.rejected;
      try {
        this.opts.onPartial?.({ uplink: this.name, taskId: msg.taskId, key: msg.key, ...r.partial });
      } catch {
        /* a hook's failure must not turn a delivered batch into a failed send */
      }
    }
    return { ok: true, requestAt, ackAt: this.now(), ...extras, ...(r.partial ? { partial: r.partial } : {}) };
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.up = false;
    for (const call of [...this.inflight]) call.cancel();
    this.inflight.clear();
    c?.close();
  }
}

/** ExportMetricsServiceResponse -> partial success, if the collector reported one. */
function partialOf(resp: Buffer | undefined): { partial?: PartialSuccess } {
  if (!resp || resp.length === 0) return {};
  let ps: { rejectedDataPoints?: number | string; errorMessage?: string } | undefined;
  try {
    ps = ProtobufMetricsSerializer.deserializeResponse(resp).partialSuccess as typeof ps;
  } catch {
    return {}; // an unreadable response to an OK status is still an OK
  }
  const rejected = Number(ps?.rejectedDataPoints ?? 0);
  const message = ps?.errorMessage ?? '';
  // Spec: rejected > 0 is a partial success; 0 with a message is a warning. Neither is retried.
  if (rejected > 0 || message) return { partial: { rejected, message } };
  return {};
}
