/**
 * The HTTPS side of the IEEE 2030.5 uplink (client.ts holds the 2030.5 resources): the client
 * certificate, key and CA read at each connect, one keep-alive connection with a client
 * certificate (node:https, TLS 1.2 by default as the standard requires; its suite
 * ECDHE-ECDSA-AES128-CCM8 is chosen with `ciphers` and needs ECDSA certificates), and one
 * exchange at a time with a timeout. Failures come back as RawFailures: certificate refusals on
 * either side and a handshake without a shared suite are kind 'tls', with a sentence that says
 * which side refused what; other socket errors 'socket'; no answer within timeoutMs 'timeout'.
 */
import https from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { SecureVersion } from 'node:tls';
import { readSmallFile } from '../files.js';
import { TLS_CERT_CODES, type RawFailure } from '../uplink.js';
import { clampDelay } from '../timer.js';
import { SEP2_MEDIA_TYPE } from './xml.js';

/** One exchange: the server's answer (any status), or why there was none. */
export type Http = { ok: true; status: number; headers: IncomingHttpHeaders; body: string } | { ok: false; failure: RawFailure };

const MAX_BODY = 1 << 20;
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

export interface TlsFiles { certFile: string; keyFile: string; caFile: string }
export interface TlsPem { cert: Buffer; key: Buffer; ca: Buffer }
export interface TlsVersions {
  /** OpenSSL cipher list, e.g. 'ECDHE-ECDSA-AES128-CCM8' (the suite IEEE 2030.5 requires). */
  ciphers?: string;
  /** Both default TLSv1.2, the version 2030.5 specifies (TLS 1.3 would bypass a 1.2 cipher list). */
  minVersion?: SecureVersion; maxVersion?: SecureVersion;
}

/** Reads the certificate, key (a secret) and CA now; a missing or unsafe file is a failure kind 'file' with its code. */
export function readTlsFiles(f: TlsFiles): TlsPem | { failure: RawFailure } {
  const files = [readSmallFile(f.certFile), readSmallFile(f.keyFile, { secret: true }), readSmallFile(f.caFile)];
  const bad = files.find((x) => !x.ok);
  if (bad && !bad.ok) return { failure: { kind: 'file', code: bad.code, message: bad.message } };
  const [cert, key, ca] = files.map((x) => (x.ok ? x.data : Buffer.alloc(0)));
  return { cert, key, ca };
}

export interface TransportOptions {
  timeoutMs: number;
  /** Each exchange started on an open connection (a retry of a reused socket counts again). */
  onRequest: () => void;
  /** An exchange that failed below HTTP (tls, socket, timeout), before its caller hears of it. */
  onFailure: (f: RawFailure) => void;
}

export class HttpsTransport {
  private agent: https.Agent | null = null;

  constructor(private readonly o: TransportOptions) {}

  /** Opens (again) with these credentials: one keep-alive socket, the server's certificate verified. */
  open(pem: TlsPem, tls: TlsVersions): void {
    this.close();
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 1, cert: pem.cert, key: pem.key, ca: pem.ca, ciphers: tls.ciphers, rejectUnauthorized: true,
      minVersion: tls.minVersion ?? 'TLSv1.2', maxVersion: tls.maxVersion ?? 'TLSv1.2' });
  }

  close(): void {
    this.agent?.destroy();
    this.agent = null;
  }

  /** One HTTP exchange. A reused keep-alive socket that the server had closed meanwhile is
   *  retried once, as node's docs advise. */
  request(method: 'GET' | 'POST', url: URL, body?: string, retried = false): Promise<Http> {
    const agent = this.agent;
    if (!agent) return Promise.resolve({ ok: false, failure: { kind: 'socket', message: 'not connected' } });
    this.o.onRequest();
    return new Promise<Http>((resolve) => {
      let done = false;
      const finish = (r: Http | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (r === null) return void this.request(method, url, body, true).then(resolve);
        if (!r.ok) this.o.onFailure(r.failure);
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
        finish({ ok: false, failure: { kind: 'timeout', code: 'ETIMEDOUT', message: `${method} ${url.pathname}: no answer within ${this.o.timeoutMs} ms` } });
        req.destroy();
      }, clampDelay(this.o.timeoutMs));
      req.on('error', (e: Error & { code?: unknown }) =>
        finish(!retried && req.reusedSocket && e.code === 'ECONNRESET' ? null : { ok: false, failure: rawOfError(e) }));
      req.end(body);
    });
  }
}
