/**
 * The store's side of a wall-clock step (docs/clocks.md). Times that must survive a restart are
 * kept as wall time (recovery_tasks.next_attempt_at and first_attempt_at, open recovery_events);
 * when the wall clock steps by `stepMs`, the pending ones move with it so that a retry due in a
 * second stays due in a second, and an age or an outage keeps its length. Schedules further ahead
 * than an uplink's cap (written by a clock that ran ahead while the agent was not watching) are
 * brought back to it.
 *
 * clock_boots keeps, per boot, the offset of the wall clock over the monotonic one and whether the
 * wall clock was good: a restart within the same boot compares offsets to see a step it missed,
 * and readings stamped before the clock was good are re-based with a good offset of their boot.
 */
import type { DB } from './db.js';

export interface BootClock {
  offset: number;
  synced: boolean;
}

export function loadBoot(db: DB, boot: string): BootClock | undefined {
  const r = db.prepare('SELECT offset_ms AS offset, synced FROM clock_boots WHERE boot_id = ?').get(boot) as { offset: number; synced: number } | undefined;
  return r ? { offset: r.offset, synced: r.synced === 1 } : undefined;
}

/** Keeps this boot's offset as seen now; a good one is also kept as the boot's good offset (its readings need it). */
export function saveBoot(db: DB, boot: string, c: BootClock, at: number): void {
  const offset = Math.round(c.offset);
  db.prepare(
    `INSERT INTO clock_boots (boot_id, offset_ms, synced, good_offset_ms, updated_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (boot_id) DO UPDATE SET offset_ms = excluded.offset_ms, synced = excluded.synced,
       good_offset_ms = coalesce(excluded.good_offset_ms, good_offset_ms), updated_at = excluded.updated_at`,
  ).run(boot, offset, c.synced ? 1 : 0, c.synced ? offset : null, at);
}

/** Good offsets (wall - mono) by boot: what the re-base of unsynchronised readings needs. */
export function goodOffsets(db: DB): Map<string, number> {
  const rows = db.prepare('SELECT boot_id AS boot, good_offset_ms AS offset FROM clock_boots WHERE good_offset_ms IS NOT NULL').all() as { boot: string; offset: number }[];
  return new Map(rows.map((r) => [r.boot, r.offset]));
}

export interface StepRebase {
  /** Pending tasks whose retry time moved. */
  schedules: number;
  /** Pending tasks whose first-attempt time moved. */
  firstAttempts: number;
  /** Open events (outages, faults, throttles) whose start moved. */
  events: number;
}

/** Moves the pending wall times by a step of the wall clock, in one transaction. */
export function rebaseForStep(db: DB, stepMs: number): StepRebase {
  const s = Math.round(stepMs);
  return db.transaction(() => ({
    // max(1, ...): 0 means "fresh, never attempted", which a retry must not become.
    schedules: db.prepare(`UPDATE recovery_tasks SET next_attempt_at = max(1, next_attempt_at + ?) WHERE status = 'pending' AND next_attempt_at > 0`).run(s).changes,
    firstAttempts: db.prepare(`UPDATE recovery_tasks SET first_attempt_at = first_attempt_at + ? WHERE status = 'pending' AND first_attempt_at IS NOT NULL`).run(s).changes,
    events: db.prepare('UPDATE recovery_events SET started_at = started_at + ? WHERE ended_at IS NULL').run(s).changes,
  })).immediate();
}

/**
 * Brings retry times further ahead than `capMs` (per uplink) back to now + cap, and open events
 * that start in the future back to now. Cheap when there is nothing to do (index ranges).
 */
export function clampSchedules(db: DB, wallNow: number, caps: readonly { uplink: string; capMs: number }[]): { schedules: number; events: number } {
  return db.transaction(() => {
    let schedules = 0;
    const st = db.prepare(
      `UPDATE recovery_tasks SET next_attempt_at = ? WHERE uplink = ? AND status = 'pending' AND next_attempt_at > ?`,
    );
    for (const c of caps) schedules += st.run(wallNow + c.capMs, c.uplink, wallNow + c.capMs).changes;
    const events = db.prepare('UPDATE recovery_events SET started_at = ? WHERE ended_at IS NULL AND started_at > ?').run(wallNow, wallNow).changes;
    return { schedules, events };
  }).immediate();
}
