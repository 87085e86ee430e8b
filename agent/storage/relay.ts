/**
 * Live data while the store is down: a batch that goes to the spool is also offered to every lane
 * whose link is up (Lane.sendDirect), so readings keep arriving upstream. An acknowledgement is
 * recorded by key (keeper.ts acked: in the spool, or in the store if it is back by then), so the
 * import does not send the batch again. A batch not sent (link down, breaker open, too many in
 * flight) simply waits in the spool and goes out after the import.
 */
import type { Logger } from 'pino';
import type { PayloadCodec } from '../../store/codec.js';
import type { SealedBatch } from '../../store/outbox.js';
import type { Lane } from '../forward/lane.js';
import type { Guard } from '../guard.js';

/** Direct sends in flight at most, over all lanes. */
export const RELAY_INFLIGHT = 64;

export class Relay {
  private inflight = 0;
  /** Keys of batches being sent: the space policy does not drop them under a send. */
  readonly sending = new Map<string, number>();

  constructor(
    private readonly lanes: () => readonly Lane[],
    private readonly codec: PayloadCodec,
    private readonly acked: (key: string, uplink: string, requestAt: number, ackAt: number) => void,
    private readonly log: Logger,
    private readonly guard: Guard,
  ) {}

  private closed = false;

  /** No new direct sends (the agent is stopping: a send cut off by the stop would leave its batch in an unknown state). */
  close(): void {
    this.closed = true;
  }

  offer(batches: readonly SealedBatch[]): void {
    if (this.closed) return;
    for (const b of batches) {
      if (this.inflight >= RELAY_INFLIGHT) return;
      let readings: Buffer;
      try {
        readings = this.codec.decode(b.payload, b.key);
      } catch (e) {
        this.log.warn({ code: 'PAYLOAD_UNREADABLE', key: b.key, err: String(e) }, 'spooled batch not sent directly');
        continue;
      }
      for (const lane of this.lanes()) {
        if (this.inflight >= RELAY_INFLIGHT) return;
        this.inflight++;
        this.sending.set(b.key, (this.sending.get(b.key) ?? 0) + 1);
        const done = () => {
          this.inflight--;
          const n = (this.sending.get(b.key) ?? 1) - 1;
          if (n > 0) this.sending.set(b.key, n);
          else this.sending.delete(b.key);
        };
        lane.sendDirect(b.key, b.device, b.readingCount, readings).then(
          (r) => {
            done();
            // Not recorded (a failure here): the import sends the batch again, with its key.
            this.guard.run('store.relay', () => r && this.acked(b.key, lane.name, r.requestAt, r.ackAt));
          },
          done,
        );
      }
    }
  }
}
