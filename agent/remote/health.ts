/**
 * The health check after a switch, as pure functions: which uplinks must connect and which
 * devices must answer, and whether they have. A config must not make things worse: an uplink or
 * device that was already failing under the old config at the moment of the switch is not
 * required (an OTLP collector that is down must not veto every config), but the remote channel's
 * own uplink always is (a config that cuts it off could never be corrected), and so is anything
 * the new config adds.
 */
import type { Config } from '../config/types.js';

export interface Observed {
  /** Enabled uplinks that are connected now. */
  connected: ReadonlySet<string>;
  /** Devices (simulated sources and field devices) that delivered readings since their engine started. */
  answered: ReadonlySet<string>;
}

export interface Required {
  uplinks: string[];
  devices: string[];
}

/** Device names of a config: field devices, and simulated sources that run on (one with stopAfter may be done). */
export function devicesOf(cfg: Config): string[] {
  return [...cfg.sources.filter((s) => s.stopAfter === undefined).map((s) => s.device), ...cfg.buses.flatMap((b) => b.devices.map((d) => d.name))];
}

/** What the new config must show, given what worked under the old one when it was stopped. */
export function required(next: Config, prev: Config, before: Observed, remoteUplink: string): Required {
  const prevUplinks = new Set(prev.uplinks.filter((u) => u.enabled).map((u) => u.name));
  const uplinks = next.uplinks
    .filter((u) => u.enabled)
    .map((u) => u.name)
    .filter((n) => n === remoteUplink || !prevUplinks.has(n) || before.connected.has(n));
  const prevDevices = new Set(devicesOf(prev));
  const devices = devicesOf(next).filter((d) => !prevDevices.has(d) || before.answered.has(d));
  return { uplinks, devices };
}

/** What is still missing ([] = healthy), as words for the ack and the log. */
export function missing(req: Required, now: Observed): string[] {
  return [
    ...req.uplinks.filter((u) => !now.connected.has(u)).map((u) => `uplink ${u} not connected`),
    ...req.devices.filter((d) => !now.answered.has(d)).map((d) => `device ${d} not answering`),
  ];
}
