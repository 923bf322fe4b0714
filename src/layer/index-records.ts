/**
 * One `.idx` entry record (docs/FORMAT.md): its size, its encoding, its checks, and decoding into an
 * IndexEntry. Version 1 records have 64 fixed bytes; version 2 adds the tar offset (72) and, for
 * sparse files, two u64 after the xattrs. The index codec, the flattener's record table and
 * ContainerFS's record reader all go through here, so there is one description of the bytes.
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCode, VmimgError } from '../errors.js';
import { decodeName, encodeName } from '../util/byte-names.js';
import type { EntryTypeValue, IndexEntry } from './entry.js';

export const ENTRY_FIXED_SIZE = { 1: 64, 2: 72 } as const;
/**
 * Limits the decoder enforces; the encoder refuses to write past them, so vmimg never writes an index
 * it cannot read. `indexBytes` (1 GiB) keeps a whole `.idx` well inside one Buffer.
 */
export const LIMITS = { pathBytes: 65535, linkBytes: 65535, xattrs: 65535, xattrName: 255, xattrValue: 65536, indexBytes: 2 ** 30 };

/**
 * The sha256 of no bytes: what an empty regular file's digest is. Writers since 2026-11-30 store no
 * digest for empty files (32 bytes of a 72-byte record); readers report this one for them.
 */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export const R_SHA256 = 1;
export const R_LINK = 2;
export const R_SPARSE = 4;
export const R_LOWER_LINK = 8;
export const MAX_TYPE = 9;
export const TWO32 = 0x100000000;

export type IndexVersion = 1 | 2;

export function bad(msg: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_INDEX, `invalid layer index: ${msg}`, {
    hint: 'delete the layer files and pull the image again',
  });
}

export function writeU64(buf: Buffer, n: number, at: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw bad(`${what} ${n} is not a non-negative safe integer`);
  buf.writeUInt32LE(n % TWO32, at);
  buf.writeUInt32LE(Math.floor(n / TWO32), at + 4);
}

/**
 * Little-endian reads without Buffer's argument checks: the hot paths (checking and reading a million
 * records) call these several times per record; callers have checked the bounds already.
 */
export function r32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16)) + buf[at + 3]! * 0x1000000;
}

export function r16(buf: Uint8Array, at: number): number {
  return buf[at]! | (buf[at + 1]! << 8);
}

/** NaN when not a safe integer (lets the hot path skip building message strings). */
export function u64(buf: Uint8Array, at: number): number {
  const hi = r32(buf, at + 4);
  return hi >= 0x200000 ? NaN : hi * TWO32 + r32(buf, at);
}

/**
 * A name's bytes: ASCII names (nearly all) stay strings, measured and written without a Buffer each,
 * so encoding a million entries makes no million small Buffers.
 */
function nameBytes(name: string): string | Buffer {
  return Buffer.byteLength(name) === name.length ? name : encodeName(name);
}

function writeName(buf: Buffer, name: string | Buffer, at: number): number {
  return typeof name === 'string' ? buf.write(name, at, 'latin1') : name.copy(buf, at);
}

function linkOf(e: IndexEntry): string | Buffer | undefined {
  return e.linkTargetBytes ?? (e.linkTarget === undefined ? undefined : nameBytes(e.linkTarget));
}

/** The entry's record size in `version`; checks the limits the decoder enforces. */
export function recordSize(e: IndexEntry, version: IndexVersion): number {
  const path = e.pathBytes ?? nameBytes(e.path);
  const link = linkOf(e);
  let size = ENTRY_FIXED_SIZE[version] + path.length + (link?.length ?? 0) + (e.sha256 !== undefined ? 32 : 0);
  if (version === 2 && e.tarSparse !== undefined) size += 16;
  let count = 0;
  for (const k in e.xattrs) {
    const name = nameBytes(k);
    const v = e.xattrs[k]!;
    if (name.length > LIMITS.xattrName || v.length > LIMITS.xattrValue) throw bad(`xattr ${k} of ${e.path} too large`);
    size += 6 + name.length + v.length;
    count++;
  }
  if (path.length > LIMITS.pathBytes) throw bad(`path of ${path.length} bytes is too long`);
  if ((link?.length ?? 0) > LIMITS.linkBytes) throw bad(`link target of ${e.path} is too long`);
  if (count > LIMITS.xattrs) throw bad(`too many xattrs on ${e.path}`);
  return size;
}

/** Writes the record at `at` (the buffer must hold `recordSize` bytes there); returns the end. */
export function encodeRecord(buf: Buffer, at: number, e: IndexEntry, version: IndexVersion): number {
  const path = e.pathBytes ?? nameBytes(e.path);
  const link = linkOf(e);
  const xattrNames = e.xattrs === undefined ? [] : Object.keys(e.xattrs);
  const sparse = version === 2 && e.tarSparse !== undefined;
  buf[at] = e.type;
  const lower = version === 2 && e.lowerLink === true ? R_LOWER_LINK : 0;
  buf[at + 1] = (e.sha256 !== undefined ? R_SHA256 : 0) | (link !== undefined ? R_LINK : 0) | (sparse ? R_SPARSE : 0) | lower;
  buf.writeUInt16LE(xattrNames.length, at + 2);
  buf.writeUInt32LE(e.mode >>> 0, at + 4);
  buf.writeUInt32LE(e.uid >>> 0, at + 8);
  buf.writeUInt32LE(e.gid >>> 0, at + 12);
  buf.writeBigInt64LE(BigInt(Math.trunc(e.mtimeSec)), at + 16);
  buf.writeUInt32LE(e.mtimeNsec >>> 0, at + 24);
  buf.writeUInt32LE(e.devMajor >>> 0, at + 28);
  buf.writeUInt32LE(e.devMinor >>> 0, at + 32);
  buf.writeUInt32LE(path.length, at + 36);
  writeU64(buf, e.size, at + 40, 'size');
  writeU64(buf, e.offset, at + 48, 'offset');
  buf.writeUInt32LE(link?.length ?? 0, at + 56);
  buf.writeUInt32LE(0, at + 60);
  if (version === 2) writeU64(buf, e.tarOffset ?? 0, at + 64, 'tarOffset');
  let pos = at + ENTRY_FIXED_SIZE[version];
  if (e.sha256 !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(e.sha256)) throw bad(`sha256 of ${e.path} is not 64 lowercase hex digits`);
    pos += buf.write(e.sha256, pos, 32, 'hex');
  }
  pos += writeName(buf, path, pos);
  if (link !== undefined) pos += writeName(buf, link, pos);
  for (const k of xattrNames) {
    const name = nameBytes(k);
    const value = e.xattrs![k]!;
    buf.writeUInt16LE(name.length, pos);
    buf.writeUInt32LE(value.length, pos + 2);
    pos += 6;
    pos += writeName(buf, name, pos);
    pos += value.copy(buf, pos);
  }
  if (sparse) {
    writeU64(buf, e.tarSparse!.headerOffset, pos, 'tarHeaderOffset');
    writeU64(buf, e.tarSparse!.storedSize, pos + 8, 'tarStoredSize');
    pos += 16;
  }
  return pos;
}

/** Bytes → string (latin1 for ASCII, fast; UTF-8 otherwise), or a copy of the raw bytes when they are not valid UTF-8. */
export function decodeBytes(buf: Buffer, start: number, end: number): string | Buffer {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) {
      const bytes = buf.subarray(start, end);
      return isUtf8(bytes) ? bytes.toString('utf8') : Buffer.from(bytes);
    }
  }
  return buf.toString('latin1', start, end);
}

/** A name in util/byte-names.ts form (lossless). */
export function decodeText(buf: Buffer, start: number, end: number): string {
  const d = decodeBytes(buf, start, end);
  return typeof d === 'string' ? d : decodeName(d);
}

/** Offset of the record's path bytes; their length is at `at + 36`. */
export function pathStart(buf: Uint8Array, at: number, version: IndexVersion): number {
  return at + ENTRY_FIXED_SIZE[version] + (buf[at + 1]! & R_SHA256 ? 32 : 0);
}

/** Decodes a record that checkRecord accepted into an IndexEntry. */
export function decodeRecord(buf: Buffer, at: number, version: IndexVersion): IndexEntry {
  const flags = buf[at + 1]!;
  const pathLen = buf.readUInt32LE(at + 36);
  const linkLen = buf.readUInt32LE(at + 56);
  const shaAt = flags & R_SHA256 ? at + ENTRY_FIXED_SIZE[version] : -1;
  let pos = pathStart(buf, at, version);
  const path = decodeBytes(buf, pos, pos + pathLen);
  pos += pathLen;
  const link = flags & R_LINK ? decodeBytes(buf, pos, pos + linkLen) : undefined;
  pos += linkLen;
  // One object shape for every entry (absent optionals are undefined) keeps property access monomorphic.
  const entry: IndexEntry = {
    type: buf[at] as EntryTypeValue,
    path: typeof path === 'string' ? path : decodeName(path),
    pathBytes: typeof path === 'string' ? undefined : path,
    mode: buf.readUInt32LE(at + 4),
    uid: buf.readUInt32LE(at + 8),
    gid: buf.readUInt32LE(at + 12),
    mtimeSec: buf.readInt32LE(at + 20) * TWO32 + buf.readUInt32LE(at + 16),
    mtimeNsec: buf.readUInt32LE(at + 24),
    size: u64(buf, at + 40),
    offset: u64(buf, at + 48),
    sha256: shaAt >= 0 ? buf.toString('hex', shaAt, shaAt + 32) : buf[at] === 1 && u64(buf, at + 40) === 0 ? EMPTY_SHA256 : undefined,
    devMajor: buf.readUInt32LE(at + 28),
    devMinor: buf.readUInt32LE(at + 32),
    linkTarget: link === undefined || typeof link === 'string' ? link : decodeName(link),
    linkTargetBytes: link === undefined || typeof link === 'string' ? undefined : link,
    xattrs: undefined,
    tarOffset: version === 2 ? u64(buf, at + 64) : undefined,
    tarSparse: undefined,
    lowerLink: flags & R_LOWER_LINK ? true : undefined,
  };
  const xattrCount = buf.readUInt16LE(at + 2);
  if (xattrCount > 0) pos = decodeXattrs(buf, pos, xattrCount, entry);
  if (flags & R_SPARSE) entry.tarSparse = { headerOffset: u64(buf, pos), storedSize: u64(buf, pos + 8) };
  return entry;
}

/** The xattr records at `pos` (already checked); returns the end. */
export function decodeXattrs(buf: Buffer, pos: number, count: number, entry: { xattrs?: Record<string, Buffer> | undefined }): number {
  const xattrs: Record<string, Buffer> = Object.create(null) as Record<string, Buffer>;
  for (let k = 0; k < count; k++) {
    const nameLen = buf.readUInt16LE(pos);
    const valueLen = buf.readUInt32LE(pos + 2);
    pos += 6;
    const name = decodeText(buf, pos, pos + nameLen);
    xattrs[name] = Buffer.from(buf.subarray(pos + nameLen, pos + nameLen + valueLen));
    pos += nameLen + valueLen;
  }
  entry.xattrs = xattrs;
  return pos;
}
