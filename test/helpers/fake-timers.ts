/**
 * Test helper: fake timers on a manual clock (agent/clock.ts manualClock) for code that takes
 * its timer as a dependency (agent/forward/wakeup.ts After). advance(ms) moves the clock to each
 * timer's time in order and fires it, letting promises and setImmediate callbacks run between.
 */
import { manualClock } from '../../agent/clock.js';

interface Entry {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/** Lets queued promise callbacks and setImmediate callbacks (a lane's wake(0)) run. */
export async function settle(turns = 6): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export function fakeTimers(wall = Date.UTC(2026, 11, 1)) {
  const clock = manualClock(wall);
  const queue: Entry[] = [];
  let seq = 0;
  const after = (fn: () => void, ms: number) => {
    const e: Entry = { at: clock.mono() + Math.max(0, ms), seq: seq++, fn, live: true };
    queue.push(e);
    return { clear: () => void (e.live = false) };
  };
  /** Moves the clock by `ms`, firing every timer due on the way at its own time. */
  const advance = async (ms: number): Promise<void> => {
    const end = clock.mono() + ms;
    for (;;) {
      await settle();
      let next: Entry | undefined;
      for (const e of queue) if (e.live && (!next || e.at < next.at || (e.at === next.at && e.seq < next.seq))) next = e;
      if (!next || next.at > end) break;
      if (next.at > clock.mono()) clock.advance(next.at - clock.mono());
      next.live = false;
      queue.splice(queue.indexOf(next), 1);
      next.fn();
    }
    if (end > clock.mono()) clock.advance(end - clock.mono());
    await settle();
  };
  return { clock, after, advance };
}
