/**
 * The telemetry message: `{key, seq, gatewayId, device, historical, readings}`, plus
 * `part`/`parts` when one batch had to be split to fit the packet size. The readings array is
 * spliced in as the stored bytes (head + readings + `}` in one Buffer), so the common case never
 * re-serialises a reading nor turns ~50 KB of JSON into a JS string; only a batch that must be
 * split is parsed.
 */
import type { OutboundMessage } from '../uplink.js';

const TAIL = Buffer.from('}');

/** The message up to its readings array. */
function head(m: OutboundMessage, gatewayId: string, part?: number, parts?: number): string {
  const p = parts !== undefined && parts > 1 ? `,"part":${part},"parts":${parts}` : '';
  return `{"key":${JSON.stringify(m.key)},"seq":${m.seq},"gatewayId":${JSON.stringify(gatewayId)},"device":${JSON.stringify(m.device)},"historical":${m.historical}${p},"readings":`;
}

/**
 * The payload(s) for one batch, each at most maxBytes long; null if a single reading cannot fit.
 * Parts are numbered from 1.
 */
export function envelopes(m: OutboundMessage, gatewayId: string, maxBytes: number): Buffer[] | null {
  const body = m.readings;
  const h = head(m, gatewayId);
  const headBytes = Buffer.byteLength(h);
  if (headBytes + body.length + 1 <= maxBytes) {
    const out = Buffer.allocUnsafe(headBytes + body.length + 1);
    out.write(h, 0, 'utf8');
    body.copy(out, headBytes);
    out[out.length - 1] = TAIL[0];
    return [out];
  }
  const readings = (JSON.parse(body.toString('utf8')) as unknown[]).map((r) => JSON.stringify(r));
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
  return chunks.map((c, i) => Buffer.from(`${head(m, gatewayId, i + 1, chunks.length)}[${c.join(',')}]}`));
}
