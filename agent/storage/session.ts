/**
 * One open store: the connection, its segment writer (sized for the disk it is on), and the
 * objects that prepare statements on it (outbox, events, a task queue per uplink). When the store
 * fails the keeper (keeper.ts) opens a new session, maybe on a new file, and the guarded objects
 * (guarded.ts) follow it; nothing else holds a statement of an old session.
 *
 * Its identity (device and inode of the data directory, the database file and the segment
 * directory) is what tells a directory removed or replaced under a running agent: the old files
 * stay open and writable, so only the inodes show it.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/types.js';
import { DB_FILE } from '../../store/db.js';
import type { EventClock, Events } from '../../store/events.js';
import type { Outbox } from '../../store/outbox.js';
import { listSegments, segmentDir } from '../../store/segments.js';
import { Store } from '../../store/store.js';
import type { TaskQueue } from '../../store/tasks.js';
import { measureUsage } from '../../store/usage.js';
import { assessSpace, checkpointBytesFor, segmentBytesFor } from '../policy/storage.js';

/** The largest segment file under the policy downsample (the others roll at up to 32 MiB). */
export const DOWNSAMPLE_SEGMENT_BYTES = 4 * 1024 * 1024;

export interface Session {
  store: Store;
  outbox: Outbox;
  events: Events;
  tasks: Map<string, TaskQueue>;
  ident: string;
  /** The device of the data directory's filesystem. */
  dev: number;
  /** 1 for the first session of the process, then one more for each reopen. */
  gen: number;
}

/** The identity of the store's files, 'gone:<errno>' when one cannot be stat-ed. */
export function storeIdent(dataDir: string): string {
  try {
    return [dataDir, join(dataDir, DB_FILE), segmentDir(dataDir)].map((p) => {
      const st = statSync(p);
      return `${st.dev}:${st.ino}`;
    }).join('/');
  } catch (e) {
    return `gone:${(e as NodeJS.ErrnoException).code ?? 'UNKNOWN'}`;
  }
}

/**
 * On a reopen, the store must not start afresh on another filesystem than the one it was on: a
 * data directory that is gone while its parent is on another filesystem, or that is there but
 * empty on another filesystem, is a disk not mounted (yet), not a store to create. (A directory
 * removed from its own filesystem is created again; a disk mounted anew holds the store.)
 */
export function checkSameDisk(dataDir: string, prevDev: number | null): void {
  if (prevDev === null) return;
  const vanished = (why: string) => Object.assign(new Error(`${why} (a disk not mounted?): ${dataDir}`), { code: 'ENOENT' });
  let st;
  try {
    st = statSync(dataDir);
  } catch {
    if (statSync(dirname(dataDir)).dev !== prevDev) throw vanished('the data directory is gone and its parent is on another filesystem');
    return;
  }
  const empty = !existsSync(join(dataDir, DB_FILE)) && listSegments(segmentDir(dataDir)).length === 0;
  if (st.dev !== prevDev && empty) throw vanished('the data directory is empty and on another filesystem than the store was');
}

/**
 * Opens the store (salvaging first when it must: store/open-store.ts), its writer with a segment
 * size and checkpoint threshold for the space it has, and the objects on it. Throws when it cannot.
 * `prevDev`: the device the store was on before (a reopen), checked with checkSameDisk. `clock`:
 * what the events measure intervals by (monotonic, store/events.ts).
 */
export function openSession(cfg: Config, uplinks: readonly string[], gen: number, prevDev: number | null = null, clock?: EventClock): Session {
  checkSameDisk(cfg.dataDir, prevDev);
  const s = cfg.store;
  const store = Store.open(cfg.dataDir, {
    synchronous: s.synchronous, busyTimeoutMs: s.busyTimeoutMs, uplinks,
    sizes: () => {
      const u = measureUsage(cfg.dataDir);
      const budget = assessSpace({ usedBytes: u.usedBytes, maxBytes: s.maxBytes, fsFreeBytes: u.fsFreeBytes, fsTotalBytes: u.fsTotalBytes, minFreeRatio: s.minFreeRatio }).budgetBytes;
      // Downsampling decodes a whole file in one pass: smaller files keep a pass short.
      return { checkpointBytes: checkpointBytesFor(budget), rollBytes: segmentBytesFor(budget, s.fullPolicy === 'downsample' ? DOWNSAMPLE_SEGMENT_BYTES : undefined) };
    },
  });
  try {
    return {
      store, outbox: store.outbox(uplinks), events: store.events(clock), tasks: new Map(uplinks.map((u) => [u, store.tasks(u)])),
      ident: storeIdent(cfg.dataDir), dev: statSync(cfg.dataDir).dev, gen,
    };
  } catch (e) {
    closeQuietly(store);
    throw e;
  }
}

/** Closes a connection whose disk may be failing: what cannot be synced or checkpointed stays as it is. */
export function closeQuietly(store: Store): void {
  try {
    store.close();
  } catch {
    try {
      if (store.db.open) store.db.close();
    } catch {
      // a connection to a vanished or read-only file: the process lets go of it either way
    }
  }
}
