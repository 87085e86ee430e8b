/**
 * A batch sent without a task: spooled while the store was down (agent/storage/relay.ts), it goes
 * straight to a connected uplink behind the same breaker, and its acknowledgement is written by
 * key once the store is back. Nothing is retried here: a batch not sent waits for the spool import.
 */
import { classify } from '../policy/classify.js';
import type { UplinkDriver } from '../../drivers/uplink.js';
import type { Link } from './link.js';
import type { LaneDeps } from './lane-deps.js';

export interface DirectDeps {
  uplink: string;
  link: Link;
  driver: UplinkDriver;
  now: () => number;
  onAttempt: LaneDeps['onAttempt'];
  /** One more delivery (the lane's counter). */
  delivered: () => void;
}

export interface DirectBatch {
  key: string;
  device: string;
  readingCount: number;
  readings: Buffer;
}

/** Sends one batch if the link admits it; its times when acknowledged, else null. Never throws. */
export async function sendDirect(deps: DirectDeps, b: DirectBatch): Promise<{ requestAt: number; ackAt: number } | null> {
  const { link } = deps;
  if (!link.connected) return null;
  const a = link.admit(deps.now());
  if (!a.allowed) return null;
  try {
    const r = await deps.driver.send({ taskId: 0, key: b.key, seq: 0, device: b.device, historical: false, readingCount: b.readingCount, readings: b.readings });
    if (!r.ok) {
      const f = classify(r.failure);
      link.record(f.scope !== 'link', a.probe, f.code);
      deps.onAttempt?.({ uplink: deps.uplink, result: f.scope, retry: false });
      return null;
    }
    link.record(true, a.probe);
    deps.delivered();
    deps.onAttempt?.({ uplink: deps.uplink, result: 'ok', retry: false, latencyMs: r.ackAt - r.requestAt });
    return { requestAt: r.requestAt, ackAt: r.ackAt };
  } catch {
    return null;
  }
}
