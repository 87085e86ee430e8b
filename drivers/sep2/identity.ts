/**
 * IEEE 2030.5 identities: the device identifiers derived from a certificate (LFDI, SFDI) and the
 * resource identifiers (mRID) this gateway mints for the MirrorUsagePoints and
 * MirrorMeterReadings it creates.
 *
 * Device identifiers (IEEE 2030.5-2018, security section "device identification"):
 *   - the certificate fingerprint is SHA-256 over the certificate's DER encoding;
 *   - LFDI (long form) = the leftmost 160 bits of the fingerprint, 40 hex digits. We print it in
 *     upper case, as the standard's examples do (hexBinary is case-insensitive on the wire);
 *   - SFDI (short form) = the leftmost 36 bits of the fingerprint as an unsigned decimal number
 *     (at most 11 digits, 2^36-1 = 68719476735), followed by ONE check digit chosen so that the
 *     sum of all digits is a multiple of 10. The result is at most 12 digits; the schema's
 *     SFDIType bounds it by 687194767359 (2^36-1 followed by a 9). It is printed in
 *     groups of three: `167-261-211-391`.
 *   The standard's worked example: fingerprint 3E4F45AB31EDFE5B67E343E5E4562E31984E23E5...
 *   -> LFDI 3E4F45AB31EDFE5B67E343E5E4562E31984E23E5, SFDI 167261211391 (0x3E4F45AB3 =
 *   16726121139, digit sum 39, check digit 1). test/sep2-identity.test.ts checks exactly that.
 *
 * mRIDs (schema type mRIDType): 128 bits as hexBinary, "the IANA PEN provider ID SHALL be
 * specified in bits 0-31, the least-significant bits, and objects created by that provider SHALL
 * be assigned unique IDs with the remaining 96 bits". Ours are the first 96 bits of SHA-256 over
 * the gateway id and the path of the object (device, point, ...) followed by the PEN, so the
 * same gateway always names the same device/point the same way: after a restart, a lost
 * MirrorUsagePoint or a re-install, it finds or re-creates the same resource instead of piling
 * up new ones. The all-ones upper 96 bits are reserved by the schema ("object being created");
 * a hash that lands there (probability 2^-96) is nudged by one bit.
 *
 * PEN: the operator's IANA Private Enterprise Number. The default 0 is IANA's "Reserved" entry,
 * i.e. NOT a registered number: fine for tests and lab servers, not for production, where the
 * utility or the aggregator's PEN must be configured.
 *
 * All functions are pure; malformed input (not hex, PEN out of range) is a programming or
 * configuration error and throws RangeError.
 */
import { createHash, X509Certificate } from 'node:crypto';

/** 2^36 - 1: the largest 36-bit value an SFDI can carry before its check digit. */
export const SFDI_MAX_VALUE = 68_719_476_735;
/** The schema's bound for SFDIType: 2^36-1 followed by a 9 (the largest real SFDI is 687194767357). */
export const SFDI_MAX = 687_194_767_359;

export interface DeviceIdentity {
  /** SHA-256 over the DER certificate, 64 upper-case hex digits. */
  fingerprint: string;
  /** 40 upper-case hex digits. */
  lfdi: string;
  /** Up to 12 decimal digits, check digit included. */
  sfdi: number;
}

const HEX = /^[0-9a-fA-F]+$/;

function hexPrefix(hash: string, digits: number, what: string): string {
  const h = hash.replace(/[\s:]/g, '');
  if (!HEX.test(h) || h.length < digits) throw new RangeError(`${what} needs at least ${digits} hex digits, got ${JSON.stringify(hash)}`);
  return h.slice(0, digits).toUpperCase();
}

/** SHA-256 over DER bytes, upper-case hex. */
export function fingerprintOf(der: Buffer | Uint8Array): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase();
}

/**
 * DER bytes of a certificate given as PEM text, a PEM buffer or DER bytes. Parsed with node's
 * X509Certificate, so a buffer that is neither throws.
 */
export function certificateDer(cert: string | Buffer): Buffer {
  return new X509Certificate(cert).raw;
}

/** LFDI from a fingerprint (hex, colons and spaces ignored): its leftmost 160 bits. */
export function lfdiFromHash(hash: string): string {
  return hexPrefix(hash, 40, 'an LFDI');
}

/** The check digit that makes the digit sum of `value` followed by it a multiple of 10. */
export function sfdiCheckDigit(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a non-negative integer: ${value}`);
  let sum = 0;
  for (const d of String(value)) sum += d.charCodeAt(0) - 48;
  return (10 - (sum % 10)) % 10;
}

/** SFDI from a fingerprint: leftmost 36 bits (9 hex digits) as decimal, then the check digit. */
export function sfdiFromHash(hash: string): number {
  const value = parseInt(hexPrefix(hash, 9, 'an SFDI'), 16);
  return value * 10 + sfdiCheckDigit(value);
}

/** True when `sfdi` is in range and its last digit is the right check digit. */
export function isValidSfdi(sfdi: number): boolean {
  if (!Number.isSafeInteger(sfdi) || sfdi < 0 || sfdi > SFDI_MAX) return false;
  return sfdiCheckDigit(Math.floor(sfdi / 10)) === sfdi % 10;
}

/**
 * Prints an SFDI as four groups of three digits, `167-261-211-391`. Shorter SFDIs are padded
 * with leading zeros to 12 digits first (the number is unchanged; the label stays fixed-width).
 */
export function formatSfdi(sfdi: number | string): string {
  const s = String(sfdi).replace(/-/g, '');
  if (!/^\d{1,12}$/.test(s)) throw new RangeError(`not an SFDI: ${JSON.stringify(sfdi)}`);
  const p = s.padStart(12, '0');
  return `${p.slice(0, 3)}-${p.slice(3, 6)}-${p.slice(6, 9)}-${p.slice(9)}`;
}

/** Fingerprint, LFDI and SFDI of a certificate (PEM text, PEM buffer or DER). */
export function identityOf(cert: string | Buffer): DeviceIdentity {
  const fingerprint = fingerprintOf(certificateDer(cert));
  return { fingerprint, lfdi: lfdiFromHash(fingerprint), sfdi: sfdiFromHash(fingerprint) };
}

/** Checks an IANA PEN: an integer in 0..2^32-1. */
export function checkPen(pen: number): number {
  if (!Number.isInteger(pen) || pen < 0 || pen > 0xffffffff) throw new RangeError(`PEN must be an integer in 0..4294967295, got ${pen}`);
  return pen;
}

/**
 * A stable 128-bit mRID, 32 upper-case hex digits: SHA-256 over the gateway id and the parts
 * (each length-prefixed, so ('ab','c') and ('a','bc') differ), leftmost 96 bits, then the PEN
 * in the low 32 bits.
 */
export function stableMrid(pen: number, gatewayId: string, ...parts: string[]): string {
  checkPen(pen);
  const h = createHash('sha256').update('holdfast/2030.5/mrid');
  for (const p of [gatewayId, ...parts]) {
    const b = Buffer.from(p, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    h.update(len).update(b);
  }
  let high = h.digest('hex').slice(0, 24).toUpperCase();
  if (high === 'F'.repeat(24)) high = 'F'.repeat(23) + 'E';
  return high + pen.toString(16).toUpperCase().padStart(8, '0');
}

/** The PEN carried in an mRID's low 32 bits. */
export function penOfMrid(mrid: string): number {
  if (!/^[0-9a-fA-F]{32}$/.test(mrid)) throw new RangeError(`not a 128-bit mRID: ${JSON.stringify(mrid)}`);
  return parseInt(mrid.slice(24), 16);
}
