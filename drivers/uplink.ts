/**
 * What a north-side driver offers a forward lane. Drivers do I/O only: they report what the wire
 * said (a RawFailure) and know nothing of retries, breakers or classification; the lane runs
 * agent/policy/classify.ts over it. Expected failures are results, never exceptions.
 */
import type { RawFailure } from '../agent/policy/classify.js';

export interface OutboundMessage {
  taskId: number;
  key: string;
  seq: number;
  device: string;
  historical: boolean;
  readingCount: number;
  /** The batch's readings as a JSON array text, exactly as stored. */
  readingsJson: string;
}

export type SendResult = { ok: true; requestAt: number; ackAt: number } | { ok: false; requestAt: number; failure: RawFailure };

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
  close(): Promise<void>;
}
