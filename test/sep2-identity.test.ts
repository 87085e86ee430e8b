/**
 * IEEE 2030.5 device and resource identities (drivers/sep2/identity.ts).
 *
 * The anchor is the standard's own worked example (IEEE 2030.5-2018, security section, device
 * identification): a certificate whose SHA-256 fingerprint starts 3E4F45AB31EDFE5B67E343E5E4562E
 * 31984E23E5 has LFDI 3E4F45AB31EDFE5B67E343E5E4562E31984E23E5 and SFDI 167261211391, printed
 * 167-261-211-391. Only the leftmost 160 bits of the fingerprint are used by either identifier,
 * so the rest of the 64-digit fingerprint below is filler of ours, and the test also proves the
 * filler does not matter.
 *
 * From DER: a real certificate made with the openssl CLI; the oracle is `openssl x509
 * -fingerprint -sha256` plus an independent BigInt computation of the SFDI, not our own hash.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  certificateDer, fingerprintOf, formatSfdi, identityOf, isValidSfdi, lfdiFromHash, penOfMrid, SFDI_MAX, SFDI_MAX_VALUE,
  sfdiCheckDigit, sfdiFromHash, stableMrid,
} from '../drivers/sep2/identity.js';
import { makePki } from './helpers/sep2-server.js';

const EXAMPLE_PREFIX = '3E4F45AB31EDFE5B67E343E5E4562E31984E23E5';
const EXAMPLE_HASH = EXAMPLE_PREFIX + '0123456789ABCDEF0123456789ABCDEF'.slice(0, 24);

t.test('the standard worked example, from the hash', async (t) => {
  t.equal(EXAMPLE_HASH.length, 64);
  t.equal(lfdiFromHash(EXAMPLE_HASH), '3E4F45AB31EDFE5B67E343E5E4562E31984E23E5', 'LFDI = leftmost 160 bits');
  t.equal(sfdiFromHash(EXAMPLE_HASH), 167261211391, 'SFDI = leftmost 36 bits in decimal + check digit');
  t.equal(formatSfdi(sfdiFromHash(EXAMPLE_HASH)), '167-261-211-391');
  t.equal(0x3e4f45ab3, 16726121139, 'the 36-bit value');
  t.equal(sfdiCheckDigit(16726121139), 1, 'digit sum 39 -> check digit 1');
  t.equal(lfdiFromHash(EXAMPLE_HASH.toLowerCase()), EXAMPLE_PREFIX, 'lower-case input, upper-case LFDI');
  t.equal(sfdiFromHash(EXAMPLE_PREFIX), 167261211391, 'only the prefix matters');
  t.equal(sfdiFromHash(EXAMPLE_PREFIX + 'F'.repeat(24)), 167261211391, 'whatever follows it');
  const colons = EXAMPLE_HASH.match(/../g)!.join(':');
  t.equal(lfdiFromHash(colons), EXAMPLE_PREFIX, 'openssl-style colons are accepted');
  t.throws(() => lfdiFromHash('3E4F45AB'), RangeError, 'too short for an LFDI');
  t.throws(() => sfdiFromHash('XYZ456789'), RangeError, 'not hex');
});

t.test('check digit: the digit sum is a multiple of 10', async (t) => {
  t.equal(sfdiCheckDigit(0), 0);
  t.equal(sfdiCheckDigit(9), 1);
  t.equal(sfdiCheckDigit(55), 0);
  t.equal(sfdiCheckDigit(SFDI_MAX_VALUE), 7, '68719476735 sums to 63 -> 7');
  t.equal(SFDI_MAX, 687194767359, 'schema SFDIType bound: 2^36-1 followed by a 9');
  t.ok(isValidSfdi(687194767357), 'the largest real SFDI');
  let seed = 7;
  for (let i = 0; i < 500; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const v = Math.floor((seed / 2 ** 31) * SFDI_MAX_VALUE);
    const sfdi = v * 10 + sfdiCheckDigit(v);
    const sum = [...String(sfdi)].reduce((a, d) => a + Number(d), 0);
    if (sum % 10 !== 0 || !isValidSfdi(sfdi)) t.fail(`bad check digit for ${v}`);
  }
  t.ok(isValidSfdi(167261211391));
  t.notOk(isValidSfdi(167261211392), 'wrong check digit');
  t.notOk(isValidSfdi(SFDI_MAX + 10), 'out of range');
  t.throws(() => sfdiCheckDigit(-1), RangeError);
});

t.test('formatting', async (t) => {
  t.equal(formatSfdi(167261211391), '167-261-211-391');
  t.equal(formatSfdi('167261211391'), '167-261-211-391');
  t.equal(formatSfdi('167-261-211-391'), '167-261-211-391', 'idempotent');
  t.equal(formatSfdi(12), '000-000-000-012', 'short SFDIs padded to 12 digits');
  t.throws(() => formatSfdi('1234567890123'), RangeError, 'more than 12 digits');
  t.throws(() => formatSfdi('12a'), RangeError);
});

t.test('from a DER certificate, checked against openssl', async (t) => {
  const pki = makePki();
  const pem = readFileSync(pki.clientCert, 'utf8');
  const der = certificateDer(pem);
  t.same(der, execFileSync('openssl', ['x509', '-in', pki.clientCert, '-outform', 'DER']), 'DER as openssl writes it');
  const out = execFileSync('openssl', ['x509', '-in', pki.clientCert, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
  const oracle = out.split('=')[1].trim().replace(/:/g, '').toUpperCase();
  t.equal(fingerprintOf(der), oracle, 'SHA-256 over DER = openssl fingerprint');
  const id = identityOf(der);
  t.same(identityOf(pem), id, 'PEM text and DER give the same identity');
  t.same(identityOf(Buffer.from(pem)), id, 'PEM buffer too');
  t.equal(id.lfdi, oracle.slice(0, 40));
  const v = Number(BigInt('0x' + oracle) >> 220n);
  const sum = [...String(v)].reduce((a, d) => a + Number(d), 0);
  t.equal(id.sfdi, v * 10 + ((10 - (sum % 10)) % 10), 'SFDI from the top 36 bits, computed independently');
  t.throws(() => certificateDer(Buffer.from('not a certificate')));
});

t.test('mRIDs: 128 bits, PEN in the low 32, stable per gateway/device/point', async (t) => {
  const a = stableMrid(32473, 'gw-1', 'mmr', 'meter-1', 'voltage_l1');
  t.match(a, /^[0-9A-F]{32}$/);
  t.equal(penOfMrid(a), 32473);
  t.equal(a.slice(24), '00007ED9', 'PEN 32473 (RFC 5612, for documentation)');
  t.equal(stableMrid(32473, 'gw-1', 'mmr', 'meter-1', 'voltage_l1'), a, 'stable');
  t.not(stableMrid(32473, 'gw-2', 'mmr', 'meter-1', 'voltage_l1'), a, 'another gateway');
  t.not(stableMrid(32473, 'gw-1', 'mmr', 'meter-2', 'voltage_l1'), a, 'another device');
  t.not(stableMrid(32473, 'gw-1', 'mmr', 'meter-1', 'voltage_l2'), a, 'another point');
  t.not(stableMrid(32473, 'gw-1', 'mmr', 'meter-1v', 'oltage_l1'), a, 'parts are delimited');
  t.equal(stableMrid(32473, 'gw-1', 'mmr', 'meter-1', 'voltage_l1').slice(0, 24), stableMrid(0, 'gw-1', 'mmr', 'meter-1', 'voltage_l1').slice(0, 24), 'PEN only in the low bits');
  t.equal(penOfMrid(stableMrid(0xffffffff, 'g')), 0xffffffff);
  t.throws(() => stableMrid(-1, 'g'), RangeError);
  t.throws(() => stableMrid(2 ** 32, 'g'), RangeError);
  t.throws(() => stableMrid(1.5, 'g'), RangeError);
});
