/**
 * A real OTLP/gRPC metrics collector for tests: @grpc/grpc-js serving
 * opentelemetry.proto.collector.metrics.v1.MetricsService/Export from the .proto files in
 * test/fixtures/otlp (field numbers of opentelemetry-proto v1), on loopback only.
 *
 * Every request is recorded decoded (snake_case field names as in the .proto, 64-bit integers
 * as decimal strings so nanosecond timestamps stay exact) with its metadata. Answers are
 * scripted: queue them with answer(); when the queue is empty the server says OK. It can go
 * down (forceShutdown) and come back on the same port.
 */
import { Metadata, Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition, type PackageDefinition } from '@grpc/proto-loader';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/helpers/). */
const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const OTLP_PROTO_DIR = join(ROOT, 'test/fixtures/otlp');

/** What the server answers to one request. */
export type Answer =
  | { kind: 'ok' }
  | { kind: 'partial'; rejected: number; message: string }
  | { kind: 'status'; code: number; message: string; retryDelayMs?: number }
  /** Answers OK only after ms (a deadline shorter than that fails the call). */
  | { kind: 'delay'; ms: number };

export interface KeyValue { key: string; value: AnyValue }
export interface AnyValue { string_value?: string; bool_value?: boolean; int_value?: string; double_value?: number; value?: string }
export interface NumberDataPoint {
  attributes: KeyValue[];
  start_time_unix_nano: string;
  time_unix_nano: string;
  as_double?: number;
  as_int?: string;
  value?: 'as_double' | 'as_int';
}
export interface HistogramDataPoint {
  attributes: KeyValue[];
  start_time_unix_nano: string;
  time_unix_nano: string;
  count: string;
  sum?: number;
  bucket_counts: string[];
  explicit_bounds: number[];
}
/** `data` names the oneof member that is set: 'gauge', 'sum' or 'histogram' (enums as their names). */
export interface Metric {
  name: string;
  description: string;
  unit: string;
  data?: string;
  gauge?: { data_points: NumberDataPoint[] };
  sum?: { data_points: NumberDataPoint[]; aggregation_temporality: string; is_monotonic: boolean };
  histogram?: { data_points: HistogramDataPoint[]; aggregation_temporality: string };
}
export interface ResourceMetrics {
  resource: { attributes: KeyValue[] };
  scope_metrics: { scope: { name: string; version: string }; metrics: Metric[] }[];
}
export interface ExportRequest { resource_metrics: ResourceMetrics[] }

export interface Recorded {
  at: number;
  request: ExportRequest;
  metadata: Record<string, string>;
  answer: Answer;
}

/** Plain attribute values of a KeyValue list, e.g. { device: 'inv', point: 'W' }. */
export function attrs(kvs: KeyValue[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of kvs) {
    switch (value.value) {
      case 'string_value': out[key] = value.string_value!; break;
      case 'bool_value': out[key] = value.bool_value!; break;
      case 'int_value': out[key] = Number(value.int_value); break;
      case 'double_value': out[key] = value.double_value!; break;
      default: break;
    }
  }
  return out;
}

let pkgCache: PackageDefinition | null = null;
function pkg(): PackageDefinition {
  pkgCache ??= loadSync(
    ['opentelemetry/proto/collector/metrics/v1/metrics_service.proto', 'holdfast_test.proto'],
    { includeDirs: [OTLP_PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  );
  return pkgCache;
}

function codec(): MethodDefinition<object, object> {
  return (pkg()['holdfast.test.StatusCodec'] as Record<string, MethodDefinition<object, object>>).Encode;
}

/** A serialized google.rpc.Status with one google.rpc.RetryInfo detail (grpc-status-details-bin). */
export function statusDetailsBin(code: number, message: string, retryDelayMs?: number): Buffer {
  const c = codec();
  const details = retryDelayMs === undefined ? [] : [{
    type_url: 'type.googleapis.com/google.rpc.RetryInfo',
    value: c.responseSerialize({ retry_delay: { seconds: String(Math.floor(retryDelayMs / 1000)), nanos: (retryDelayMs % 1000) * 1e6 } }),
  }];
  return c.requestSerialize({ code, message, details });
}

/** The ExportMetricsServiceResponse bytes' object form for a partial success. */
function partialResponse(rejected: number, message: string): object {
  return { partial_success: { rejected_data_points: String(rejected), error_message: message } };
}

export class OtlpTestServer {
  readonly requests: Recorded[] = [];
  private readonly queue: Answer[] = [];
  private server: Server | null = null;
  private port = 0;

  private constructor(private readonly tls?: { cert: Buffer; key: Buffer }) {}

  /** Starts on 127.0.0.1 (port 0: any free one). */
  static async start(opts: { port?: number; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<OtlpTestServer> {
    const s = new OtlpTestServer(opts.tls);
    await s.listen(opts.port ?? 0);
    return s;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  /** Requests that carried data (connect()'s empty export excluded). */
  get exports(): Recorded[] {
    return this.requests.filter((r) => r.request.resource_metrics.length > 0);
  }

  /** Queues answers for the next requests, in order. */
  answer(...a: Answer[]): void {
    this.queue.push(...a);
  }

  private async listen(port: number): Promise<void> {
    const server = new Server();
    const def = pkg()['opentelemetry.proto.collector.metrics.v1.MetricsService'] as ServiceDefinition;
    const impl: UntypedServiceImplementation = {
      Export: (call: ServerUnaryCall<ExportRequest, object>, cb: sendUnaryData<object>) => this.handle(call, cb),
    };
    server.addService(def, impl);
    const creds = this.tls
      ? ServerCredentials.createSsl(null, [{ private_key: this.tls.key, cert_chain: this.tls.cert }], false)
      : ServerCredentials.createInsecure();
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
  }

  private handle(call: ServerUnaryCall<ExportRequest, object>, cb: sendUnaryData<object>): void {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
    const empty = call.request.resource_metrics.length === 0;
    // connect()'s empty export is always answered OK and does not use up a scripted answer.
    const answer: Answer = empty ? { kind: 'ok' } : (this.queue.shift() ?? { kind: 'ok' });
    this.requests.push({ at: Date.now(), request: call.request, metadata, answer });
    switch (answer.kind) {
      case 'ok':
        return cb(null, {});
      case 'partial':
        return cb(null, partialResponse(answer.rejected, answer.message));
      case 'delay': {
        setTimeout(() => cb(null, {}), answer.ms).unref();
        return;
      }
      case 'status': {
        const md = new Metadata();
        if (answer.retryDelayMs !== undefined) md.set('grpc-status-details-bin', statusDetailsBin(answer.code, answer.message, answer.retryDelayMs));
        return cb({ code: answer.code, details: answer.message, metadata: md }, null);
      }
    }
  }

  /** Goes down hard: connections are cut, the port is released. */
  stop(): void {
    this.server?.forceShutdown();
    this.server = null;
  }

  /** Comes back on the same port. */
  async restart(): Promise<void> {
    if (this.server) return;
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    this.stop();
  }
}
