/**
 * The gateway's one small HTTP server: `/metrics` (Prometheus), `/healthz` (alive), `/readyz`
 * (store writable, at least one uplink configured) and the local admin API the operators' tools
 * call: `GET /api/status`, `POST /api/breakers/<uplink>/reset`, `POST /api/retry/reset`.
 *
 * It binds to 127.0.0.1 unless told otherwise; a non-loopback bind needs an explicit CIDR
 * allow-list (checked at config validation), and a client outside it gets 403 on every route.
 * Admin routes need `Authorization: Bearer <token>` with the token from a file of mode 0600;
 * a missing token is 401, a wrong one 403, compared in constant time, and neither says why.
 *
 * Slow clients cannot starve the agent of descriptors (issue 15): at most `maxConnections` are
 * open; a client must send its request head within `headersTimeoutMs` and a connection without a
 * request is closed after `idleTimeoutMs`. At the cap a new connection takes the slot of the
 * oldest one that has no request in progress (a slowloris socket, an idle keep-alive), so a
 * health probe gets through while slow clients hold every slot; only when none can be taken is
 * it refused. Node's own `server.maxConnections` refuses at accept and cannot do that.
 */
import type { Guard } from '../guard.js';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
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
  limits: ApiLimits;
}

/** `api.maxConnections`, `api.headersTimeoutMs`, `api.idleTimeoutMs` (defaults in the schema). */
export interface ApiLimits {
  maxConnections: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * A connection may be evicted once it is this old without a request in progress: the time a
 * client gets to send its request head before a newcomer may take its slot (a loop stalled by a
 * commit must not cost a probe its slot between accept and read).
 */
const EVICT_AFTER_MS = 500;

/** How often Node checks the header and request deadlines (its default, 30 s, would stretch them). */
const DEADLINE_CHECK_MS = 1000;

/** An open connection: when it was accepted (monotonic ms) and its requests not yet answered. */
interface Conn {
  openedAt: number;
  inFlight: number;
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
  /** Open connections, oldest first (a Map keeps insertion order). */
  private readonly conns = new Map<Socket, Conn>();

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
    const l = this.opts.limits;
    const server = createServer({
      headersTimeout: l.headersTimeoutMs,
      // The routes take no body: the whole request gets twice the time of its head.
      requestTimeout: 2 * l.headersTimeoutMs,
      keepAliveTimeout: l.idleTimeoutMs,
      connectionsCheckingInterval: DEADLINE_CHECK_MS,
    }, (req, res) => {
      const c = this.conns.get(req.socket as Socket);
      if (c) {
        c.inFlight++;
        res.once('close', () => c.inFlight--);
      }
      void this.guard.runAsync('api.request', () => this.route(req, res), () => {
        if (!res.headersSent) send(res, 500, { error: 'internal' });
        else res.destroy();
      });
    });
    // Before the first request (a client that sends nothing); keep-alive idles use keepAliveTimeout.
    server.timeout = l.idleTimeoutMs;
    server.on('connection', (socket: Socket) => this.admit(socket));
    server.on('timeout', (socket: Socket) => {
      // A request in progress is the handler's: it answers at once, and requestTimeout bounds the rest.
      if (this.conns.get(socket)?.inFlight) return;
      this.metrics.apiDropped.inc({ reason: 'idle' });
      socket.destroy();
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Node's own answer (which a listener replaces), counted: 408 when the head or the request
      // came too slowly, 431 for an oversized head, 400 otherwise.
      const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      if (timedOut) this.metrics.apiDropped.inc({ reason: 'timeout' });
      const code = timedOut ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      if (socket.writable && !this.conns.get(socket)?.inFlight) socket.write(`HTTP/1.1 ${code} ${STATUS_CODES[code]}\r\nConnection: close\r\n\r\n`);
      socket.destroy();
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.listen, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // After listen, an 'error' is a failed accept (libuv absorbs EMFILE itself when it can):
    // reported, never an unhandled 'error' event that ends the agent.
    server.on('error', (e) => this.guard.report('api.accept', e));
    const a = server.address();
    return typeof a === 'object' && a ? a.port : this.opts.port;
  }

  /** At the cap, takes the slot of the oldest connection without a request, or refuses `socket`. */
  private admit(socket: Socket): void {
    const now = performance.now();
    if (this.conns.size >= this.opts.limits.maxConnections) {
      // A client outside the allow-list gets its 403 when there is room, but never takes a slot.
      const victim = this.allowed(socket.remoteAddress ?? '') ? this.evictable(now) : undefined;
      if (!victim) {
        this.metrics.apiRefused.inc();
        socket.destroy();
        return;
      }
      this.metrics.apiDropped.inc({ reason: 'evicted' });
      this.conns.delete(victim);
      victim.destroy();
    }
    this.conns.set(socket, { openedAt: now, inFlight: 0 });
    this.metrics.apiConnections.set(this.conns.size);
    socket.once('close', () => {
      this.conns.delete(socket);
      this.metrics.apiConnections.set(this.conns.size);
    });
  }

  private evictable(now: number): Socket | undefined {
    for (const [s, c] of this.conns) if (c.inFlight === 0 && now - c.openedAt >= EVICT_AFTER_MS) return s;
    return undefined;
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
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    // close() waits for every connection: one without a request in progress (a slow client still
    // sending its head, a keep-alive) is closed now; a request in progress is answered first.
    for (const [socket, c] of this.conns) if (c.inFlight === 0) socket.destroy();
    await closed;
  }
}
