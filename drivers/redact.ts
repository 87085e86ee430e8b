/**
 * Secrets the process has read (an MQTT password, an OTLP token) never reach stdout or stderr,
 * whoever writes there: a library's debug trace (`DEBUG=mqttjs*` prints the connect options,
 * password included; `GRPC_TRACE`) goes to stderr, which pm2 and journald keep in files. Every
 * write through process.stdout/stderr is filtered once a secret is registered; the agent's own
 * log (pino) writes to its file descriptor directly, and never holds a secret in the first place.
 */

const REDACTED = '[redacted]';
/** Each secret and the forms a trace prints it in: as is, and as Buffer bytes (`<Buffer 53 33 ...>`). */
const forms = new Set<string>();
let installed = false;

/** Registers a secret; every later write to stdout/stderr has it replaced by [redacted]. */
export function registerSecret(secret: string): void {
  if (secret === '') return;
  forms.add(secret);
  forms.add(Buffer.from(secret, 'utf8').toString('hex').replace(/(..)(?!$)/g, '$1 '));
  if (!installed) {
    installed = true;
    filter(process.stdout);
    filter(process.stderr);
  }
}

/** The text with every registered secret replaced. */
export function redact(text: string): string {
  let out = text;
  for (const f of forms) if (out.includes(f)) out = out.split(f).join(REDACTED);
  return out;
}

type Write = (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;

function filter(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as Write;
  (stream as unknown as { write: Write }).write = (chunk, encoding, cb) => {
    if (typeof chunk === 'string') return write(redact(chunk), encoding, cb);
    if (chunk instanceof Uint8Array) {
      const text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
      const clean = redact(text);
      if (clean !== text) return write(clean, 'utf8', typeof encoding === 'function' ? encoding : cb);
    }
    return write(chunk, encoding, cb);
  };
}
