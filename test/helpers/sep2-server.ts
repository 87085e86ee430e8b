/**
 * Test harness: just enough of an IEEE 2030.5 server, over REAL HTTPS with mutual TLS (node:https,
 * requestCert + rejectUnauthorized against a test CA), on a free loopback port:
 *
 *   const pki = makePki();                                   // openssl CLI, ECDSA P-256, temp dir
 *   const srv = await startSep2Server({ pki, pen: 0, postRate: 60 });
 *   ... new Sep2Driver({ url: srv.url, certFile: pki.clientCert, ... }) ...
 *   t.same(srv.problems, []);  await srv.close();
 *
 * Resources: GET /dcap (DeviceCapability -> /mup), GET /mup (the list, paged with s and l), POST
 * /mup (MirrorUsagePoint: 201 + Location /mup/N, 204 + Location for a known mRID), GET /mup/N, POST
 * /mup/N (MirrorMeterReading: 201 + Location for a new mRID, 204 for a known one). script()
 * answers the next matching requests with a status and headers (503 + Retry-After, 403, 400...;
 * status 0 = never answer); vanish() deletes a MUP so the next POST to it gets 404.
 *
 * CHECKS, into `problems`: the client certificate is the expected one; a POST has Content-Type
 * application/sep+xml; the body is well-formed (its own strict tokenizer, NOT the driver's parser),
 * its root the expected resource in the urn:ieee:std:2030.5:ns default namespace, no prefixes; the
 * element order, multiplicity and required elements follow SEP2_ORDER (the XSD-derived tables,
 * walked by an independent checker, not the driver's writer), recursively; mRIDs are 128-bit hex
 * with the expected PEN in the low 32 bits, deviceLFDI 160-bit hex, numbers integers within their
 * schema type (UInt8 uom and kind, powerOfTenMultiplier -9..9, Int48 value). A body that
 * fails is also answered 400, so a broken client cannot pass.
 *
 * Certificates are made at test time in a temp dir removed on exit: a CA, a server cert (SAN
 * localhost, 127.0.0.1), a client cert, and a "rogue" CA with its own server and client certs.
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { SEP2_NS, SEP2_ORDER } from '../../drivers/sep2/xml.js';

export interface Pki {
  dir: string;
  caCert: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string;
  rogueCaCert: string; rogueServerCert: string; rogueServerKey: string; rogueClientCert: string; rogueClientKey: string;
}

/** Makes the test PKI with the openssl CLI (ECDSA P-256 everywhere, as 2030.5 requires). */
export function makePki(): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'holdfast-sep2-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const key = (n: string) => ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(`${n}.key`));
  const ca = (n: string) => {
    key(n);
    ssl('req', '-x509', '-new', '-key', f(`${n}.key`), '-sha256', '-days', '2', '-subj', `/CN=${n}`, '-out', f(`${n}.crt`),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const leaf = (n: string, caName: string, ext: string) => {
    key(n);
    ssl('req', '-new', '-key', f(`${n}.key`), '-subj', `/CN=${n}`, '-out', f(`${n}.csr`));
    writeFileSync(f(`${n}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n${ext}\n`);
    ssl('x509', '-req', '-in', f(`${n}.csr`), '-CA', f(`${caName}.crt`), '-CAkey', f(`${caName}.key`), '-CAcreateserial',
      '-days', '2', '-sha256', '-extfile', f(`${n}.ext`), '-out', f(`${n}.crt`));
  };
  const server = 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1';
  ca('ca'); leaf('server', 'ca', server); leaf('client', 'ca', 'extendedKeyUsage=clientAuth');
  ca('rogue-ca'); leaf('rogue-server', 'rogue-ca', server); leaf('rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth');
  return {
    dir, caCert: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key'),
    rogueCaCert: f('rogue-ca.crt'), rogueServerCert: f('rogue-server.crt'), rogueServerKey: f('rogue-server.key'),
    rogueClientCert: f('rogue-client.crt'), rogueClientKey: f('rogue-client.key'),
  };
}

/**
 * A REAL OpenSSL server (`openssl s_server -www`, TLS 1.2) that verifies client certificates
 * against `clientCa` and refuses a bad one IN the handshake with an alert, as production TLS
 * stacks do (node's own server completes the handshake and then resets instead).
 */
export async function startOpensslServer(pki: Pki, clientCa: string): Promise<{ url: string; close(): Promise<void> }> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
  const proc = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', pki.serverCert, '-key', pki.serverKey,
    '-CAfile', clientCa, '-Verify', '1', '-verify_return_error', '-tls1_2', '-www'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => proc.kill('SIGKILL');
  process.on('exit', kill);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('openssl s_server did not start')), 10_000);
    proc.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ACCEPT')) { clearTimeout(timer); resolve(); } });
    proc.stderr.resume();
  });
  return {
    url: `https://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      process.off('exit', kill);
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      kill();
    }),
  };
}

// ------------------------------------------------ strict tokenizer and order checker (independent)

export interface TNode { qname: string; attrs: Record<string, string>; children: TNode[]; text: string }

export function tokenize(xml: string): TNode {
  const re = /<\?xml[^?]*\?>|<\/([\w:.-]+)\s*>|<([\w:.-]+)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/gy;
  const stack: TNode[] = [];
  let root: TNode | undefined;
  for (let m = re.exec(xml); m && m.index < xml.length; m = re.exec(xml)) {
    if (m[6]) throw new Error(`not well-formed at ${m.index}`);
    if (m[5] !== undefined) {
      if (/&(?!(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(m[5])) throw new Error('bad entity');
      if (stack.length) stack[stack.length - 1].text += m[5];
      else if (m[5].trim()) throw new Error('text outside the root');
    } else if (m[1]) {
      if (stack.pop()?.qname !== m[1]) throw new Error(`mismatched </${m[1]}>`);
    } else if (m[2]) {
      if (root && !stack.length) throw new Error('two roots');
      const attrs = Object.fromEntries([...m[3].matchAll(/([\w:.-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
      const n: TNode = { qname: m[2], attrs, children: [], text: '' };
      if (stack.length) stack[stack.length - 1].children.push(n);
      else root = n;
      if (!m[4]) stack.push(n);
    }
  }
  if (!root || stack.length) throw new Error('incomplete document');
  return root;
}

const LEAF: Record<string, RegExp> = {
  mRID: /^[0-9A-Fa-f]{32}$/, deviceLFDI: /^[0-9A-Fa-f]{40}$/, roleFlags: /^[0-9A-Fa-f]{2,4}$/, qualityFlags: /^[0-9A-Fa-f]{2,4}$/,
  description: /^.{0,32}$/su,
};

/** Bounds of the schema's numeric types: UInt8 (uom, kind, ...), PowerOfTenMultiplierType ("Any integer between -9 and 9 SHALL be supported"), Int48 (value). */
const UINT8: [number, number] = [0, 255];
const RANGE: Record<string, [number, number]> = {
  uom: UINT8, kind: UINT8, commodity: UINT8, accumulationBehaviour: UINT8, flowDirection: UINT8, phase: UINT8, dataQualifier: UINT8,
  powerOfTenMultiplier: [-9, 9], value: [-(2 ** 47), 2 ** 47 - 1],
};

/** Problems of `n` as a `type` element: order, multiplicity, required elements, leaf formats. */
export function checkOrder(n: TNode, type: string, pen: number, at = type): string[] {
  const slots = SEP2_ORDER[type];
  const out: string[] = [];
  let pos = 0;
  const counts = new Map<string, number>();
  for (const c of n.children) {
    if (c.qname.includes(':')) out.push(`${at}: prefixed element <${c.qname}>`);
    const idx = slots.findIndex((s) => s.name === c.qname);
    if (idx < 0) { out.push(`${at}: <${c.qname}> is not in ${type}`); continue; }
    if (idx < pos) out.push(`${at}: <${c.qname}> out of order (after <${slots[pos].name}>)`);
    pos = Math.max(pos, idx);
    const k = (counts.get(c.qname) ?? 0) + 1;
    counts.set(c.qname, k);
    if (k > slots[idx].max) out.push(`${at}: too many <${c.qname}>`);
    const sub = slots[idx].type;
    if (sub) { out.push(...checkOrder(c, sub, pen, `${at}/${c.qname}`)); continue; }
    const v = c.text.trim();
    if (c.children.length) out.push(`${at}/${c.qname}: expected a simple value`);
    else if (LEAF[c.qname] ? !LEAF[c.qname].test(v) : !/^-?\d+$/.test(v)) out.push(`${at}/${c.qname}: bad value ${JSON.stringify(v)}`);
    else if (c.qname === 'mRID' && parseInt(v.slice(24), 16) !== pen) out.push(`${at}/mRID: low 32 bits are not PEN ${pen}`);
    else if (RANGE[c.qname] && (Number(v) < RANGE[c.qname][0] || Number(v) > RANGE[c.qname][1])) out.push(`${at}/${c.qname}: ${v} out of range`);
  }
  for (const s of slots) if (s.min === 1 && !counts.has(s.name)) out.push(`${at}: <${s.name}> missing`);
  return out;
}

// ------------------------------------------------------------------------------ the server

export interface ServerReading { start: number; duration: number; value: number; qualityFlags?: string; set?: string }
export interface ServerMmr { mRID: string; description?: string; readingType: Record<string, string>; readings: ServerReading[] }
export interface ServerMup { id: number; mRID: string; description?: string; deviceLFDI: string; postRate?: number; mmrs: Map<string, ServerMmr> }
export interface Logged {
  method: string; path: string; status: number; cipher: string; protocol: string; /** when the request was answered (ms) */ at: number;
  /** A MirrorMeterReading POST (accepted): its description, our point name. */ mmr?: string;
}
interface Scripted { method?: string; path?: RegExp; status: number; headers?: Record<string, string>; body?: string; times: number }

export interface Sep2ServerOptions {
  pki: Pki; pen: number; postRate?: number; pollRate?: number; ciphers?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Serve the rogue (untrusted) server certificate. */ rogueServer?: boolean;
  /** Listen on this loopback port (default: a free one). */ port?: number;
  /** Trust only the rogue CA for client certificates (so the real client cert is refused). */ rogueClientCa?: boolean;
}

export interface Sep2Server {
  url: string; port: number; problems: string[]; log: Logged[]; tlsErrors: string[]; mups: Map<number, ServerMup>; creations: string[];
  script(s: Omit<Scripted, 'times'> & { times?: number }): void;
  preload(m: Omit<ServerMup, 'id' | 'mmrs'>): ServerMup;
  vanish(mRID: string): void; close(): Promise<void>;
}

const SEP = 'application/sep+xml';
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
const intOf = (n: TNode | undefined, name: string) => Number(n?.children.find((c) => c.qname === name)?.text.trim());
const textOf = (n: TNode, name: string) => n.children.find((c) => c.qname === name)?.text.trim();

export async function startSep2Server(o: Sep2ServerOptions): Promise<Sep2Server> {
  const { pki } = o;
  const expectedClient = new X509Certificate(readFileSync(pki.clientCert)).fingerprint256;
  const problems: string[] = [], log: Logged[] = [], tlsErrors: string[] = [], creations: string[] = [], mups = new Map<number, ServerMup>();
  const scripts: Scripted[] = [];
  let nextId = 1; // MUP ids: /mup/1, /mup/2, ...
  const mupXml = (m: ServerMup) => `<MirrorUsagePoint href="/mup/${m.id}"><mRID>${m.mRID}</mRID>${m.description ? `<description>${esc(m.description)}</description>` : ''}` +
    `<roleFlags>0041</roleFlags><serviceCategoryKind>0</serviceCategoryKind><status>1</status><deviceLFDI>${m.deviceLFDI}</deviceLFDI>` +
    `${m.postRate !== undefined ? `<postRate>${m.postRate}</postRate>` : ''}</MirrorUsagePoint>`;
  const doc = (xml: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${xml.includes('xmlns=') ? xml : xml.replace(/^<(\w+)/, `<$1 xmlns="${SEP2_NS}"`)}`;

  /** Parses and checks a POSTed body; null (and a 400) when it is not acceptable. */
  function accept(req: IncomingMessage, body: string, rootName: string, where: string): TNode | null {
    const before = problems.length;
    if (req.headers['content-type'] !== SEP) problems.push(`${where}: Content-Type ${req.headers['content-type']}`);
    let root: TNode;
    try { root = tokenize(body); } catch (e) { problems.push(`${where}: ${(e as Error).message}`); return null; }
    if (root.qname !== rootName) problems.push(`${where}: root <${root.qname}>, expected <${rootName}>`);
    if (root.attrs.xmlns !== SEP2_NS) problems.push(`${where}: default namespace ${root.attrs.xmlns}`);
    if (Object.keys(root.attrs).some((a) => a.startsWith('xmlns:'))) problems.push(`${where}: namespace prefixes declared`);
    problems.push(...checkOrder(root, rootName, o.pen).map((p) => `${where}: ${p}`));
    return problems.length === before ? root : null;
  }

  function takeMmr(m: ServerMup, n: TNode): boolean {
    const mRID = textOf(n, 'mRID') as string;
    let mmr = m.mmrs.get(mRID);
    const isNew = !mmr;
    if (!mmr) m.mmrs.set(mRID, (mmr = { mRID, description: textOf(n, 'description'), readingType: {}, readings: [] }));
    const rt = n.children.find((c) => c.qname === 'ReadingType');
    if (rt) mmr.readingType = Object.fromEntries(rt.children.map((c) => [c.qname, c.text.trim()]));
    const add = (r: TNode, set?: string) => {
      const tp = r.children.find((c) => c.qname === 'timePeriod');
      mmr.readings.push({ start: intOf(tp, 'start'), duration: intOf(tp, 'duration'), value: intOf(r, 'value'), qualityFlags: textOf(r, 'qualityFlags'), set });
    };
    for (const c of n.children) {
      if (c.qname === 'Reading') add(c);
      if (c.qname === 'MirrorReadingSet') for (const r of c.children.filter((x) => x.qname === 'Reading')) add(r, textOf(c, 'mRID'));
    }
    return isNew;
  }

  function route(req: IncomingMessage, body: string): { status: number; headers?: Record<string, string>; xml?: string; mmr?: string } {
    const url = new URL(req.url ?? '/', 'https://x');
    const p = url.pathname;
    const where = `${req.method} ${p}`;
    const fp = (req.socket as import('node:tls').TLSSocket).getPeerCertificate()?.fingerprint256;
    if (fp !== expectedClient) problems.push(`${where}: client certificate ${fp}`);
    const s = scripts.find((x) => x.times > 0 && (!x.method || x.method === req.method) && (!x.path || x.path.test(p)));
    if (s) return (s.times--, { status: s.status, headers: s.headers, xml: s.body });
    if (req.method === 'GET' && p === '/dcap') return { status: 200, xml: `<DeviceCapability href="/dcap" pollRate="${o.pollRate ?? 900}">` +
      `<TimeLink href="/tm"/><MirrorUsagePointListLink href="/mup" all="${mups.size}"/></DeviceCapability>` };
    if (req.method === 'GET' && p === '/mup') {
      const all = [...mups.values()];
      const start = Number(url.searchParams.get('s') ?? 0), limit = Number(url.searchParams.get('l') ?? 1);
      const page = all.slice(start, start + limit);
      return { status: 200, xml: `<MirrorUsagePointList href="/mup" all="${all.length}" results="${page.length}" pollRate="${o.pollRate ?? 900}">${page.map(mupXml).join('')}</MirrorUsagePointList>` };
    }
    const one = /^\/mup\/(\d+)$/.exec(p);
    const mup = one ? mups.get(Number(one[1])) : undefined;
    if (req.method === 'GET' && one) return mup ? { status: 200, xml: mupXml(mup) } : { status: 404 };
    if (req.method === 'POST' && p === '/mup') {
      const root = accept(req, body, 'MirrorUsagePoint', where);
      if (!root) return { status: 400 };
      const mRID = textOf(root, 'mRID') as string;
      creations.push(mRID);
      let m = [...mups.values()].find((x) => x.mRID === mRID);
      const isNew = !m;
      if (!m) m = preload({ mRID, description: textOf(root, 'description'), deviceLFDI: textOf(root, 'deviceLFDI') as string, postRate: o.postRate });
      for (const c of root.children) if (c.qname === 'MirrorMeterReading') takeMmr(m, c);
      return { status: isNew ? 201 : 204, headers: { Location: `/mup/${m.id}` } };
    }
    if (req.method === 'POST' && one) {
      if (!mup) return { status: 404 };
      const root = accept(req, body, 'MirrorMeterReading', where);
      if (!root) return { status: 400 };
      const isNew = takeMmr(mup, root);
      return { status: isNew ? 201 : 204, headers: { Location: `/mup/${mup.id}/mr/${textOf(root, 'mRID')}` }, mmr: textOf(root, 'description') };
    }
    return { status: 404 };
  }

  function preload(m: Omit<ServerMup, 'id' | 'mmrs'>): ServerMup {
    const full: ServerMup = { ...m, id: nextId++, mmrs: new Map() };
    return (mups.set(full.id, full), full);
  }

  const server = https.createServer({
    key: readFileSync(o.rogueServer ? pki.rogueServerKey : pki.serverKey), cert: readFileSync(o.rogueServer ? pki.rogueServerCert : pki.serverCert),
    ca: readFileSync(o.rogueClientCa ? pki.rogueCaCert : pki.caCert), requestCert: true, rejectUnauthorized: true,
    ciphers: o.ciphers, minVersion: 'TLSv1.2', maxVersion: o.maxVersion ?? 'TLSv1.2',
  }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = route(req, Buffer.concat(chunks).toString('utf8'));
      const sock = req.socket as import('node:tls').TLSSocket;
      log.push({ method: req.method ?? '', path: req.url ?? '', status: r.status, cipher: sock.getCipher().name, protocol: sock.getProtocol() ?? '', at: Date.now(), ...(r.mmr === undefined ? {} : { mmr: r.mmr }) });
      if (r.status === 0) return; // scripted silence: the client's timeout must fire
      res.writeHead(r.status, { ...(r.xml ? { 'Content-Type': SEP } : {}), ...r.headers });
      res.end(r.xml ? doc(r.xml) : undefined);
    });
  });
  server.on('tlsClientError', (e: Error & { code?: string }) => tlsErrors.push(e.code ?? e.message));
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`, port, problems, log, tlsErrors, mups, creations,
    script: (s) => scripts.push({ ...s, times: s.times ?? 1 }),
    preload,
    vanish: (mRID) => { for (const [id, m] of mups) if (m.mRID === mRID) mups.delete(id); },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
