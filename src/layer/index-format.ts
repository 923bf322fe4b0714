/**
 * Pure encode/decode of a layer's `.idx` file (byte layout in docs/FORMAT.md).
 * Little-endian fixed-width fields, length-prefixed raw names, CRC-32 over header and entries.
 */
import { open } from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
import { ErrorCode, VmimgError } from '../errors.js';
import { validateDigest } from '../digest/index.js';
import { crc32 } from './crc32.js';
import { decodeName, encodeName } from '../util/byte-names.js';
import type { EntryTypeValue, IndexEntry } from './entry.js';

export const INDEX_MAGIC = Buffer.from('VMIMGIDX', 'latin1');
export const INDEX_VERSION = 1;
export const HEADER_SIZE = 128;
export const ENTRY_FIXED_SIZE = 64;
/**
 * Limits the decoder enforces; the encoder refuses to write past them, so vmimg never writes an index
 * it cannot read. `indexBytes` (1 GiB) keeps a whole `.idx` well inside one Buffer.
 */
export const LIMITS = { pathBytes: 65535, linkBytes: 65535, xattrs: 65535, xattrName: 255, xattrValue: 65536, indexBytes: 2 ** 30 };

const FLAG_HAS_DIGEST = 1;
const E_SHA256 = 1;
const MAX_TYPE = 9;
const TWO32 = 0x100000000;

export interface IndexHeader {
  version: number;
  /** Compressed blob digest (`sha256:…`); absent for uncompressed-only sources. */
  digest?: string;
  /** Uncompressed tar digest (`sha256:…`), the layer's diff_id. */
  diffId: string;
  entryCount: number;
  /** Byte length of the `.contents` file. */
  contentsSize: number;
  /** Bytes of the compressed blob (0 when unknown). */
  compressedSize: number;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
}

export interface DecodedIndex {
  header: IndexHeader;
  entries: IndexEntry[];
}

function bad(msg: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_INDEX, `invalid layer index: ${msg}`, {
    hint: 'delete the layer files and pull the image again',
  });
}

function hexToRaw(digest: string, buf: Buffer, at: number): void {
  validateDigest(digest);
  if (!digest.startsWith('sha256:')) throw bad(`only sha256 digests can be stored, got ${digest}`);
  buf.write(digest.slice(7), at, 32, 'hex');
}

function writeU64(buf: Buffer, n: number, at: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw bad(`${what} ${n} is not a non-negative safe integer`);
  buf.writeUInt32LE(n % TWO32, at);
  buf.writeUInt32LE(Math.floor(n / TWO32), at + 4);
}

function readU64(buf: Buffer, at: number, what: string): number {
  const n = u64(buf, at);
  if (Number.isNaN(n)) throw bad(`${what} is too large`);
  return n;
}

/** NaN when not a safe integer (lets the hot path skip building message strings). */
function u64(buf: Buffer, at: number): number {
  const hi = buf.readUInt32LE(at + 4);
  return hi >= 0x200000 ? NaN : hi * TWO32 + buf.readUInt32LE(at);
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

/** The entry's record size; checks the limits the decoder enforces. */
function entrySize(e: IndexEntry): number {
  const path = e.pathBytes ?? nameBytes(e.path);
  const link = e.linkTargetBytes ?? (e.linkTarget === undefined ? undefined : nameBytes(e.linkTarget));
  let size = ENTRY_FIXED_SIZE + path.length + (link?.length ?? 0) + (e.sha256 !== undefined ? 32 : 0);
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

function encodeEntry(buf: Buffer, at: number, e: IndexEntry): number {
  const path = e.pathBytes ?? nameBytes(e.path);
  const link = e.linkTargetBytes ?? (e.linkTarget === undefined ? undefined : nameBytes(e.linkTarget));
  const xattrNames = e.xattrs === undefined ? [] : Object.keys(e.xattrs);
  buf[at] = e.type;
  buf[at + 1] = (e.sha256 !== undefined ? E_SHA256 : 0) | (link !== undefined ? 2 : 0);
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
  let pos = at + ENTRY_FIXED_SIZE;
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
  return pos;
}

/** What encodeIndex needs: version and entryCount are implied, sizes default to 0. */
export type IndexHeaderInput = Pick<IndexHeader, 'diffId' | 'contentsSize'> & Partial<Omit<IndexHeader, 'diffId' | 'contentsSize'>>;

export function encodeIndex(header: IndexHeaderInput, entries: readonly IndexEntry[]): Buffer {
  let entriesSize = 0;
  for (const e of entries) entriesSize += entrySize(e);
  if (HEADER_SIZE + entriesSize > LIMITS.indexBytes) {
    throw new VmimgError(ErrorCode.TOO_LARGE, `layer index of ${HEADER_SIZE + entriesSize} bytes is over the ${LIMITS.indexBytes}-byte limit of the .idx format`, {
      hint: 'the layer has too many entries or too much metadata (names, xattrs) to index',
      details: { limit: 'indexBytes', limitBytes: LIMITS.indexBytes },
    });
  }
  const buf = Buffer.alloc(HEADER_SIZE + entriesSize);
  let pos = HEADER_SIZE;
  for (const e of entries) pos = encodeEntry(buf, pos, e);
  INDEX_MAGIC.copy(buf, 0);
  buf.writeUInt16LE(INDEX_VERSION, 8);
  buf.writeUInt16LE(HEADER_SIZE, 10);
  buf.writeUInt32LE(header.digest !== undefined ? FLAG_HAS_DIGEST : 0, 12);
  buf.writeUInt32LE(entries.length, 16);
  writeU64(buf, header.contentsSize, 24, 'contentsSize');
  writeU64(buf, header.compressedSize ?? 0, 32, 'compressedSize');
  writeU64(buf, header.tarSize ?? 0, 40, 'tarSize');
  writeU64(buf, entriesSize, 48, 'entriesSize');
  if (header.digest !== undefined) hexToRaw(header.digest, buf, 56);
  hexToRaw(header.diffId, buf, 88);
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_SIZE)), 120);
  buf.writeUInt32LE(crc32(buf.subarray(0, 124)), 124);
  return buf;
}

function decodeHeader(buf: Buffer): { header: IndexHeader; entriesSize: number } {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(INDEX_MAGIC)) throw bad('not a vmimg index (bad magic)');
  if (buf.length < HEADER_SIZE) throw bad(`truncated header (${buf.length} bytes)`);
  const version = buf.readUInt16LE(8);
  if (version !== INDEX_VERSION) throw bad(`unsupported format version ${version} (this vmimg reads ${INDEX_VERSION})`);
  if (buf.readUInt32LE(124) !== crc32(buf.subarray(0, 124))) throw bad('header checksum mismatch');
  if (buf.readUInt16LE(10) !== HEADER_SIZE) throw bad('unexpected header size');
  const flags = buf.readUInt32LE(12);
  if ((flags & ~FLAG_HAS_DIGEST) !== 0) throw bad(`unknown header flags 0x${flags.toString(16)}`);
  if (buf.readUInt32LE(20) !== 0) throw bad('reserved header field is not zero');
  const entriesSize = readU64(buf, 48, 'entries size');
  if (buf.length !== HEADER_SIZE + entriesSize) {
    throw bad(`file is ${buf.length} bytes, header says ${HEADER_SIZE + entriesSize} (truncated or trailing data)`);
  }
  if (buf.readUInt32LE(120) !== crc32(buf.subarray(HEADER_SIZE))) throw bad('entries checksum mismatch');
  const header: IndexHeader = {
    version,
    diffId: `sha256:${buf.toString('hex', 88, 120)}`,
    entryCount: buf.readUInt32LE(16),
    contentsSize: readU64(buf, 24, 'contents size'),
    compressedSize: readU64(buf, 32, 'compressed size'),
    tarSize: readU64(buf, 40, 'tar size'),
  };
  if (flags & FLAG_HAS_DIGEST) header.digest = `sha256:${buf.toString('hex', 56, 88)}`;
  return { header, entriesSize };
}

/** Bytes → string (latin1 for ASCII, fast; UTF-8 otherwise), or a copy of the raw bytes when they are not valid UTF-8. */
function decodeBytes(buf: Buffer, start: number, end: number): string | Buffer {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) {
      const bytes = buf.subarray(start, end);
      return isUtf8(bytes) ? bytes.toString('utf8') : Buffer.from(bytes);
    }
  }
  return buf.toString('latin1', start, end);
}

/** A name in util/byte-names.ts form (lossless), for xattr names. */
function decodeText(buf: Buffer, start: number, end: number): string {
  const d = decodeBytes(buf, start, end);
  return typeof d === 'string' ? d : decodeName(d);
}

function need(pos: number, n: number, end: number, i: number): void {
  if (pos + n > end) throw bad(`entry ${i} runs past the end of the index`);
}

/** Decoder cursor: one object per decode instead of a tuple per entry. */
interface Cursor {
  buf: Buffer;
  pos: number;
  end: number;
  contentsSize: number;
}

/** Files and hardlinks (which copy their target's range) must point inside .contents; other types carry no content. */
function checkContentRange(type: number, size: number, offset: number, contentsSize: number, i: number): void {
  if (type === 1 || type === 4) {
    if (offset % 4096 !== 0 || offset + size > contentsSize) {
      throw bad(`entry ${i} content [${offset}, +${size}) is misaligned or outside .contents (${contentsSize} bytes)`);
    }
  } else if (size !== 0 || offset !== 0) {
    throw bad(`entry ${i} of type ${type} has a non-zero size or offset`);
  }
}

function decodeEntry(c: Cursor, i: number): IndexEntry {
  const { buf, end } = c;
  const at = c.pos;
  need(at, ENTRY_FIXED_SIZE, end, i);
  const type = buf[at]!;
  const flags = buf[at + 1]!;
  if (type < 1 || type > MAX_TYPE) throw bad(`entry ${i} has unknown type ${type}`);
  if ((flags & ~3) !== 0 || buf.readUInt32LE(at + 60) !== 0) throw bad(`entry ${i} has unknown flags or a non-zero reserved field`);
  const pathLen = buf.readUInt32LE(at + 36);
  const linkLen = buf.readUInt32LE(at + 56);
  const mtimeNsec = buf.readUInt32LE(at + 24);
  if (mtimeNsec >= 1e9) throw bad(`entry ${i} has mtime nanoseconds ${mtimeNsec}`);
  if (pathLen > LIMITS.pathBytes || linkLen > LIMITS.linkBytes) throw bad(`entry ${i} has an oversized name`);
  if (!(flags & 2) && linkLen !== 0) throw bad(`entry ${i} has a link length but no link`);
  const size = u64(buf, at + 40);
  const offset = u64(buf, at + 48);
  if (Number.isNaN(size) || Number.isNaN(offset)) throw bad(`entry ${i} has an oversized size or offset`);
  checkContentRange(type, size, offset, c.contentsSize, i);
  let pos = at + ENTRY_FIXED_SIZE;
  const shaAt = flags & E_SHA256 ? pos : -1;
  if (shaAt >= 0) pos += 32;
  need(pos, pathLen + linkLen, end, i);
  const path = decodeBytes(buf, pos, pos + pathLen);
  pos += pathLen;
  const link = flags & 2 ? decodeBytes(buf, pos, pos + linkLen) : undefined;
  pos += linkLen;
  // One object shape for every entry (absent optionals are undefined) keeps property access monomorphic.
  const entry: IndexEntry = {
    type: type as EntryTypeValue,
    path: typeof path === 'string' ? path : decodeName(path),
    pathBytes: typeof path === 'string' ? undefined : path,
    mode: buf.readUInt32LE(at + 4),
    uid: buf.readUInt32LE(at + 8),
    gid: buf.readUInt32LE(at + 12),
    mtimeSec: buf.readInt32LE(at + 20) * TWO32 + buf.readUInt32LE(at + 16),
    mtimeNsec,
    size,
    offset,
    sha256: shaAt >= 0 ? buf.toString('hex', shaAt, shaAt + 32) : undefined,
    devMajor: buf.readUInt32LE(at + 28),
    devMinor: buf.readUInt32LE(at + 32),
    linkTarget: link === undefined || typeof link === 'string' ? link : decodeName(link),
    linkTargetBytes: link === undefined || typeof link === 'string' ? undefined : link,
    xattrs: undefined,
  };
  const xattrCount = buf.readUInt16LE(at + 2);
  c.pos = xattrCount > 0 ? decodeXattrs(buf, pos, end, i, xattrCount, entry) : pos;
  return entry;
}

function decodeXattrs(buf: Buffer, pos: number, end: number, i: number, count: number, entry: IndexEntry): number {
  const xattrs: Record<string, Buffer> = Object.create(null) as Record<string, Buffer>;
  for (let k = 0; k < count; k++) {
    need(pos, 6, end, i);
    const nameLen = buf.readUInt16LE(pos);
    const valueLen = buf.readUInt32LE(pos + 2);
    if (nameLen > LIMITS.xattrName || valueLen > LIMITS.xattrValue) throw bad(`entry ${i} has an oversized xattr`);
    pos += 6;
    need(pos, nameLen + valueLen, end, i);
    const name = decodeText(buf, pos, pos + nameLen);
    xattrs[name] = Buffer.from(buf.subarray(pos + nameLen, pos + nameLen + valueLen));
    pos += nameLen + valueLen;
  }
  entry.xattrs = xattrs;
  return pos;
}

export function decodeIndex(buf: Buffer): DecodedIndex {
  try {
    const { header } = decodeHeader(buf);
    const entries: IndexEntry[] = new Array<IndexEntry>(header.entryCount);
    if (header.entryCount > (buf.length - HEADER_SIZE) / ENTRY_FIXED_SIZE) throw bad('entry count exceeds file size');
    const cursor: Cursor = { buf, pos: HEADER_SIZE, end: buf.length, contentsSize: header.contentsSize };
    for (let i = 0; i < header.entryCount; i++) entries[i] = decodeEntry(cursor, i);
    if (cursor.pos !== buf.length) throw bad(`${buf.length - cursor.pos} unexpected bytes after the last entry`);
    return { header, entries };
  } catch (err) {
    if (err instanceof VmimgError) throw err;
    throw new VmimgError(ErrorCode.INVALID_INDEX, `invalid layer index: ${(err as Error).message}`, { cause: err });
  }
}

/** The whole file, refusing (ERR_INVALID_INDEX) one larger than any index vmimg writes before reading it. */
async function readCapped(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > LIMITS.indexBytes) throw bad(`${path} is ${size} bytes, over the ${LIMITS.indexBytes}-byte limit of the .idx format`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** Reads and decodes an `.idx` file; ERR_NOT_FOUND when missing, ERR_INVALID_INDEX (naming the file) when corrupt. */
export async function readIndexFile(path: string): Promise<DecodedIndex> {
  let buf: Buffer;
  try {
    buf = await readCapped(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new VmimgError(ErrorCode.NOT_FOUND, `layer index ${path} does not exist`, { cause: err });
    }
    throw err;
  }
  try {
    return decodeIndex(buf);
  } catch (err) {
    const e = err as VmimgError;
    throw new VmimgError(e.code, `${path}: ${e.message}`, { cause: err, ...(e.hint ? { hint: e.hint } : {}) });
  }
}
