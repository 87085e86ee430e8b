/**
 * IEEE 2030.5 (SEP 2.0) uplink driver: mirrors each field device as a MirrorUsagePoint (MUP) on a
 * 2030.5 server and posts its readings as MirrorMeterReadings (MMR), over HTTPS with a client
 * certificate (node:https, one keep-alive connection, TLS 1.2 by default as the standard requires;
 * its suite ECDHE-ECDSA-AES128-CCM8 is chosen with `ciphers` and needs ECDSA certificates).
 *
 * connect(): GET dcapPath -> DeviceCapability.MirrorUsagePointListLink -> GET the list (paged with
 *   s/l): each MUP's mRID -> href and postRate, and the list's pollRate.
 * send(batch): readings grouped by point and mapped by units.ts. What cannot be posted (a unit
 *   2030.5 cannot express, a non-number, a value outside Int48...) is skipped; once the batch is
 *   delivered, the skips are counted in `stats` and told to `onSkipped` by device, point and
 *   reason (the agent counts, records and logs them). The device's MUP is found by its stable
 *   mRID or created (POST to the list, 2xx + Location). Then one POST per point to the MUP: an MMR
 *   with its ReadingType and one Reading, or a MirrorReadingSet for several (an MMR holds at most
 *   one Reading). timePeriod.start is the ORIGINAL reading time in seconds (TimeType).
 *   2xx is success. A 404 on an MMR means the MUP vanished: it is re-created and that POST retried
 *   once within the same send. Other statuses -> RawFailure kind 'http' with the status and
 *   retryAfterMs (Retry-After as seconds or HTTP date, else an Error body's maxRetryDuration), so
 *   classify.ts makes 5xx/429 soft, 400 payload-hard, 401/403 link-hard. Certificate refusals on
 *   either side and a handshake without a shared suite are kind 'tls'; other socket errors
 *   'socket'; no answer within timeoutMs 'timeout': those three drop the link (onDown, once).
 *   A batch that is not a JSON array is reported as kind 'unreadable' (PAYLOAD_UNREADABLE, payload, hard), never sent; a batch
 *   whose readings are all skipped succeeds with nothing posted.
 * Retries of a partly posted batch re-post the same mRIDs (MMR per device/point, reading set per
 *   batch key), so a server can recognise duplicates; delivery is at-least-once anyway.
 * postRate (the server's preferred posting interval): `minIntervalMs` is the largest seen; each
 *   success carries `notBefore` = ack time + that MUP's postRate. The lane then serves that device
 *   through its pacer (agent/forward/pacer.ts): one post per postRate with every reading waiting merged.
 */
import https from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { readSmallFile } from '../files.js';
import type { SecureVersion } from 'node:tls';
import { TLS_CERT_CODES, type RawFailure } from '../uplink.js';
import type { ConnectResult, OutboundMessage, SendResult, UplinkDriver } from '../uplink.js';
import { checkPen, identityOf, stableMrid, type DeviceIdentity } from './identity.js';
import {
  parseXml, readDeviceCapability, readError, readMirrorUsagePointList, SEP2_MEDIA_TYPE, textOf, truncateUtf8,
  writeMirrorMeterReading, writeMirrorUsagePoint, type MmrSpec,
} from './xml.js';
import { mapReadings, readingTypeFor, SKIP_REASONS, type PointReadings, type PointSkip, type SkipReason } from './units.js';
import { clampDelay } from '../timer.js';

export interface Sep2DriverOptions {
  name: string;
  url: string; // https://host:port
  dcapPath?: string; // default /dcap
  certFile: string; keyFile: string; caFile: string;
  /** OpenSSL cipher list, e.g. 'ECDHE-ECDSA-AES128-CCM8' (the suite IEEE 2030.5 requires). */
  ciphers?: string;
  /** Both default TLSv1.2, the version 2030.5 specifies (TLS 1.3 would bypass a 1.2 cipher list). */
  minVersion?: SecureVersion; maxVersion?: SecureVersion;
  /** IANA Private Enterprise Number in the mRIDs' low 32 bits; default 0 = unregistered. */
  pen?: number;
  gatewayId: string;
  timeoutMs: number;
  roleFlags?: number; // default 0x41 = isMirror | isSubmeter
  /** device -> LFDI of the mirrored device; default the gateway's own (field devices have no cert). */
  deviceLfdi?: Readonly<Record<string, string>>;
  postRateS?: number; // proposed when creating a MUP; the server may change it
  /**
   * Readings of a delivered batch that were not posted, by point and reason: told once per
   * delivered batch (never for a failed attempt, whose batch comes again). A throw is ignored.
   */
  onSkipped?: (e: SkippedReadings) => void;
  now?: () => number;
}

/** The skipped readings of one delivered batch. */
export interface SkippedReadings { uplink: string; taskId: number; key: string; device: string; skipped: PointSkip[] }


type Http = { ok: true; status: number; headers: IncomingHttpHeaders; body: string } | { ok: false; failure: RawFailure };
interface Mup { href: string; postRate?: number }

const MAX_BODY = 1 << 20;
const LIST_LIMIT = 100;
/** Certificate and handshake refusals (ours or the server's); other ERR_SSL_* stay socket errors. */
const TLS_REFUSAL = /CERT|SELF_SIGNED|ALTNAME|UNABLE_TO_(GET|VERIFY)|ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|HANDSHAKE_FAILURE|INSUFFICIENT_SECURITY)|NO_SHARED_CIPHER|NO_CIPHERS/;
/** The same refusals as OpenSSL alert texts: node reports a received alert as EPROTO plus text. */
const TLS_ALERT_TEXT = /alert (unknown ca|bad certificate|unsupported certificate|certificate \w+|access denied|handshake failure|insufficient security)|no shared cipher/i;

/** What we say when we refuse the server's certificate, by Node's code. */
const SERVER_CERT_REFUSED: [RegExp, string][] = [
  [/SELF_SIGNED/, 'it is not signed by a CA in caFile (self-signed, or its chain ends at a CA we do not trust)'],
  [/UNABLE_TO_(GET_ISSUER|VERIFY_LEAF)/, 'its issuer is not in caFile'],
  [/CERT_HAS_EXPIRED/, 'it has expired'],
  [/CERT_NOT_YET_VALID/, 'it is not valid yet (check the gateway clock)'],
  [/ALTNAME/, 'it does not name the host in the uplink url'],
];

/**
 * A TLS refusal as an operator sentence: which side refused which certificate, then the library's
 * own words in brackets. An alert we received means the server refused ours; a verification code
 * means we refused the server's.
 */
export function tlsSentence(code: string, message: string): string {
  const alert = TLS_ALERT_TEXT.exec(message) ?? /ALERT_([A-Z_]+)/.exec(code);
  if (alert) {
    const what = (alert[1] ?? alert[0]).toLowerCase().replace(/_/g, ' ');
    return `the IEEE 2030.5 server refused our client certificate (certFile) with "${what}": is it signed by a CA the server trusts, and registered with the server? (${message})`;
  }
  const why = SERVER_CERT_REFUSED.find(([re]) => re.test(code))?.[1] ?? 'it did not verify';
  return `we refused the IEEE 2030.5 server's certificate: ${why} (${code}: ${message})`;
}

export function rawOfError(e: Error & { code?: unknown }): RawFailure {
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code && (TLS_CERT_CODES.includes(code) || TLS_REFUSAL.test(code))) return { kind: 'tls', code, message: tlsSentence(code, e.message) };
  if (code === 'EPROTO' && TLS_ALERT_TEXT.test(e.message)) return { kind: 'tls', code, message: tlsSentence(code, e.message) };
  if (code === 'ETIMEDOUT') return { kind: 'timeout', code, message: e.message };
  return code ? { kind: 'socket', code, message: e.message } : { kind: 'socket', message: e.message };
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(v: string | string[] | undefined, now: number): number | undefined {
  const s = (Array.isArray(v) ? v[0] : v)?.trim();
  if (s && /^\d+$/.test(s)) return Number(s) * 1000;
  const t = s ? Date.parse(s) : NaN;
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** The batch's rows, or null when it is not a JSON array. */
function parseBatch(readings: Buffer): unknown[] | null {
  let rows: unknown = null;
  try { rows = JSON.parse(readings.toString('utf8')); } catch { /* null */ }
  return Array.isArray(rows) ? rows : null;
}

export class Sep2Driver implements UplinkDriver {
  readonly name: string;
  readonly sendWindow = 1;
  readonly stats = { requests: 0, postedReadings: 0, mupCreated: 0, mupRecreated: 0,
    /** Readings of delivered batches left out, by reason. */
    skipped: Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number> };
  /** The MirrorUsagePointList's pollRate in seconds (default 900). */
  pollRateS = 900;
  private agent: https.Agent | null = null;
  private up = false;
  private downCb: ((f: RawFailure) => void) | null = null;
  private readonly base: URL;
  private readonly pen: number;
  private readonly now: () => number;
  private me: DeviceIdentity | null = null;
  private listUrl: URL | null = null;
  private readonly mups = new Map<string, Mup>();
  private maxPostRateS = 0;

  constructor(private readonly opts: Sep2DriverOptions) {
    this.name = opts.name;
    this.base = new URL(opts.url);
    if (this.base.protocol !== 'https:') throw new RangeError(`2030.5 needs an https:// URL, got ${opts.url}`);
    this.pen = checkPen(opts.pen ?? 0);
    this.now = opts.now ?? Date.now;
  }

  get connected(): boolean { return this.up; }
  /** The server's postRate in ms (largest seen); 0 when it gave none. */
  get minIntervalMs(): number { return this.maxPostRateS * 1000; }
  /** This gateway's LFDI/SFDI, from its certificate (after connect). */
  get identity(): DeviceIdentity | null { return this.me; }
  onDown(cb: (f: RawFailure) => void): void { this.downCb = cb; }
  async close(): Promise<void> { this.drop(); }

  async connect(): Promise<ConnectResult> {
    this.drop();
    const fail = (failure: RawFailure): ConnectResult => (this.drop(), { ok: false, failure });
    // Read at each connect (a renewed certificate is picked up); a missing file is a failed connect with its code.
    const files = [readSmallFile(this.opts.certFile), readSmallFile(this.opts.keyFile, { secret: true }), readSmallFile(this.opts.caFile)];
    const bad = files.find((f) => !f.ok);
    if (bad && !bad.ok) return fail({ kind: 'file', code: bad.code, message: bad.message });
    const [cert, key, ca] = files.map((f) => (f.ok ? f.data : Buffer.alloc(0)));
    try {
      this.me = identityOf(cert);
    } catch (e) {
      const err = e as Error & { code?: unknown };
      return fail({ kind: 'tls', code: typeof err.code === 'string' ? err.code : 'CERT_UNREADABLE', message: `client certificate, key or CA unreadable: ${err.message}` });
    }
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 1, cert, key, ca, ciphers: this.opts.ciphers, rejectUnauthorized: true,
      minVersion: this.opts.minVersion ?? 'TLSv1.2', maxVersion: this.opts.maxVersion ?? 'TLSv1.2' });
    const dcapUrl = new URL(this.opts.dcapPath ?? '/dcap', this.base);
    const dcap = await this.request('GET', dcapUrl);
    if (!dcap.ok || dcap.status !== 200) return fail(dcap.ok ? this.httpFailure('GET', dcapUrl, dcap) : dcap.failure);
    try {
      const href = readDeviceCapability(dcap.body).mirrorUsagePointListHref;
      if (!href) return fail({ kind: 'http', message: 'DeviceCapability has no MirrorUsagePointListLink: the server offers no metering mirror' });
      this.listUrl = new URL(href, dcapUrl);
    } catch (e) {
      return fail({ kind: 'http', message: `unreadable DeviceCapability: ${(e as Error).message}` });
    }
    for (let start = 0, page = 0; page < 100; page++) {
      const url = new URL(this.listUrl);
      url.searchParams.set('s', String(start));
      url.searchParams.set('l', String(LIST_LIMIT));
      const r = await this.request('GET', url);
      if (!r.ok || r.status !== 200) return fail(r.ok ? this.httpFailure('GET', url, r) : r.failure);
      let list: ReturnType<typeof readMirrorUsagePointList>;
      try { list = readMirrorUsagePointList(r.body); } catch (e) { return fail({ kind: 'http', message: `unreadable MirrorUsagePointList: ${(e as Error).message}` }); }
      this.pollRateS = list.pollRate;
      for (const m of list.items) if (m.mRID && m.href) this.remember(m.mRID, { href: new URL(m.href, url).href, postRate: m.postRate });
      start += list.items.length;
      if (list.items.length === 0 || start >= list.all) break;
    }
    this.up = true;
    return { ok: true };
  }

  async send(msg: OutboundMessage): Promise<SendResult> {
    const requestAt = this.now();
    const fail = (failure: RawFailure): SendResult => ({ ok: false, requestAt, failure });
    if (!this.up || !this.listUrl) return fail({ kind: 'socket', message: 'not connected' });
    const rows = parseBatch(msg.readings);
    if (!rows) return fail({ kind: 'unreadable', message: 'stored batch is not a JSON array of readings; not sent' });
    const { device, key } = msg;
    const id = (...parts: string[]) => stableMrid(this.pen, this.opts.gatewayId, ...parts);
    const mupMrid = id('mup', device);
    const mapped = mapReadings(rows);
    const mmrs = mapped.points.map((g): MmrSpec & { g: PointReadings } => ({
      g, mRID: id('mmr', device, g.point), description: truncateUtf8(g.point), readingType: readingTypeFor(g),
    }));
    if (mmrs.length === 0) return this.delivered(msg, mapped.skipped, { ok: true, requestAt, ackAt: this.now() }); // every reading skipped
    let mup = this.mups.get(mupMrid);
    let recreated = false;
    for (const m of mmrs) {
      const rs = m.g.readings;
      const body = writeMirrorMeterReading({ mRID: m.mRID, description: m.description, readingType: m.readingType,
        ...(rs.length === 1 ? { reading: rs[0] }
          : { sets: [{ mRID: id('set', device, m.g.point, key), start: rs[0].start, duration: rs[rs.length - 1].start - rs[0].start, readings: rs }] }) });
      for (;;) {
        if (!mup) {
          const made = await this.createMup(device, mupMrid, mmrs);
          if ('failure' in made) return fail(made.failure);
          mup = made;
        }
        const url = new URL(mup.href);
        const r = await this.request('POST', url, body);
        if (!r.ok) return fail(r.failure);
        if (r.status >= 200 && r.status < 300) break;
        if (r.status !== 404 || recreated) return fail(this.httpFailure('POST', url, r));
        recreated = true; // the MUP vanished: create it again, post this MMR once more
        this.mups.delete(mupMrid);
        mup = undefined;
        this.stats.mupRecreated++;
      }
      this.stats.postedReadings += rs.length;
    }
    const ackAt = this.now();
    const rate = mup?.postRate ?? this.maxPostRateS;
    return this.delivered(msg, mapped.skipped, rate > 0 ? { ok: true, requestAt, ackAt, notBefore: ackAt + rate * 1000 } : { ok: true, requestAt, ackAt });
  }

  /** A delivered batch: its skipped readings counted and told. */
  private delivered(msg: OutboundMessage, skipped: PointSkip[], r: SendResult): SendResult {
    if (skipped.length === 0) return r;
    for (const s of skipped) this.stats.skipped[s.reason] += s.readings;
    try {
      this.opts.onSkipped?.({ uplink: this.name, taskId: msg.taskId, key: msg.key, device: msg.device, skipped });
    } catch {
      /* a hook's failure must not turn a delivered batch into a failed send */
    }
    return r;
  }

  private remember(mrid: string, m: Mup): void {
    this.mups.set(mrid.toUpperCase(), m);
    if (m.postRate !== undefined && m.postRate > this.maxPostRateS) this.maxPostRateS = m.postRate;
  }

  /** POSTs the device's MUP (with the batch's MMRs and ReadingTypes); GETs it back for its postRate. */
  private async createMup(device: string, mRID: string, mmrs: MmrSpec[]): Promise<Mup | { failure: RawFailure }> {
    const url = this.listUrl as URL;
    const r = await this.request('POST', url, writeMirrorUsagePoint({
      mRID, description: truncateUtf8(device), roleFlags: this.opts.roleFlags ?? 0x41, serviceCategoryKind: 0, status: 1,
      deviceLFDI: this.opts.deviceLfdi?.[device] ?? (this.me as DeviceIdentity).lfdi,
      mmrs: mmrs.map((m) => ({ mRID: m.mRID, description: m.description, readingType: m.readingType })), postRate: this.opts.postRateS,
    }));
    if (!r.ok) return { failure: r.failure };
    if (r.status < 200 || r.status >= 300) return { failure: this.httpFailure('POST', url, r) };
    const loc = r.headers.location;
    if (!loc) return { failure: { kind: 'http', message: `POST ${url.pathname}: HTTP ${r.status} without a Location for the MirrorUsagePoint` } };
    const mup: Mup = { href: new URL(loc, url).href };
    this.stats.mupCreated++;
    const got = await this.request('GET', new URL(mup.href));
    try {
      const rate = got.ok && got.status === 200 ? textOf(parseXml(got.body), 'postRate') : undefined;
      if (rate && /^\d+$/.test(rate)) mup.postRate = Number(rate);
    } catch { /* the MUP exists; its postRate is only a hint */ }
    this.remember(mRID, mup);
    return mup;
  }

  private httpFailure(method: string, url: URL, r: Extract<Http, { ok: true }>): RawFailure {
    const err = readError(r.body);
    const reason = err?.reasonCode !== undefined ? ` (reasonCode ${err.reasonCode})` : '';
    const f: RawFailure = { kind: 'http', code: r.status, message: `${method} ${url.pathname}: HTTP ${r.status}${reason}` };
    const hint = parseRetryAfter(r.headers['retry-after'], this.now()) ?? (err?.maxRetryDuration !== undefined ? err.maxRetryDuration * 1000 : undefined);
    if (hint !== undefined) f.retryAfterMs = hint;
    return f;
  }

  private drop(): void {
    this.up = false;
    this.agent?.destroy();
    this.agent = null;
  }

  /** One HTTP exchange; a link-level failure while up drops the link (onDown). A reused keep-alive
   *  socket that the server had closed meanwhile is retried once, as node's docs advise. */
  private request(method: 'GET' | 'POST', url: URL, body?: string, retried = false): Promise<Http> {
    const agent = this.agent;
    if (!agent) return Promise.resolve({ ok: false, failure: { kind: 'socket', message: 'not connected' } });
    this.stats.requests++;
    return new Promise<Http>((resolve) => {
      let done = false;
      const finish = (r: Http | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (r === null) return void this.request(method, url, body, true).then(resolve);
        if (!r.ok && this.up) { this.drop(); this.downCb?.(r.failure); }
        resolve(r);
      };
      const headers: OutgoingHttpHeaders = { Accept: SEP2_MEDIA_TYPE };
      if (body !== undefined) Object.assign(headers, { 'Content-Type': SEP2_MEDIA_TYPE, 'Content-Length': Buffer.byteLength(body) });
      const req = https.request(url, { method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => { if ((size += c.length) <= MAX_BODY) chunks.push(c); });
        res.on('end', () => finish({ ok: true, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => finish({ ok: false, failure: rawOfError(e) }));
      });
      const timer = setTimeout(() => {
        finish({ ok: false, failure: { kind: 'timeout', code: 'ETIMEDOUT', message: `${method} ${url.pathname}: no answer within ${this.opts.timeoutMs} ms` } });
        req.destroy();
      }, clampDelay(this.opts.timeoutMs));
      req.on('error', (e: Error & { code?: unknown }) =>
        finish(!retried && req.reusedSocket && e.code === 'ECONNRESET' ? null : { ok: false, failure: rawOfError(e) }));
      req.end(body);
    });
  }
}
