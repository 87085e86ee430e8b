/**
 * The telemetry message: `{key, seq, gatewayId, device, historical, readings}`, plus
 * `part`/`parts` when one batch had to be split to fit the packet size. The readings array is
 * spliced in as the stored text, so the common case never re-serialises a reading.
 */
import type { OutboundMessage } from '../uplink.js';

function head(m: OutboundMessage, gatewayId: string, part?: number, parts?: number): string {
  const p = parts !== undefined && parts > 1 ? `,"part":${part},"parts":${parts}` : '';
  return `{"key":${JSON.stringify(m.key)},"seq":${m.seq},"gatewayId":${JSON.stringify(gatewayId)},"device":${JSON.stringify(m.device)},"historical":${m.historical}${p},"readings":`;
}

/**
 * The payload(s) for one batch, each at most maxBytes long; null if a single reading cannot fit.
 * Parts are numbered from 1.
 */
export function envelopes(m: OutboundMessage, gatewayId: string, maxBytes: number): string[] | null {
  const whole = `${head(m, gatewayId)}${m.readingsJson}}`;
  if (Buffer.byteLength(whole) <= maxBytes) return [whole];
  const readings = (JSON.parse(m.readingsJson) as unknown[]).map((r) => JSON.stringify(r));
  // Reserve room for the largest header a part can have (part/parts up to 6 digits each).
  const room = maxBytes - Buffer.byteLength(head(m, gatewayId, 999999, 999999)) - 2;
  const chunks: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const r of readings) {
    const n = Buffer.byteLength(r) + 1;
    if (n > room) return null;
    if (size + n > room && cur.length > 0) {
      chunks.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(r);
    size += n;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks.map((c, i) => `${head(m, gatewayId, i + 1, chunks.length)}[${c.join(',')}]}`);
}
