/**
 * What a north-side driver offers a forward lane. Drivers do I/O only: they report what the wire
 * said (a RawFailure) and know nothing of retries, breakers or classification; the lane runs
 * agent/policy/classify.ts over it. Expected failures are results, never exceptions.
 */

/** What the wire said when an attempt failed, before any policy looks at it (agent/policy/classify.ts). */
export interface RawFailure {
  /**
   * 'unreadable': the stored batch itself cannot be sent (not a JSON array of readings): found by a driver, never sent.
   * 'file': a file the driver reads to connect (password, key, certificate) failed drivers/files.ts's checks; `code` is its FileCode.
   */
  kind: 'socket' | 'connack' | 'puback' | 'disconnect' | 'timeout' | 'http' | 'tls' | 'grpc' | 'unreadable' | 'file';
  /** 'grpc': the numeric status (14), or its name ('UNAVAILABLE', 'GRPC_UNAVAILABLE'). */
  code?: string | number;
  message: string;
  /** A server hint: Retry-After, MQTT server busy, gRPC google.rpc.RetryInfo retry_delay. */
  retryAfterMs?: number;
}

/** Node/OpenSSL certificate error codes; what a driver reports as kind 'tls' (the classifier maps them to TLS_CERT_INVALID). */
export const TLS_CERT_CODES: readonly string[] = Object.freeze([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export interface OutboundMessage {
  taskId: number;
  key: string;
  seq: number;
  device: string;
  historical: boolean;
  readingCount: number;
  /**
   * The batch's readings as a JSON array text, exactly as stored. On a message from a lane this is
   * a lazy getter over `readings`: a driver that reads it pays a ~50 KB string per batch.
   */
  readonly readingsJson: string;
  /** The same readings as UTF-8 bytes, when the sender has them (a lane always does); prefer these. */
  readonly readings?: Buffer;
  /**
   * The bytes of `readings.buffer` outside the `readings` view belong to this message (free room
   * before and after it), so a driver may frame the readings in place instead of copying them.
   */
  readonly framable?: boolean;
}

/** An OutboundMessage over the decoded bytes: `readingsJson` is only made if a driver asks for it. */
export class StoredMessage implements OutboundMessage {
  private json: string | undefined;

  constructor(
    readonly taskId: number,
    readonly key: string,
    readonly seq: number,
    readonly device: string,
    readonly historical: boolean,
    readonly readingCount: number,
    readonly readings: Buffer,
    readonly framable = false,
  ) {}

  get readingsJson(): string {
    return (this.json ??= this.readings.toString('utf8'));
  }
}

/** The readings of a message as UTF-8 bytes, from `readings` when present. */
export function readingsBytes(m: OutboundMessage): Buffer {
  return m.readings ?? Buffer.from(m.readingsJson, 'utf8');
}

/**
 * `notBefore` (ms): the upstream asked that this device post no earlier than this again (IEEE
 * 2030.5 postRate); the lane then paces and merges that device's sends (agent/pacer.ts).
 */
export type SendResult = { ok: true; requestAt: number; ackAt: number; notBefore?: number } | { ok: false; requestAt: number; failure: RawFailure };

export type ConnectResult = { ok: true } | { ok: false; failure: RawFailure };

export interface UplinkDriver {
  readonly name: string;
  readonly connected: boolean;
  /** How many sends the upstream accepts in flight (MQTT 5 Receive Maximum); Infinity if it set none. */
  readonly sendWindow: number;
  /**
   * Once send() resolved ok, the driver keeps no reference to the message's readings bytes (nor
   * to a frame made in place around them), so the sender may reuse that memory. Default: false.
   */
  readonly releasesOnSettle?: boolean;
  /** One connection attempt; no retry of its own. */
  connect(): Promise<ConnectResult>;
  send(msg: OutboundMessage): Promise<SendResult>;
  /** Called once per connection loss (not after close()). */
  onDown(cb: (failure: RawFailure) => void): void;
  /**
   * Ends the connection, taking at most about `budgetMs` (default: the driver's own) whatever the
   * peer does; sends still in flight fail at once. Never rejects.
   */
  close(budgetMs?: number): Promise<void>;
}
