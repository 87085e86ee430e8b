/**
 * IEEE 2030.5 (SEP 2.0) uplink driver: mirrors each field device as a MirrorUsagePoint (MUP) on a
 * 2030.5 server and posts its readings as MirrorMeterReadings (MMR), over HTTPS with a client
 * certificate (transport.ts: the TLS connection, its exchanges and how their failures are told).
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
 *   classify.ts makes 5xx/429 soft, 400 payload-hard, 401/403 link-hard. A failure below HTTP
 *   (kind 'tls', 'socket' or 'timeout', see transport.ts) drops the link (onDown, once).
 *   A batch that is not a JSON array is reported as kind 'unreadable' (PAYLOAD_UNREADABLE, payload, hard), never sent; a batch
 *   whose readings are all skipped succeeds with nothing posted.
 * Retries of a partly posted batch re-post the same mRIDs (MMR per device/point, reading set per
 *   batch key), so a server can recognise duplicates; delivery is at-least-once anyway.
 * postRate (the server's preferred posting interval): `minIntervalMs` is the largest seen; each
 *   success carries `notBefore` = ack time + that MUP's postRate. The lane then serves that device
 *   through its pacer (agent/forward/pacer.ts): one post per postRate with every reading waiting merged.
 */
import type { ConnectResult, OutboundMessage, RawFailure, SendResult, UplinkDriver } from '../uplink.js';
import { checkPen, identityOf, stableMrid, type DeviceIdentity } from './identity.js';
import {
  parseXml, readDeviceCapability, readError, readMirrorUsagePointList, textOf, truncateUtf8,
  writeMirrorMeterReading, writeMirrorUsagePoint, type MmrSpec,
} from './xml.js';
import { mapReadings, readingTypeFor, SKIP_REASONS, type PointReadings, type PointSkip, type SkipReason } from './units.js';
import { HttpsTransport, parseRetryAfter, readTlsFiles, type Http, type TlsFiles, type TlsVersions } from './transport.js';

// Part of this module's interface before the transport had a file of its own.
export { parseRetryAfter } from './transport.js';

export interface Sep2DriverOptions extends TlsFiles, TlsVersions {
  name: string;
  url: string; // https://host:port
  dcapPath?: string; // default /dcap
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

interface Mup { href: string; postRate?: number }

const LIST_LIMIT = 100;

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
  private readonly http: HttpsTransport;
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
    this.http = new HttpsTransport({
      timeoutMs: opts.timeoutMs,
      onRequest: () => { this.stats.requests++; },
      // A link-level failure while up drops the link.
      onFailure: (f) => { if (this.up) { this.drop(); this.downCb?.(f); } },
    });
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
    const pem = readTlsFiles(this.opts);
    if ('failure' in pem) return fail(pem.failure);
    try {
      this.me = identityOf(pem.cert);
    } catch (e) {
      const err = e as Error & { code?: unknown };
      return fail({ kind: 'tls', code: typeof err.code === 'string' ? err.code : 'CERT_UNREADABLE', message: `client certificate, key or CA unreadable: ${err.message}` });
    }
    this.http.open(pem, this.opts);
    const dcapUrl = new URL(this.opts.dcapPath ?? '/dcap', this.base);
    const dcap = await this.http.request('GET', dcapUrl);
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
      const r = await this.http.request('GET', url);
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
        const r = await this.http.request('POST', url, body);
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
    const r = await this.http.request('POST', url, writeMirrorUsagePoint({
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
    const got = await this.http.request('GET', new URL(mup.href));
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
    this.http.close();
  }
}

