/**
 * What the store takes on disk (the database, its WAL and shared memory, the segment files) and
 * what the filesystem under it has left: the inputs of the storage policy
 * (agent/policy/storage.ts). A few stat calls and one statfs: cheap enough for every few
 * commit ticks.
 */
import { readdirSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DB_FILE } from './db.js';
import { listSegments, segmentDir, segmentName } from './segment-reader.js';

export interface Usage {
  dbBytes: number;
  walBytes: number;
  segmentBytes: number;
  /** Segment id -> bytes. */
  segmentFiles: Map<number, number>;
  /** Everything above plus the shared-memory file. */
  usedBytes: number;
  /** Free bytes an unprivileged writer may use (a root-reserved share counts as taken). */
  fsFreeBytes: number;
  fsTotalBytes: number;
}

const size = (f: string): number => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};

/** Measures the store in `dataDir`. Throws (ENOENT, EIO) when the directory itself cannot be read. */
export function measureUsage(dataDir: string): Usage {
  const fs = statfsSync(dataDir);
  const db = join(dataDir, DB_FILE);
  const dbBytes = size(db);
  const walBytes = size(`${db}-wal`);
  const shm = size(`${db}-shm`);
  const dir = segmentDir(dataDir);
  const segmentFiles = new Map<number, number>();
  let segmentBytes = 0;
  for (const id of listSegments(dir)) {
    const n = size(join(dir, segmentName(id)));
    segmentFiles.set(id, n);
    segmentBytes += n;
  }
  return {
    dbBytes, walBytes, segmentBytes, segmentFiles, usedBytes: dbBytes + walBytes + shm + segmentBytes,
    fsFreeBytes: fs.bavail * fs.bsize, fsTotalBytes: fs.blocks * fs.bsize,
  };
}

/** Files and bytes under a folder and its subfolders (the quarantine, the spool). */
export function folderBytes(dir: string): { files: number; bytes: number } {
  const out = { files: 0, bytes: 0 };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      const sub = folderBytes(p);
      out.files += sub.files;
      out.bytes += sub.bytes;
    } else {
      out.files++;
      out.bytes += st.size;
    }
  }
  return out;
}
