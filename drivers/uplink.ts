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
  /** The batch's readings: a JSON array as UTF-8 bytes, exactly as stored. */
  readings: Buffer;
}

/**
 * `notBefore` (ms): the upstream asked that this device post no earlier than this again (IEEE
 * 2030.5 postRate); the lane then paces and merges that device's sends (agent/forward/pacer.ts).
 */
export type SendResult = { ok: true; requestAt: number; ackAt: number; notBefore?: number } | { ok: false; requestAt: number; failure: RawFailure };

export type ConnectResult = { ok: true } | { ok: false; failure: RawFailure };

export interface UplinkDriver {
  readonly name: string;
  readonly connected: boolean;
  /** How many sends the upstream accepts in flight (MQTT 5 Receive Maximum); Infinity if it set none. */
  readonly sendWindow: number;
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
