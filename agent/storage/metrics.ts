/**
 * Storage metrics, on the agent's registry (agent/api/metrics.ts): drops by uplink and reason,
 * the store's availability and failures, the spool, the space used against the budget.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface StorageSources {
  available(): boolean;
  spoolBytes(): number;
  space(): { usedBytes: number; budgetBytes: number; fsFreeBytes: number; full: boolean } | null;
}

export class StorageMetrics {
  readonly droppedReadings: Counter<'uplink' | 'reason'>;
  readonly droppedBatches: Counter<'uplink' | 'reason'>;
  readonly reclaimed: Counter;
  readonly failures: Counter<'kind' | 'errno'>;
  readonly spooled: Counter<'result'>;
  readonly salvaged: Counter<'source'>;

  constructor(r: Registry, src: StorageSources) {
    this.droppedReadings = new Counter({
      name: 'holdfast_dropped_readings_total', help: 'Readings dropped by an explicit storage policy, by the uplink that still wanted them and why (dead_letter, oldest, downsampled, rejected, spool_full, spool_error, store_lost)',
      labelNames: ['uplink', 'reason'], registers: [r],
    });
    this.droppedBatches = new Counter({ name: 'holdfast_dropped_batches_total', help: 'Batches dropped, as holdfast_dropped_readings_total', labelNames: ['uplink', 'reason'], registers: [r] });
    this.reclaimed = new Counter({ name: 'holdfast_reclaimed_batches_total', help: 'Batches delivered everywhere, removed early because space was short (not a loss)', registers: [r] });
    this.failures = new Counter({ name: 'holdfast_store_failures_total', help: 'Times the store became unavailable, by kind (full, readonly, io, corrupt, vanished, busy, other) and error code', labelNames: ['kind', 'errno'], registers: [r] });
    this.spooled = new Counter({
      name: 'holdfast_spool_batches_total', help: 'Batches through the spool: spooled, sent (directly while the store was down), imported, duplicate (already stored), rescued, refused',
      labelNames: ['result'], registers: [r],
    });
    this.salvaged = new Counter({ name: 'holdfast_salvaged_batches_total', help: 'Batches re-indexed by a salvage, by where they were found (database, segments)', labelNames: ['source'], registers: [r] });
    new Gauge({
      name: 'holdfast_store_available', help: '1 while the store takes commits, 0 while batches go to the spool (STORE_UNAVAILABLE)', registers: [r],
      collect() {
        this.set(src.available() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'holdfast_spool_bytes', help: 'Bytes in the spool waiting to be imported', registers: [r],
      collect() {
        this.set(src.spoolBytes());
      },
    });
    const space = (name: string, help: string, pick: (s: NonNullable<ReturnType<StorageSources['space']>>) => number) =>
      new Gauge({
        name, help, registers: [r],
        collect() {
          this.reset();
          const s = src.space();
          if (s) this.set(pick(s));
        },
      });
    space('holdfast_store_used_bytes', 'Bytes of the database, its WAL and the segment files', (s) => s.usedBytes);
    space('holdfast_store_budget_bytes', 'Bytes the store may use: store.maxBytes, or less when the filesystem is short (minus store.minFreeRatio)', (s) => s.budgetBytes);
    space('holdfast_store_fs_free_bytes', 'Free bytes on the filesystem of the data directory', (s) => s.fsFreeBytes);
    space('holdfast_storage_full', '1 while the store is full (STORAGE_FULL) and store.fullPolicy applies', (s) => (s.full ? 1 : 0));
  }
}
