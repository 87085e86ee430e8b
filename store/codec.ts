/**
 * Batch payload codec: JSON -> zlib (raw deflate) -> AES-256-GCM, done once per batch.
 *
 * The key file is a keyring: one `<keyId> <64 hex chars>` line per key, so keys can rotate:
 * new rows are written with the configured keyId, old rows keep theirs and stay readable while
 * their key line stays in the file. The batch's idempotency key is the GCM additional data, so
 * a ciphertext cannot be moved to another row unnoticed.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, openSync, readFileSync, statSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { deflateRawSync, inflateRawSync, constants as zc } from 'node:zlib';
import { StoreError } from './errors.js';

export type Keyring = ReadonlyMap<string, Buffer>;

export interface EncodedPayload {
  codec: 'zlib' | 'zlib+aes256gcm';
  keyId: string | null;
  iv: Buffer | null;
  tag: Buffer | null;
  body: Buffer;
  /** Set when the body could not be read from its segment (store/segments.ts): decoding throws it. */
  unreadable?: string;
}

const KEY_LINE = /^([A-Za-z0-9_.-]{1,32})\s+([0-9a-fA-F]{64})$/;

export function parseKeyring(text: string, file: string): Keyring {
  const ring = new Map<string, Buffer>();
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) return;
    const m = KEY_LINE.exec(l);
    if (!m) throw new StoreError('KEY_INVALID', `line ${i + 1} is not "<keyId> <64 hex chars>"`, file);
    ring.set(m[1], Buffer.from(m[2], 'hex'));
  });
  if (ring.size === 0) throw new StoreError('KEY_INVALID', 'no key in file', file);
  return ring;
}

/** Reads a key file, refusing a missing or group/world-accessible one. */
export function loadKeyring(file: string, keyId: string): Keyring {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new StoreError('KEY_FILE_MISSING', `key file does not exist; create it with: holdfast keygen --out ${file}`, file);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new StoreError('KEY_FILE_INSECURE', `mode ${(st.mode & 0o777).toString(8)}; run chmod 600 ${file}`, file);
  }
  const ring = parseKeyring(readFileSync(file, 'utf8'), file);
  if (!ring.has(keyId)) throw new StoreError('KEY_INVALID', `no key with id ${JSON.stringify(keyId)} (store.keyId)`, file);
  return ring;
}

/**
 * Writes a new random key with the given id: creates the file with mode 0600, or appends a line
 * to an existing keyring (rotation). Refuses an id that is already there.
 */
export function generateKey(file: string, keyId: string): { created: boolean } {
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(keyId)) throw new StoreError('USAGE', 'key id must match [A-Za-z0-9_.-]{1,32}', keyId);
  const created = !existsSync(file);
  if (!created && parseKeyring(readFileSync(file, 'utf8'), file).has(keyId)) {
    throw new StoreError('USAGE', `key id ${keyId} already exists in the keyring; choose another --id`, file);
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'a', 0o600);
  try {
    writeSync(fd, `${keyId} ${randomBytes(32).toString('hex')}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(file, 0o600);
  return { created };
}

/**
 * Sizes zlib's output chunks for inflating payloads. zlib's default 16 KB chunks cost a 50 KB
 * batch four chunk allocations and a concatenation; one chunk just large enough costs one
 * allocation. The expansion ratio (inflated / compressed) of recent payloads, decayed slowly,
 * predicts the size; the chunk stays below 128 KB, where glibc would mmap (and page-fault) every
 * one.
 */
export class InflateSizer {
  private ratio = 16;

  chunkFor(compressedBytes: number): number {
    return Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.ceil(compressedBytes * this.ratio * 1.03) + 64));
  }

  observe(compressedBytes: number, inflatedBytes: number): void {
    if (compressedBytes > 0) this.ratio = Math.max(inflatedBytes / compressedBytes, this.ratio * 0.98, 1);
  }
}

const MIN_CHUNK = 16 * 1024;
const MAX_CHUNK = 120 * 1024;

/**
 * Decrypts (when encrypted) and inflates one payload with a keyring of KeyObjects; throws on any
 * failure. `sizer` (optional) picks zlib's output chunk size.
 */
export function openPayload(keys: ReadonlyMap<string, KeyObject> | null, p: EncodedPayload, aad: string, sizer?: InflateSizer): Buffer {
  if (p.unreadable !== undefined) throw new Error(p.unreadable);
  let compressed = p.body;
  if (p.codec === 'zlib+aes256gcm') {
    const key = p.keyId ? keys?.get(p.keyId) : undefined;
    if (!key) throw new Error(`key ${p.keyId ?? '?'} is not in the keyring`);
    const d = createDecipheriv('aes-256-gcm', key, p.iv!);
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(p.tag!);
    const head = d.update(p.body);
    const tail = d.final();
    compressed = tail.length === 0 ? head : Buffer.concat([head, tail]);
  }
  if (!sizer) return inflateRawSync(compressed);
  const out = inflateRawSync(compressed, { chunkSize: sizer.chunkFor(compressed.length) });
  sizer.observe(compressed.length, out.length);
  return out;
}

/** The keyring as KeyObjects: created once, so each AES-GCM operation skips importing the raw key. */
export function keyObjects(ring: Keyring | null): Map<string, KeyObject> | null {
  if (!ring) return null;
  const keys = new Map<string, KeyObject>();
  for (const [id, raw] of ring) keys.set(id, createSecretKey(raw));
  return keys;
}

export class PayloadCodec {
  private readonly keys: Map<string, KeyObject> | null;
  private readonly sizer = new InflateSizer();

  constructor(
    private readonly ring: Keyring | null,
    private readonly keyId: string | null,
  ) {
    this.keys = keyObjects(ring);
  }

  /** The raw keyring. */
  get keyring(): Keyring | null {
    return this.ring;
  }

  encode(json: string, aad: string): EncodedPayload {
    const compressed = deflateRawSync(json, { level: zc.Z_DEFAULT_COMPRESSION });
    if (!this.keys || !this.keyId) return { codec: 'zlib', keyId: null, iv: null, tag: null, body: compressed };
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.keys.get(this.keyId)!, iv);
    c.setAAD(Buffer.from(aad));
    const head = c.update(compressed);
    const tail = c.final();
    const body = tail.length === 0 ? head : Buffer.concat([head, tail]);
    return { codec: 'zlib+aes256gcm', keyId: this.keyId, iv, tag: c.getAuthTag(), body };
  }

  /** The batch's readings as UTF-8 JSON bytes, exactly as encoded. Throws PAYLOAD_UNREADABLE. */
  decode(p: EncodedPayload, aad: string): Buffer {
    try {
      return openPayload(this.keys, p, aad, this.sizer);
    } catch (e) {
      throw new StoreError('PAYLOAD_UNREADABLE', (e as Error).message, aad, { cause: e });
    }
  }

  /** decode() as a string (tools and tests). */
  decodeText(p: EncodedPayload, aad: string): string {
    return this.decode(p, aad).toString('utf8');
  }
}
