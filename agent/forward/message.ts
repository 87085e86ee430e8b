/**
 * The message for one or more tasks (several: a paced device's, merged oldest first): their
 * payloads decrypted and inflated here, when sent. A payload that does not open is left out and
 * named, so that its task alone is dead-lettered.
 */
import type { OutboundMessage } from '../../drivers/uplink.js';
import type { PayloadCodec } from '../../store/codec.js';
import type { TaskRow } from '../../store/tasks.js';
import type { Source } from './order.js';
import { arrayBody, mergeJsonArrays } from './pacer.js';

export interface Opened {
  /** null when no payload opened. */
  msg: OutboundMessage | null;
  /** The tasks the message carries. */
  sent: TaskRow[];
  unreadable: { task: TaskRow; message: string }[];
}

/** `liveFromId`: tasks below it were committed before the link came up (historical). */
export function openMessage(tasks: readonly TaskRow[], source: Source, codec: PayloadCodec, liveFromId: number): Opened {
  const out: Opened = { msg: null, sent: [], unreadable: [] };
  const parts: Buffer[] = [];
  for (const task of tasks) {
    try {
      const b = codec.decode(task.payload, task.key);
      if (source === 'paced') arrayBody(b); // to be merged: not a JSON array, this task alone is dead-lettered
      parts.push(b);
      out.sent.push(task);
    } catch (e) {
      out.unreadable.push({ task, message: (e as Error).message });
    }
  }
  const first = out.sent[0];
  if (!first) return out;
  out.msg = {
    taskId: first.id, key: first.key, seq: first.payloadId, device: first.device,
    historical: source === 'backlog' || out.sent.some((r) => r.id < liveFromId),
    readingCount: out.sent.reduce((n, r) => n + r.readingCount, 0), readings: parts.length === 1 ? parts[0] : mergeJsonArrays(parts),
  };
  return out;
}
