/**
 * What a verified remote command does, on the running engine: the same operations as the CLI's
 * `status`, `breaker reset`, `retry reset` and `purge`, through the same store admin queries. A
 * command's arguments are its signed payload (a JSON object); a bad argument is a refusal with
 * a reason, never a throw. Topic names use a dash where the CLI has a space (`cmd/breaker-reset`).
 */
import type { Engine } from '../engine.js';
import { parseDuration } from '../../store/admin.js';

export const COMMAND_NAMES = ['status', 'breaker-reset', 'retry-reset', 'purge'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export type CommandResult = { ok: true; result: Record<string, unknown> } | { ok: false; code: 'REMOTE_COMMAND_FAILED'; reason: string };

export function isCommandName(n: string): n is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(n);
}

const failed = (reason: string): CommandResult => ({ ok: false, code: 'REMOTE_COMMAND_FAILED', reason });

export function runCommand(name: CommandName, args: Record<string, unknown>, engine: Engine, now: number): CommandResult {
  const names = engine.lanes.map((l) => l.name);
  const uplink = args.uplink;
  if (uplink !== undefined && (typeof uplink !== 'string' || !names.includes(uplink))) {
    return failed(`no uplink ${JSON.stringify(uplink)} (have: ${names.join(', ')})`);
  }
  if (!engine.storage.keeper.available && name !== 'breaker-reset') return failed('STORE_UNAVAILABLE: the store cannot be read or written now');
  switch (name) {
    case 'status': {
      const s = engine.store.admin.status(now, engine.cfg.uplinks.map((u) => u.name));
      return { ok: true, result: { ...s, lanes: engine.lanes.map((l) => l.snapshot()) } };
    }
    case 'breaker-reset': {
      if (typeof uplink !== 'string') return failed('needs {"uplink": "<name>"}');
      engine.lanes.find((l) => l.name === uplink)!.resetBreaker();
      return { ok: true, result: { uplink } };
    }
    case 'retry-reset': {
      const n = engine.store.admin.retryReset(uplink as string | undefined);
      // Re-admitted at once rather than at the next sweep.
      engine.sweep();
      return { ok: true, result: { reset: n } };
    }
    case 'purge': {
      const d = typeof args.olderThan === 'string' ? parseDuration(args.olderThan) : undefined;
      if (d === undefined) return failed('needs {"olderThan": "<duration>"} such as "7d", "12h", "30m"');
      const r = engine.store.admin.purge(d, now);
      const gc = engine.store.collectSegments();
      return { ok: true, result: { ...r, segmentsDeleted: gc.files, segmentBytesFreed: gc.bytes } };
    }
  }
}
