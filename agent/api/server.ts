/**
 * The gateway's one small HTTP server: `/metrics` (Prometheus), `/healthz` (alive), `/readyz`
 * (store writable, at least one uplink configured) and the local admin API the operators' tools
 * call: `GET /api/status`, `POST /api/breakers/<uplink>/reset`, `POST /api/retry/reset`.
 *
 * It binds to 127.0.0.1 unless told otherwise; a non-loopback bind needs an explicit CIDR
 * allow-list (checked at config validation), and a client outside it gets 403 on every route.
 * Admin routes need `Authorization: Bearer <token>` with the token from a file of mode 0600;
 * a missing token is 401, a wrong one 403, compared in constant time, and neither says why.
 */
import type { Guard } from '../guard.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Metrics } from './metrics.js';

export interface ApiHandlers {
  status(): unknown;
  ready(): { ok: boolean; why?: string };
  resetBreaker(uplink: string): boolean;
  resetRetries(uplink?: string): number;
}

export interface ApiOptions {
  listen: string;
  port: number;
  allow: readonly string[];
  token: string | null;
}

/** Parses "10.0.0.0/8" / "::1/128" into a matcher. */
export function cidrMatcher(cidrs: readonly string[]): (addr: string) => boolean {
  const nets = cidrs.map((c) => {
    const [ip, bitsText] = c.split('/');
    const v = isIP(ip);
    const bits = bitsText === undefined ? (v === 6 ? 128 : 32) : Number(bitsText);
    return { v, bytes: toBytes(ip), bits };
  });
  return (addr: string) => {
    const a = addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
    const v = isIP(a);
    const bytes = toBytes(a);
    return nets.some((n) => n.v === v && prefixEqual(bytes, n.bytes, n.bits));
  };
}

function toBytes(ip: string): number[] {
  if (isIP(ip) === 4) return ip.split('.').map(Number);
  const [head, tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const tl = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
  return groups.flatMap((g) => {
    const n = parseInt(g || '0', 16);
    return [n >> 8, n & 0xff];
  });
}

function prefixEqual(a: number[], b: number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if ((a[byte] & mask) !== (b[byte] & mask)) return false;
  }
  return true;
}

function send(res: ServerResponse, code: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}

export class ApiServer {
  private server: Server | null = null;
  private readonly allowed: (addr: string) => boolean;

  constructor(
    private readonly opts: ApiOptions,
    private readonly metrics: Metrics,
    private readonly h: ApiHandlers,
    /** A request that fails is a 500 and a report, never a crash. */
    private readonly guard: Guard,
  ) {
    this.allowed = cidrMatcher(opts.allow.length > 0 ? opts.allow : ['127.0.0.0/8', '::1/128']);
  }

  async start(): Promise<number> {
    const server = createServer((req, res) => {
      void this.guard.runAsync('api.request', () => this.route(req, res), () => {
        if (!res.headersSent) send(res, 500, { error: 'internal' });
        else res.destroy();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.listen, () => resolve());
    });
    const a = server.address();
    return typeof a === 'object' && a ? a.port : this.opts.port;
  }

  private authorized(req: IncomingMessage): 401 | 403 | null {
    const token = this.opts.token;
    const h = req.headers.authorization;
    if (!h || !h.startsWith('Bearer ')) return 401;
    if (token === null) return 403;
    const got = Buffer.from(h.slice(7));
    const want = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want) ? null : 403;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.allowed(req.socket.remoteAddress ?? '')) return send(res, 403, { error: 'forbidden' });
    const url = new URL(req.url ?? '/', 'http://local');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/metrics') return send(res, 200, await this.metrics.text(), this.metrics.contentType);
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, { ok: true });
    if (req.method === 'GET' && path === '/readyz') {
      const r = this.h.ready();
      return send(res, r.ok ? 200 : 503, r);
    }
    if (!path.startsWith('/api/')) return send(res, 404, { error: 'not found' });
    const denied = this.authorized(req);
    if (denied) return send(res, denied, { error: denied === 401 ? 'unauthorized' : 'forbidden' });
    if (req.method === 'GET' && path === '/api/status') return send(res, 200, this.h.status());
    const m = /^\/api\/breakers\/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\/reset$/.exec(path);
    if (req.method === 'POST' && m) {
      return this.h.resetBreaker(m[1]) ? send(res, 200, { reset: m[1] }) : send(res, 404, { error: 'no such uplink' });
    }
    if (req.method === 'POST' && path === '/api/retry/reset') {
      return send(res, 200, { reset: this.h.resetRetries(url.searchParams.get('uplink') ?? undefined) });
    }
    return send(res, 404, { error: 'not found' });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
