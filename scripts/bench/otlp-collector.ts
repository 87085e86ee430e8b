/**
 * A lean OTLP/gRPC metrics collector for the OTLP bench (scripts/bench/otlp.ts): @grpc/grpc-js
 * serving MetricsService/Export on 127.0.0.1, acknowledging every request with an empty
 * ExportMetricsServiceResponse (an OK without partial success). It does not decode the
 * request: decoding is a real collector's cost, not the sender's, and the same for both senders
 * the bench compares. It is the lean cousin of test/helpers/otlp-server.ts (no .proto files, no
 * recording, no scripted answers) and runs as a child process, so its CPU is not charged to the
 * sender being measured.
 *
 * Line protocol on stdio: prints {"port": N} once listening; reads "stats" (answers
 * {"requests", "empty", "bytes"}: requests with a body, empty ones (connect probes), body bytes
 * after gRPC decompression) and "reset" (zeroes the counts, answers {"ok": true}).
 *
 *   node dist/scripts/bench/otlp-collector.js
 */
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { createInterface } from 'node:readline';
import { OTLP_METRICS_EXPORT_PATH } from '../../drivers/otlp/client.js';

const stats = { requests: 0, empty: 0, bytes: 0 };
const EMPTY = Buffer.alloc(0);

const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
server.register<Buffer, Buffer>(
  OTLP_METRICS_EXPORT_PATH,
  (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
    if (call.request.length === 0) stats.empty++;
    else {
      stats.requests++;
      stats.bytes += call.request.length;
    }
    cb(null, EMPTY);
  },
  (b: Buffer) => b,
  (b: Buffer) => b,
  'unary',
);

server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`bind failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'stats') process.stdout.write(`${JSON.stringify(stats)}\n`);
  else if (cmd === 'reset') {
    stats.requests = 0;
    stats.empty = 0;
    stats.bytes = 0;
    process.stdout.write('{"ok":true}\n');
  }
});
process.stdin.on('end', () => server.forceShutdown());
