/**
 * Where the verdicts' facts come from (agent/status/verdicts.ts): the running engine's
 * GatewayView (the console; the same view /metrics and the API read), or what `holdfast status`
 * finds next to a live or stopped agent (the store's status, the files, the board's sensors).
 * Two adapters, one ranking: the lines cannot drift apart.
 */
import type { GatewayView } from '../api/setup.js';
import type { Config } from '../config/types.js';
import type { StoreStatus } from '../../store/admin.js';
import type { StorageReport } from '../storage/status.js';
import { loadProfile } from '../config/formats.js';
import { BoardSensors } from '../../hardware/sensors.js';
import { Sysfs } from '../../hardware/sysfs.js';
import type { FieldFaultFact, UplinkFact, VerdictFacts } from './verdicts.js';

type Detail = FieldFaultFact['detail'];

function uplinkFacts(st: StoreStatus | null, live: Map<string, { connected: boolean; breaker: string }> | null, names: readonly string[]): UplinkFact[] {
  return names.map((name) => {
    const row = st?.uplinks.find((u) => u.uplink === name);
    const outage = st?.openOutages.find((o) => o.subject === name);
    const l = live?.get(name);
    return {
      name,
      connected: l?.connected ?? row?.connected ?? false,
      breaker: l?.breaker ?? row?.breaker ?? 'closed',
      downSince: outage?.since ?? null,
      code: outage?.code ?? row?.lastError?.code ?? null,
      pendingReadings: row?.pending.readings ?? 0,
    };
  });
}

/** The facts of the running gateway. A store that cannot answer leaves its part empty, never the rest. */
export function factsFromView(view: GatewayView, now: number): VerdictFacts {
  const lanes = view.lanes();
  const names = lanes.map((l) => l.name);
  let st: StoreStatus | null = null;
  try {
    st = view.store().status(now, names);
  } catch {
    st = null;
  }
  const state = view.storeState();
  const space = view.storage().space;
  const th = view.thermal();
  const live = new Map(lanes.map((l) => {
    const s = l.snapshot();
    return [l.name, { connected: s.connected, breaker: s.breaker }] as const;
  }));
  return {
    store: { available: state.available, spoolFiles: state.spool.files },
    space: space && { usedBytes: space.usedBytes, budgetBytes: space.budgetBytes, bound: space.bound, full: space.full, policy: space.policy },
    thermal: { tempC: th.tempC, throttled: th.factor < 1 },
    uplinks: uplinkFacts(st, live, names),
    faults: view.fieldFaults().map((v) => ({ scope: v.scope, bus: v.bus, device: v.device, code: v.code, faultClass: v.faultClass, detail: v.detail as Detail })),
  };
}

/** "bus", "bus/device" or "bus/device@address" (agent/acquisition/field.ts names subjects so). */
function splitSubject(s: string): { bus: string; device?: string } {
  const i = s.indexOf('/');
  if (i < 0) return { bus: s };
  return { bus: s.slice(0, i), device: s.slice(i + 1).replace(/@\d+$/, '') };
}

/** The CPU temperature as the board reports it now (the CLI has no running governor to ask). */
export async function boardTempC(cfg: Config): Promise<number | null> {
  try {
    return await new BoardSensors(loadProfile(cfg.hardware.profile), new Sysfs(cfg.hardware.sysfsRoot)).cpuTempC();
  } catch {
    return null;
  }
}

/** The facts `holdfast status` finds: `st` null when the database cannot be read. */
export function factsFromReport(cfg: Config, st: StoreStatus | null, storage: StorageReport | null, tempC: number | null): VerdictFacts {
  const names = cfg.uplinks.filter((u) => u.enabled).map((u) => u.name);
  return {
    store: { available: st !== null && (storage?.spool.files ?? 0) === 0, spoolFiles: storage?.spool.files ?? 0 },
    space: storage && { usedBytes: storage.usedBytes, budgetBytes: storage.budgetBytes, bound: storage.bound, full: storage.full, policy: storage.policy },
    thermal: { tempC, throttled: tempC !== null && tempC >= cfg.hardware.throttle.aboveC },
    uplinks: uplinkFacts(st, null, names),
    faults: (st?.openFieldFaults ?? []).map((f) => ({
      scope: f.scope, ...splitSubject(f.subject), code: f.code ?? '?', faultClass: f.faultClass ?? '?', detail: (f.detail ?? null) as Detail,
    })),
  };
}
