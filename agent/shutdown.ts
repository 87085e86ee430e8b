/**
 * Bounded shutdown. On SIGTERM/SIGINT the agent stops acquisition, commits what it holds, gives
 * each lane until `acksBy` for the acknowledgements of messages in flight, then until `closeBy` to
 * send its offline status and end its connection (forcibly if the upstream does not answer),
 * closes the store and exits 0, all within `shutdownTimeoutMs`, whatever an upstream does.
 * pm2 (kill_timeout) or systemd would SIGKILL an agent that took longer, skipping the close.
 *
 * The plan is a pure function of the start time and the budget; within() bounds one step; the
 * backstop is the last resort if a step escaped its bound.
 */
import type { Logger } from 'pino';
import { within } from '../drivers/timer.js';

export interface ShutdownPlan {
  startedAt: number;
  /** Lanes wait for in-flight acknowledgements until then. */
  acksBy: number;
  /** Lanes end their connections (offline status, DISCONNECT or a forced close) by then. */
  closeBy: number;
  /** Every step (lanes, field buses, HTTP server, metrics export) is done or abandoned by then. */
  stepsBy: number;
  /** The store is closed and the process gone by then, or the backstop acts. */
  hardBy: number;
}

/** Shares of the budget: most of it for acknowledgements, a margin for closing the store. */
export const SHARES = Object.freeze({ acks: 0.5, close: 0.75, steps: 0.85 });

export function shutdownPlan(startedAt: number, timeoutMs: number): ShutdownPlan {
  const at = (share: number) => startedAt + Math.floor(timeoutMs * share);
  return { startedAt, acksBy: at(SHARES.acks), closeBy: at(SHARES.close), stepsBy: at(SHARES.steps), hardBy: startedAt + timeoutMs };
}

/**
 * Runs one step of the stop until `by` (epoch ms). A step that fails is logged and the stop
 * goes on; one that is not done by then is left behind (SHUTDOWN_TIMEOUT, the step named).
 */
export async function step(log: Logger, what: string, p: Promise<unknown> | undefined, by: number, now: () => number = Date.now): Promise<void> {
  const guarded = p?.catch((err: unknown) => log.error({ err, step: what }, `stop: ${what} failed`));
  if (!(await within(guarded, by - now()))) {
    log.warn({ code: 'SHUTDOWN_TIMEOUT', step: what }, `stop: ${what} did not finish in time; going on without it`);
  }
}

/** Flushes the log, then exits; the flush is given at most `ms` (a log on a dead disk must not hold the exit). */
export function exitAfterFlush(log: Logger, code: number, ms = 500): void {
  const exit = () => process.exit(code);
  setTimeout(exit, ms).unref();
  try {
    log.flush(() => exit());
  } catch {
    exit();
  }
}
