/**
 * Batch payload codec: JSON -> zlib (raw deflate) -> AES-256-GCM, done once per batch.
 *
 * The key file is a keyring: one `<keyId> <64 hex chars>` line per key, so keys can rotate:
 * new rows are written with the configured keyId, old rows keep theirs and stay readable while
 * their key line stays in the file. The batch's idempotency key is the GCM additional data, so
 * a ciphertext cannot be moved to another row unnoticed.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, openSync, readFileSync, statSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { deflateRawSync, inflateRawSync, constants as zc } from 'node:zlib';
import { HoldfastError } from '../agent/errors.js';

export type Keyring = ReadonlyMap<string, Buffer>;

export interface EncodedPayload {
  codec: 'zlib' | 'zlib+aes256gcm';
  keyId: string | null;
  iv: Buffer | null;
  tag: Buffer | null;
  body: Buffer;
}

const KEY_LINE = /^([A-Za-z0-9_.-]{1,32})\s+([0-9a-fA-F]{64})$/;

export function parseKeyring(text: string, file: string): Keyring {
  const ring = new Map<string, Buffer>();
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) return;
    const m = KEY_LINE.exec(l);
    if (!m) throw new HoldfastError('KEY_INVALID', `line ${i + 1} is not "<keyId> <64 hex chars>"`, file);
    ring.set(m[1], Buffer.from(m[2], 'hex'));
  });
  if (ring.size === 0) throw new HoldfastError('KEY_INVALID', 'no key in file', file);
  return ring;
}

/** Reads a key file, refusing a missing or group/world-accessible one. */
export function loadKeyring(file: string, keyId: string): Keyring {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new HoldfastError('KEY_FILE_MISSING', `key file does not exist; create it with: holdfast keygen --out ${file}`, file);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new HoldfastError('KEY_FILE_INSECURE', `mode ${(st.mode & 0o777).toString(8)}; run chmod 600 ${file}`, file);
  }
  const ring = parseKeyring(readFileSync(file, 'utf8'), file);
  if (!ring.has(keyId)) throw new HoldfastError('KEY_INVALID', `no key with id ${JSON.stringify(keyId)} (store.keyId)`, file);
  return ring;
}

/**
 * Writes a new random key with the given id: creates the file with mode 0600, or appends a line
 * to an existing keyring (rotation). Refuses an id that is already there.
 */
export function generateKey(file: string, keyId: string): { created: boolean } {
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(keyId)) throw new HoldfastError('USAGE', 'key id must match [A-Za-z0-9_.-]{1,32}', keyId);
  const created = !existsSync(file);
  if (!created && parseKeyring(readFileSync(file, 'utf8'), file).has(keyId)) {
    throw new HoldfastError('USAGE', `key id ${keyId} already exists in the keyring; choose another --id`, file);
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

export class PayloadCodec {
  constructor(
    private readonly ring: Keyring | null,
    private readonly keyId: string | null,
  ) {}

  encode(json: string, aad: string): EncodedPayload {
    const compressed = deflateRawSync(json, { level: zc.Z_DEFAULT_COMPRESSION });
    if (!this.ring || !this.keyId) return { codec: 'zlib', keyId: null, iv: null, tag: null, body: compressed };
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.ring.get(this.keyId)!, iv);
    c.setAAD(Buffer.from(aad));
    const body = Buffer.concat([c.update(compressed), c.final()]);
    return { codec: 'zlib+aes256gcm', keyId: this.keyId, iv, tag: c.getAuthTag(), body };
  }

  decode(p: EncodedPayload, aad: string): string {
    try {
      let compressed = p.body;
      if (p.codec === 'zlib+aes256gcm') {
        const key = p.keyId ? this.ring?.get(p.keyId) : undefined;
        if (!key) throw new Error(`key ${p.keyId ?? '?'} is not in the keyring`);
        const d = createDecipheriv('aes-256-gcm', key, p.iv!);
        d.setAAD(Buffer.from(aad));
        d.setAuthTag(p.tag!);
        compressed = Buffer.concat([d.update(p.body), d.final()]);
      }
      return inflateRawSync(compressed).toString('utf8');
    } catch (e) {
      throw new HoldfastError('PAYLOAD_UNREADABLE', (e as Error).message, aad, { cause: e });
    }
  }
}
