/**
 * The storage side of the engine in one place: the keeper (keeper.ts: the store, its failures
 * and the spool), the space manager (space.ts: quota and full policy), the relay (relay.ts: live
 * data while the store is down), the drop ledger and the metrics, and the guarded objects the
 * rest of the agent uses instead of the store's own (guarded.ts).
 */
import type { Guard } from '../guard.js';
import type { EventClock } from '../../store/events.js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { PayloadCodec } from '../../store/codec.js';
import type { Store } from '../../store/store.js';
import type { Lane } from '../forward/lane.js';
import { GuardedTaskQueue, placeholderStore, StoreOutbox, type GuardedEvents } from './guarded.js';
import { StoreKeeper, type StoreState } from './keeper.js';
import { DropLedger } from './ledger.js';
import { StorageMetrics } from './metrics.js';
import { Relay } from './relay.js';
import { SpaceManager, type SpaceState } from './space.js';

export interface StorageStatus {
  store: StoreState;
  space: SpaceState | null;
}

export class Storage {
  readonly keeper: StoreKeeper;
  readonly space: SpaceManager;
  readonly metrics: StorageMetrics;
  readonly outbox: StoreOutbox;
  private readonly queues = new Map<string, GuardedTaskQueue>();

  constructor(
    private readonly cfg: Config,
    log: Logger,
    codec: PayloadCodec,
    registry: Registry,
    publish: (m: Record<string, unknown>) => void,
    lanes: () => readonly Lane[],
    guard: Guard,
    clock?: EventClock,
  ) {
    const enabled = cfg.uplinks.filter((u) => u.enabled);
    const uplinks = enabled.map((u) => u.name);
    let keeper: StoreKeeper | null = null;
    let space: SpaceManager | null = null;
    this.metrics = new StorageMetrics(registry, {
      available: () => keeper?.available ?? false,
      spoolBytes: () => keeper?.spoolWriter.bytes ?? 0,
      space: () => space?.state() ?? null,
    });
    const ledger = new DropLedger(this.metrics, log, publish);
    this.keeper = keeper = new StoreKeeper({ cfg, log, uplinks, metrics: this.metrics, ledger, publish, guard, clock });
    this.space = space = new SpaceManager({
      cfg, log, guard, keeper, codec, ledger, metrics: this.metrics, uplinks, publish,
      priorities: Object.fromEntries(enabled.map((u) => [u.name, u.priority])),
      dropped: () => {
        for (const l of lanes()) l.rescan();
      },
      busy: () => ({ taskIds: lanes().flatMap((l) => l.busyTaskIds()), keys: [...relay.sending.keys()] }),
    });
    const relay: Relay = new Relay(lanes, codec, (key, uplink, rq, ack) => this.keeper.acked(key, uplink, rq, ack), log, guard);
    this.relay = relay;
    this.outbox = new StoreOutbox(keeper, space);
  }

  private readonly relay: Relay;

  get events(): GuardedEvents {
    return this.keeper.events;
  }

  /** The store in use, or a stand-in in memory while the store is unavailable. */
  get store(): Store {
    return (this.keeper.available ? this.keeper.session?.store : null) ?? placeholderStore();
  }

  /** A lane's task queue: follows the store from session to session. */
  tasks(uplink: string): GuardedTaskQueue {
    let q = this.queues.get(uplink);
    if (!q) {
      q = new GuardedTaskQueue(this.keeper, uplink);
      this.queues.set(uplink, q);
    }
    return q;
  }

  attach(lanes: readonly Lane[]): void {
    this.keeper.attach(lanes, (b) => this.relay.offer(b));
  }

  start(): void {
    this.keeper.start();
    this.space.start();
  }

  status(): StorageStatus {
    return { store: this.keeper.state(), space: this.space.state() };
  }

  /** The agent is stopping: spooled batches wait in the spool (sent after the import) rather than start a send the stop would cut. */
  stopSending(): void {
    this.relay.close();
  }

  /** After the last commit and the lanes' last outcomes: the spool and the store are closed. */
  close(): void {
    this.space.stop();
    this.keeper.stop();
    this.keeper.close();
  }
}
