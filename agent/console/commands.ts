/**
 * The console's commands: a table (name, usage, what it does) over the running gateway's
 * GatewayView, the same view /metrics and the local API read. Nothing here computes a status of
 * its own: `status` prints agent/status/verdicts.ts over agent/status/facts.ts, then details.
 * Output is short lines for a 72-column terminal; the session (session.ts) paces it.
 */
import type { Logger } from 'pino';
import type { GatewayView } from '../api/setup.js';
import type { Config } from '../config/types.js';
import { parseDuration } from '../../store/admin.js';
import { verdictLines, thousands } from '../status/verdicts.js';
import { factsFromView } from '../status/facts.js';
import type { PacedOutput } from './output.js';
import { RecentReadings, shortLog, tailLines } from './tails.js';
import { configLines } from './config-show.js';

export interface ConsoleDeps {
  cfg: Config;
  log: Logger;
  view: GatewayView;
  recent: RecentReadings;
  /** Wall clock, epoch ms. */
  now: () => number;
}

export interface CommandContext {
  out: PacedOutput;
  deps: ConsoleDeps;
  color: boolean;
  setColor(on: boolean): void;
  /** Changes the password (asks old, new, new again). */
  passwd(): Promise<void>;
}

export interface ConsoleCommand {
  name: string;
  usage: string;
  summary: string;
  run(ctx: CommandContext, args: string[]): Promise<void> | void;
}

const hhmm = (ms: number) => new Date(ms).toTimeString().slice(0, 5);
const RED = '\x1b[31m';
const GREEN = '\x1b[32m';
const RESET = '\x1b[0m';

function lane(ctx: CommandContext, name: string | undefined) {
  const lanes = ctx.deps.view.lanes();
  const l = lanes.find((x) => x.name === name);
  if (!l) ctx.out.lines(`no uplink ${JSON.stringify(name ?? '')}; uplinks: ${lanes.map((x) => x.name).join(', ') || 'none'}`);
  return l;
}

function status(ctx: CommandContext): void {
  const { view, now } = ctx.deps;
  const v = verdictLines(factsFromView(view, now()));
  ctx.out.lines(...v.map((l) => (ctx.color ? `${l.kind === 'ok' ? GREEN : RED}${l.text}${RESET}` : l.text)));
  ctx.out.lines('', ...links(ctx), thermalLine(ctx));
}

function links(ctx: CommandContext): string[] {
  return ctx.deps.view.lanes().map((l) => {
    const s = l.snapshot();
    return `uplink ${l.name}: ${s.connected ? 'connected' : 'NOT CONNECTED'}, breaker ${s.breaker}, inflight ${s.inflight}${s.draining ? ', draining' : ''}, delivered ${s.delivered}`;
  });
}

function thermalLine(ctx: CommandContext): string {
  const t = ctx.deps.view.thermal();
  const c = ctx.deps.cfg.hardware.throttle;
  return `cpu ${t.tempC === null ? 'temperature unknown' : `${t.tempC.toFixed(0)} C`}, rate x${t.factor} (throttle at ${c.aboveC} C, release at ${c.belowC} C)`;
}

export const CONSOLE_COMMANDS: ConsoleCommand[] = [
  { name: 'help', usage: 'help', summary: 'this list', run: (ctx) => ctx.out.lines(...CONSOLE_COMMANDS.map((c) => `${c.usage.padEnd(28)} ${c.summary}`)) },
  { name: 'status', usage: 'status', summary: 'verdicts, worst first; then uplinks, cpu', run: status },
  {
    name: 'faults', usage: 'faults', summary: 'open field faults and uplink outages',
    run(ctx) {
      const { view, now } = ctx.deps;
      const f = view.fieldFaults().map((v) => `${v.faultClass.toUpperCase()} ${v.bus}${v.device ? `/${v.device}` : ''}: ${v.code} since ${hhmm(v.at)}`);
      const o = view.store().status(now(), view.lanes().map((l) => l.name)).openOutages.map((x) => `OUTAGE ${x.subject}: ${x.code ?? '?'} since ${hhmm(x.since)}`);
      ctx.out.lines(...(f.length + o.length > 0 ? [...f, ...o] : ['no open fault']));
    },
  },
  {
    name: 'buffer', usage: 'buffer', summary: 'readings kept per uplink; disk use',
    run(ctx) {
      const { view, now } = ctx.deps;
      const st = view.store().status(now(), view.lanes().map((l) => l.name));
      for (const u of st.uplinks) {
        ctx.out.lines(`${u.uplink}: pending ${thousands(u.pending.readings)}, failed ${thousands(u.failed.readings)}, delivered ${thousands(u.delivered.readings)} readings`);
      }
      const s = view.storage().space;
      if (s) ctx.out.lines(`disk: ${(s.usedBytes / 1048576).toFixed(1)} of ${(s.budgetBytes / 1048576).toFixed(1)} MB${s.full ? ', FULL' : ''}, policy ${s.policy}`);
      const k = view.storeState();
      if (!k.available) ctx.out.lines(`STORE UNAVAILABLE: ${k.spool.files} spool file(s), ${k.spool.bytes} bytes`);
    },
  },
  { name: 'links', usage: 'links', summary: 'uplinks: connection, breaker, inflight', run: (ctx) => ctx.out.lines(...links(ctx)) },
  {
    name: 'bus', usage: 'bus', summary: 'RS-485 bus voltage against its window',
    run(ctx) {
      const volts = new Map(ctx.deps.view.busVolts().map((b) => [b.bus, b.volts]));
      const rows = ctx.deps.cfg.buses.map((b) => {
        const v = volts.get(b.name);
        return `bus ${b.name} (${b.type}): ${v === undefined || v === null ? 'voltage not measured' : `${v.toFixed(2)} V`} (window ${b.voltage.min}-${b.voltage.max} V), ${b.devices.length} device(s)`;
      });
      ctx.out.lines(...(rows.length > 0 ? rows : ['no bus configured']));
    },
  },
  { name: 'thermal', usage: 'thermal', summary: 'cpu temperature and throttle', run: (ctx) => ctx.out.lines(thermalLine(ctx)) },
  {
    name: 'readings tail', usage: 'readings tail [device]', summary: 'newest readings',
    run(ctx, args) {
      const r = ctx.deps.recent.tail(args[0], 20);
      if (r.length === 0) return ctx.out.lines(`no readings${args[0] ? ` of ${args[0]}` : ''} yet; devices: ${ctx.deps.recent.devices().join(', ') || 'none'}`);
      ctx.out.lines(...r.map((x) => `${new Date(x.ts).toTimeString().slice(0, 8)} ${x.device} ${x.point} = ${String(x.value)}${x.unit ? ` ${x.unit}` : ''}${x.quality === 'good' ? '' : ` (${x.quality})`}`));
    },
  },
  {
    name: 'log tail', usage: 'log tail [lines]', summary: 'end of the agent log (default 20, max 500)',
    run(ctx, args) {
      const n = args[0] === undefined ? 20 : Number(args[0]);
      if (!Number.isInteger(n) || n < 1 || n > 500) return ctx.out.lines('log tail takes a number of lines, 1-500');
      const f = ctx.deps.cfg.logFile;
      if (f === '-') return ctx.out.lines('the agent logs to stdout (logFile "-"): pm2 logs holdfast');
      ctx.out.lines(...tailLines(f, n).map(shortLog));
    },
  },
  {
    name: 'breaker reset', usage: 'breaker reset <uplink>', summary: 'close a breaker, lift a hold',
    run(ctx, args) {
      const l = lane(ctx, args[0]);
      if (!l) return;
      l.resetBreaker();
      ctx.out.lines(`breaker of ${l.name} reset: now ${l.snapshot().breaker}`);
    },
  },
  {
    name: 'retry reset', usage: 'retry reset [uplink]', summary: 'retry dead-lettered tasks',
    run(ctx, args) {
      if (args[0] !== undefined && !lane(ctx, args[0])) return;
      const n = ctx.deps.view.store().retryReset(args[0]);
      ctx.deps.view.sweep();
      ctx.out.lines(`${n} failed task(s) reset and re-admitted`);
    },
  },
  {
    name: 'purge', usage: 'purge --older-than <age>', summary: 'delete delivered data, e.g. 7d',
    async run(ctx, args) {
      const d = args[0] === '--older-than' ? parseDuration(args[1] ?? '') : undefined;
      if (d === undefined || args.length !== 2) return ctx.out.lines('usage: purge --older-than <age>, e.g. 7d, 12h, 30m');
      ctx.out.lines(`purging delivered and dead-lettered data older than ${args[1]} ...`);
      await ctx.out.flushed();
      const r = ctx.deps.view.store().purge(d, ctx.deps.now());
      ctx.out.lines(`done: ${r.tasks} task(s), ${r.payloads} payload(s), ${r.events} event(s) purged`);
    },
  },
  { name: 'config show', usage: 'config show', summary: 'running config (no secrets)', run: (ctx) => ctx.out.lines(...configLines(ctx.deps.cfg)) },
  { name: 'passwd', usage: 'passwd', summary: 'change the console password', run: (ctx) => ctx.passwd() },
  {
    name: 'color', usage: 'color on|off', summary: 'ANSI colour (off by default)',
    run(ctx, args) {
      if (args[0] !== 'on' && args[0] !== 'off') return ctx.out.lines('color on or color off');
      ctx.setColor(args[0] === 'on');
      ctx.out.lines(`colour ${args[0]}`);
    },
  },
  { name: 'exit', usage: 'exit', summary: 'log out', run: () => {} },
];

/** The command a line names (two-word names first) and its arguments; null when none. */
export function parseCommand(line: string): { cmd: ConsoleCommand; args: string[] } | null {
  const words = line.trim().split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) return null;
  const two = `${words[0]} ${words[1] ?? ''}`;
  const cmd = CONSOLE_COMMANDS.find((c) => c.name === two) ?? CONSOLE_COMMANDS.find((c) => c.name === words[0]);
  if (!cmd) return null;
  return { cmd, args: words.slice(cmd.name.split(' ').length) };
}
