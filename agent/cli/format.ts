/** Human-readable `holdfast status`: one block per uplink, the worst news first in each line. */
import type { StoreStatus } from '../../store/admin.js';

function age(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

/** What a technician should look at first, by fault class. */
function hint(cls: string | null): string {
  switch (cls) {
    case 'physical': return '  -> wiring: cable, termination, bias, bus voltage';
    case 'device': return '  -> the device: power, address, its own diagnostics';
    case 'config': return '  -> the device map: address or function the device refuses';
    case 'network': return '  -> the network path to the device or gateway';
    case 'local': return '  -> this gateway: serial adapter, disk';
    default: return '';
  }
}

/** Readings delivered batches went without (events of the retention period), the most skipped first. */
function skippedLines(rows: StoreStatus['uplinks'][number]['skipped'], at: number, max = 8): string[] {
  if (rows.length === 0) return [];
  const total = rows.reduce((n, r) => n + r.readings, 0);
  const out = [`  skipped   ${String(total).padStart(27)} readings not posted (batches delivered without them)`];
  for (const r of rows.slice(0, max)) {
    out.push(`    ${String(r.readings).padStart(10)} ${r.device} ${r.point}: ${r.reason}${r.unit ? ` (unit '${r.unit}')` : ''}, last ${age(Math.max(0, at - r.lastAt))} ago`);
  }
  if (rows.length > max) out.push(`    ... ${rows.length - max} more (holdfast status --json)`);
  return out;
}

export function formatStatus(s: StoreStatus, gatewayId: string): string {
  const seg = s.segments ? `   segments ${s.segments.files} (${(s.segments.bytes / 1048576).toFixed(1)} MB)` : '';
  const out = [`gateway ${gatewayId}   batches stored ${s.payloads}${seg}   schema v${s.schemaVersion}`];
  for (const u of s.uplinks) {
    out.push('');
    out.push(`uplink ${u.uplink}: ${u.connected ? 'connected' : 'NOT CONNECTED'}, breaker ${u.breaker}`);
    out.push(`  pending   ${String(u.pending.tasks).padStart(8)} batches ${String(u.pending.readings).padStart(10)} readings   oldest ${age(u.oldestPendingAgeMs)}`);
    out.push(`  failed    ${String(u.failed.tasks).padStart(8)} batches ${String(u.failed.readings).padStart(10)} readings${u.failed.tasks > 0 ? '   (holdfast retry reset)' : ''}`);
    out.push(`  delivered ${String(u.delivered.tasks).padStart(8)} batches ${String(u.delivered.readings).padStart(10)} readings`);
    if (u.lastError) out.push(`  last error ${u.lastError.code}: ${u.lastError.message} (${age(s.at - u.lastError.at)} ago)`);
    out.push(...skippedLines(u.skipped ?? [], s.at));
  }
  for (const o of s.openOutages) out.push(`\nOUTAGE ${o.subject}: ${o.code ?? '?'} for ${age(s.at - o.since)}`);
  if (s.openFieldFaults.length > 0) {
    out.push('\nfield faults:');
    for (const f of s.openFieldFaults) out.push(`  ${(f.faultClass ?? '?').toUpperCase().padEnd(9)} ${f.subject}: ${f.code ?? '?'} for ${age(s.at - f.since)}${hint(f.faultClass)}`);
  }
  const k = s.clock;
  if (k.unsyncedSince !== null) out.push(`\nCLOCK NOT SYNCHRONISED (CLOCK_UNSYNCED) since ${new Date(k.unsyncedSince).toISOString()}: readings flagged clock=unsynced  -> check NTP`);
  if (k.lastStep) out.push(`${k.unsyncedSince === null ? '\n' : ''}clock: last step ${k.lastStep.stepMs > 0 ? '+' : '-'}${age(Math.abs(k.lastStep.stepMs))} (${age(Math.max(0, s.at - k.lastStep.at))} ago)`);
  const flagged = Object.entries(k.batches).map(([st, n]) => `${st} ${n.readings}`);
  if (flagged.length > 0) out.push(`readings stamped by an unsynchronised clock: ${flagged.join(', ')}`);
  const c = Object.entries(s.counters).filter(([, v]) => v > 0);
  if (c.length > 0) out.push(`\ncounters: ${c.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return out.join('\n');
}
