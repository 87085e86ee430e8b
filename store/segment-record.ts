/**
 * Self-describing records: the format of segment files from format 1 on, and of spool files.
 *
 * A format-1 file starts with a 16-byte file header (`HFSEG`, a NUL, the format number, the
 * kind: segment or spool). Then records follow, each one:
 *
 *   0  u32  magic 'HFR1'
 *   4  u8   type: 1 batch, 2 source cursor, 3 acknowledgement (spool only)
 *   5  u8   flags: bit 0 body encrypted (zlib+aes256gcm), bit 1 downsampled batch
 *   6  u16  meta length
 *   8  u32  body length
 *  12  u32  CRC-32 of the body
 *  16  u32  CRC-32 of bytes 0..15 and the meta
 *  20  meta (type-specific, below), then the body
 *
 * A batch's meta carries everything its `payloads` row holds but where the body is (key, device,
 * counts, times, hash, key id, IV, tag, the source cursor), so a segment can be re-indexed with
 * no database at all (store/salvage.ts). The header CRC makes a scanner trust the lengths before
 * it follows them; the body CRC tells a torn or rotten body from a good one. A row's
 * body_offset points at the body, so readers never look at headers: files written before
 * format 1 (no file header, bare bodies) still read through their rows.
 */
import type { EncodedPayload } from './codec.js';

export const FILE_HEADER_BYTES = 16;
const FILE_MAGIC = Buffer.from('HFSEG\0', 'latin1');
export const RECORD_FORMAT = 1;
export type FileKind = 'segment' | 'spool';
const KIND = { segment: 1, spool: 2 } as const;

const MAGIC = 0x48465231; // 'HFR1' big-endian, readable in a hex dump
const MAGIC_BYTES = Buffer.from('HFR1', 'latin1');
export const RECORD_HEAD_BYTES = 20;
/** A record larger than this is taken for garbage by a scanner (a batch body is far smaller). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export const RecordType = { batch: 1, cursor: 2, ack: 3 } as const;
export type RecordTypeName = keyof typeof RecordType;

const FLAG_AES = 1;
const FLAG_DOWNSAMPLED = 2;

// CRC-32 (IEEE 802.3, as zlib's): table-driven, since zlib.crc32 is newer than some Node 20 releases.
const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

export function crc32(buf: Uint8Array, crc = 0): number {
  let c = ~crc;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export function fileHeader(kind: FileKind): Buffer {
  const b = Buffer.alloc(FILE_HEADER_BYTES);
  FILE_MAGIC.copy(b, 0);
  b.writeUInt16LE(RECORD_FORMAT, 6);
  b[8] = KIND[kind];
  return b;
}

/** The format of a file from its first bytes: 1 (and its kind), or 0 (bare bodies: before format 1). */
export function fileFormat(first: Buffer): { format: number; kind: FileKind | null } {
  if (first.length < FILE_HEADER_BYTES || !first.subarray(0, 6).equals(FILE_MAGIC)) return { format: 0, kind: null };
  const kind = first[8] === KIND.spool ? 'spool' : first[8] === KIND.segment ? 'segment' : null;
  return { format: first.readUInt16LE(6), kind };
}

/** What a batch record says about its batch (a `payloads` row without the body's place). */
export interface BatchMeta {
  key: string;
  device: string;
  readingCount: number;
  firstTs: number;
  lastTs: number;
  createdAt: number;
  hash: Buffer;
  codec: EncodedPayload['codec'];
  keyId: string | null;
  iv: Buffer | null;
  tag: Buffer | null;
  /** The source cursor committed with this batch, if its source has one. */
  cursor: number | null;
  downsampled: boolean;
}

export interface CursorMeta {
  device: string;
  cursor: number;
}

export interface AckMeta {
  key: string;
  uplink: string;
  requestAt: number;
  ackAt: number;
}

/** Appends and reads length-prefixed fields of a meta block. */
class MetaWriter {
  private parts: Buffer[] = [];
  f64(v: number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v);
    this.parts.push(b);
    return this;
  }
  bytes(v: Buffer | null): this {
    const n = v?.length ?? 0;
    if (n > 0xffff) throw new RangeError('meta field longer than 65535 bytes');
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE(n);
    this.parts.push(b);
    if (v && n > 0) this.parts.push(v);
    return this;
  }
  str(v: string | null): this {
    return this.bytes(v === null ? null : Buffer.from(v, 'utf8'));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class MetaReader {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  private need(n: number): void {
    if (this.at + n > this.b.length) throw new RangeError('meta ends early');
  }
  f64(): number {
    this.need(8);
    const v = this.b.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  bytes(): Buffer {
    this.need(2);
    const n = this.b.readUInt16LE(this.at);
    this.at += 2;
    this.need(n);
    const v = Buffer.from(this.b.subarray(this.at, this.at + n));
    this.at += n;
    return v;
  }
  str(): string {
    return this.bytes().toString('utf8');
  }
}

function head(type: number, flags: number, meta: Buffer, body: Buffer | null): Buffer {
  const h = Buffer.allocUnsafe(RECORD_HEAD_BYTES + meta.length);
  h.writeUInt32BE(MAGIC, 0);
  h[4] = type;
  h[5] = flags;
  h.writeUInt16LE(meta.length, 6);
  h.writeUInt32LE(body?.length ?? 0, 8);
  h.writeUInt32LE(body && body.length > 0 ? crc32(body) : 0, 12);
  meta.copy(h, RECORD_HEAD_BYTES);
  h.writeUInt32LE(crc32(meta, crc32(h.subarray(0, 16))), 16);
  return h;
}

/** The header (everything before the body) of a batch record. */
export function batchHead(m: BatchMeta, body: Buffer): Buffer {
  const meta = new MetaWriter()
    .str(m.key).str(m.device).u32(m.readingCount).f64(m.firstTs).f64(m.lastTs).f64(m.createdAt)
    .f64(m.cursor ?? Number.NaN).bytes(m.hash).str(m.keyId).bytes(m.iv).bytes(m.tag)
    .done();
  return head(RecordType.batch, (m.codec === 'zlib+aes256gcm' ? FLAG_AES : 0) | (m.downsampled ? FLAG_DOWNSAMPLED : 0), meta, body);
}

export function cursorRecord(m: CursorMeta): Buffer {
  return head(RecordType.cursor, 0, new MetaWriter().str(m.device).f64(m.cursor).done(), null);
}

export function ackRecord(m: AckMeta): Buffer {
  return head(RecordType.ack, 0, new MetaWriter().str(m.key).str(m.uplink).f64(m.requestAt).f64(m.ackAt).done(), null);
}

function batchMeta(flags: number, meta: Buffer): BatchMeta {
  const r = new MetaReader(meta);
  const key = r.str();
  const device = r.str();
  const readingCount = r.u32();
  const firstTs = r.f64();
  const lastTs = r.f64();
  const createdAt = r.f64();
  const cursor = r.f64();
  const hash = r.bytes();
  const keyId = r.str();
  const iv = r.bytes();
  const tag = r.bytes();
  const aes = (flags & FLAG_AES) !== 0;
  return {
    key, device, readingCount, firstTs, lastTs, createdAt, hash, codec: aes ? 'zlib+aes256gcm' : 'zlib',
    keyId: aes ? keyId : null, iv: aes ? iv : null, tag: aes ? tag : null,
    cursor: Number.isNaN(cursor) ? null : cursor, downsampled: (flags & FLAG_DOWNSAMPLED) !== 0,
  };
}

export type ScannedRecord =
  | { type: 'batch'; offset: number; bodyOffset: number; bodyLength: number; end: number; meta: BatchMeta; body: Buffer }
  | { type: 'cursor'; offset: number; end: number; meta: CursorMeta }
  | { type: 'ack'; offset: number; end: number; meta: AckMeta };

export interface ScanResult {
  records: ScannedRecord[];
  /** Bytes that are not part of a good record (torn tails, rotten bytes), and where the runs of them start. */
  badBytes: number;
  badRuns: number[];
  /** Records whose header was good but whose body failed its CRC (counted in badBytes too). */
  badBodies: number;
}

/**
 * Every good record of a format-1 file's bytes (`buf`, whole file), in order. A bad stretch (a
 * torn tail after a crash, a rotten sector, bytes written over) is skipped up to the next
 * record magic whose header checks out, and counted.
 */
export function scanRecords(buf: Buffer): ScanResult {
  const out: ScanResult = { records: [], badBytes: 0, badRuns: [], badBodies: 0 };
  let at = FILE_HEADER_BYTES;
  let badFrom = -1;
  const bad = (from: number, to: number) => {
    if (badFrom < 0) {
      badFrom = from;
      out.badRuns.push(from);
    }
    out.badBytes += to - from;
  };
  while (at < buf.length) {
    const r = recordAt(buf, at);
    if (r === null) {
      const next = buf.indexOf(MAGIC_BYTES, at + 1);
      const to = next < 0 ? buf.length : next;
      bad(at, to);
      at = to;
      continue;
    }
    if (r === 'body') {
      out.badBodies++;
      const end = at + RECORD_HEAD_BYTES + buf.readUInt16LE(at + 6) + buf.readUInt32LE(at + 8);
      bad(at, end);
      at = end;
      continue;
    }
    badFrom = -1;
    out.records.push(r);
    at = r.end;
  }
  return out;
}

/** The record at `at`: null when no good header starts there, 'body' when the header is good but the body is not. */
function recordAt(buf: Buffer, at: number): ScannedRecord | 'body' | null {
  if (at + RECORD_HEAD_BYTES > buf.length || buf.readUInt32BE(at) !== MAGIC) return null;
  const type = buf[at + 4];
  const flags = buf[at + 5];
  const metaLen = buf.readUInt16LE(at + 6);
  const bodyLen = buf.readUInt32LE(at + 8);
  const metaEnd = at + RECORD_HEAD_BYTES + metaLen;
  if (metaEnd > buf.length || bodyLen > MAX_RECORD_BYTES) return null;
  const meta = buf.subarray(at + RECORD_HEAD_BYTES, metaEnd);
  if (crc32(meta, crc32(buf.subarray(at, at + 16))) !== buf.readUInt32LE(at + 16)) return null;
  const end = metaEnd + bodyLen;
  if (end > buf.length) return null; // a torn tail: the header made it, the body did not
  const body = buf.subarray(metaEnd, end);
  if ((bodyLen > 0 ? crc32(body) : 0) !== buf.readUInt32LE(at + 12)) return 'body';
  try {
    if (type === RecordType.batch) return { type: 'batch', offset: at, bodyOffset: metaEnd, bodyLength: bodyLen, end, meta: batchMeta(flags, Buffer.from(meta)), body };
    const r = new MetaReader(Buffer.from(meta));
    if (type === RecordType.cursor) return { type: 'cursor', offset: at, end, meta: { device: r.str(), cursor: r.f64() } };
    if (type === RecordType.ack) return { type: 'ack', offset: at, end, meta: { key: r.str(), uplink: r.str(), requestAt: r.f64(), ackAt: r.f64() } };
  } catch {
    return null;
  }
  return null; // an unknown type: skipped as bad bytes rather than guessed at
}
