/**
 * What a remote message signs, and the Ed25519 primitives around it (node:crypto, no algorithm:
 * Ed25519 hashes internally). Pure: no I/O, no clock. The signed bytes bind the message kind,
 * the gateway id and the version or sequence number to the SHA-256 of the payload bytes, so a
 * message for one gateway cannot be replayed on another, nor a config passed off as a command.
 *
 *   config:  "holdfast-config\n<gatewayId>\n<version>\n<sha256 hex of the payload bytes>"
 *   command: "holdfast-cmd\n<gatewayId>\n<name>\n<seq>\n<sha256 hex of the payload bytes>"
 *
 * (UTF-8, no trailing newline; the payload bytes are the base64-decoded `payload` field.)
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export function sha256Hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export function configSignedBytes(gatewayId: string, version: number, payload: Buffer): Buffer {
  return Buffer.from(`holdfast-config\n${gatewayId}\n${version}\n${sha256Hex(payload)}`, 'utf8');
}

export function commandSignedBytes(gatewayId: string, name: string, seq: number, payload: Buffer): Buffer {
  return Buffer.from(`holdfast-cmd\n${gatewayId}\n${name}\n${seq}\n${sha256Hex(payload)}`, 'utf8');
}

/**
 * A trusted public key from the local config: PEM (`-----BEGIN PUBLIC KEY-----`) or the base64
 * of its SPKI DER. Throws with a reason when it is neither, or not an Ed25519 key.
 */
export function parsePublicKey(text: string): KeyObject {
  const key = text.includes('-----BEGIN') ? createPublicKey(text) : createPublicKey({ key: Buffer.from(text.trim(), 'base64'), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 public key (${key.asymmetricKeyType ?? 'unknown type'})`);
  return key;
}

export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 private key (${key.asymmetricKeyType ?? 'unknown type'})`);
  return key;
}

/** The trusted keys of the local config, parsed once; a key that does not parse is named. */
export function parseKeyring(keys: Readonly<Record<string, string>>): Map<string, KeyObject> {
  const ring = new Map<string, KeyObject>();
  for (const [id, text] of Object.entries(keys)) {
    try {
      ring.set(id, parsePublicKey(text));
    } catch (e) {
      throw new Error(`remote.trustedKeys.${id}: ${(e as Error).message}`);
    }
  }
  return ring;
}

/** Base64 signature of `bytes`. */
export function signBytes(key: KeyObject, bytes: Buffer): string {
  return sign(null, bytes, key).toString('base64');
}

/** An Ed25519 signature in strict base64 (Node's decoder would skip stray characters: one signature, one spelling). */
const SIG_B64 = /^[A-Za-z0-9+/]{86}==$/;

/** Never throws: a malformed signature is simply not valid. */
export function verifyBytes(key: KeyObject, bytes: Buffer, signatureB64: string): boolean {
  if (!SIG_B64.test(signatureB64)) return false;
  try {
    const sig = Buffer.from(signatureB64, 'base64');
    if (sig.length !== 64 || sig.toString('base64') !== signatureB64) return false;
    return verify(null, bytes, key, sig);
  } catch {
    return false;
  }
}

/** A new Ed25519 key pair as PEM (PKCS#8 private, SPKI public) and the public key's base64 SPKI DER. */
export function newKeyPair(): { privatePem: string; publicPem: string; publicB64: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicB64: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
  };
}

/** The config/set message for `config` (the bytes as given: what is signed is what is sent). */
export function signConfig(key: KeyObject, keyId: string, gatewayId: string, version: number, config: Buffer): { version: number; payload: string; keyId: string; signature: string } {
  return { version, payload: config.toString('base64'), keyId, signature: signBytes(key, configSignedBytes(gatewayId, version, config)) };
}

/** A cmd/<name> message with `args` (JSON) as its payload. */
export function signCommand(key: KeyObject, keyId: string, gatewayId: string, name: string, seq: number, args: object = {}): { seq: number; payload: string; keyId: string; signature: string } {
  const payload = Buffer.from(JSON.stringify(args), 'utf8');
  return { seq, payload: payload.toString('base64'), keyId, signature: signBytes(key, commandSignedBytes(gatewayId, name, seq, payload)) };
}
