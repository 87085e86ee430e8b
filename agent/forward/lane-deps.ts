/** What a lane is given (LaneDeps) and what it shows (LaneSnapshot: holdfast status, /metrics). */
import type { Logger } from 'pino';
import type { DeepReadonly, UplinkCommon } from '../config/types.js';
import type { Failure } from '../policy/classify.js';
import type { Clock } from '../clock.js';
import type { Guard } from '../guard.js';
import type { UplinkDriver } from '../../drivers/uplink.js';
import type { PayloadCodec } from '../../store/codec.js';
import type { Events } from '../../store/events.js';
import type { TaskQueue } from '../../store/tasks.js';
import type { After } from './wakeup.js';

export interface LaneDeps {
  cfg: DeepReadonly<UplinkCommon>;
  driver: UplinkDriver;
  tasks: TaskQueue;
  events: Events;
  codec: PayloadCodec;
  log: Logger;
  rand?: () => number;
  /** Timers, rates and ages run on clock.mono(); clock.wall() only stamps stored times. */
  clock?: Clock;
  /** Told of every failed connect and lost connection (metrics). */
  onLinkFailure?: (f: Failure) => void;
  /** Told of every finished attempt (metrics): result, whether it was a retry, the ack latency. */
  onAttempt?: (e: { uplink: string; result: 'ok' | 'payload' | 'link'; retry: boolean; latencyMs?: number }) => void;
  /** A send from before the store came back (storeBack) was acknowledged: recorded by key, as task ids may name other tasks now. */
  onStaleAck?: (key: string, uplink: string, requestAt: number, ackAt: number) => void;
  /** The owner of the lane's timers and callbacks (default: one that only logs, for tools and tests). */
  guard?: Guard;
  /** Sets the lane's timed wake-ups (default safeTimeout; a test passes fake timers on its clock). */
  after?: After;
}

export interface LaneSnapshot {
  uplink: string;
  connected: boolean;
  breaker: string;
  inflight: number;
  heldUntil: number;
  nextConnectAt: number;
  delivered: number;
  failedAttempts: number;
  draining: boolean;
}
