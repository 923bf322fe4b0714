/**
 * Pure encode/decode of a layer's `.idx` file (byte layout in docs/FORMAT.md).
 * Little-endian fixed-width fields, length-prefixed raw names, CRC-32 over header and entries.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { validateDigest } from '../digest/index.js';
import { crc32 } from './crc32.js';
import type { IndexEntry } from './entry.js';
import { scanRecords, type RecordScanner } from './record-checks.js';
import { bad, decodeRecord, encodeRecord, ENTRY_FIXED_SIZE, LIMITS, recordSize, u64, writeU64, type IndexVersion } from './index-records.js';

export const INDEX_MAGIC = Buffer.from('VMIMGIDX', 'latin1');
/** The version vmimg writes; readers take 1 and 2 (docs/FORMAT.md). */
export const INDEX_VERSION = 2;
export const HEADER_SIZE = 128;
export { ENTRY_FIXED_SIZE, LIMITS };

const FLAG_HAS_DIGEST = 1;

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

function hexToRaw(digest: string, buf: Buffer, at: number): void {
  validateDigest(digest);
  if (!digest.startsWith('sha256:')) throw bad(`only sha256 digests can be stored, got ${digest}`);
  buf.write(digest.slice(7), at, 32, 'hex');
}

function readU64(buf: Buffer, at: number, what: string): number {
  const n = u64(buf, at);
  if (Number.isNaN(n)) throw bad(`${what} is too large`);
  return n;
}

/** What encodeIndex needs: version and entryCount are implied, sizes default to 0. */
export type IndexHeaderInput = Pick<IndexHeader, 'diffId' | 'contentsSize'> & Partial<Omit<IndexHeader, 'diffId' | 'contentsSize'>>;

/**
 * The header for `entryCount` records of `entriesSize` bytes whose CRC-32 is `entriesCrc`. Refuses
 * (ERR_TOO_LARGE) an index over the format's size limit, so vmimg never writes one it cannot read.
 */
export function encodeHeader(header: IndexHeaderInput, entryCount: number, entriesSize: number, entriesCrc: number, version: IndexVersion = INDEX_VERSION): Buffer {
  if (HEADER_SIZE + entriesSize > LIMITS.indexBytes) {
    throw new VmimgError(ErrorCode.TOO_LARGE, `layer index of ${HEADER_SIZE + entriesSize} bytes is over the ${LIMITS.indexBytes}-byte limit of the .idx format`, {
      hint: 'the layer has too many entries or too much metadata (names, xattrs) to index',
      details: { limit: 'indexBytes', limitBytes: LIMITS.indexBytes },
    });
  }
  const buf = Buffer.alloc(HEADER_SIZE);
  INDEX_MAGIC.copy(buf, 0);
  buf.writeUInt16LE(version, 8);
  buf.writeUInt16LE(HEADER_SIZE, 10);
  buf.writeUInt32LE(header.digest !== undefined ? FLAG_HAS_DIGEST : 0, 12);
  buf.writeUInt32LE(entryCount, 16);
  writeU64(buf, header.contentsSize, 24, 'contentsSize');
  writeU64(buf, header.compressedSize ?? 0, 32, 'compressedSize');
  writeU64(buf, header.tarSize ?? 0, 40, 'tarSize');
  writeU64(buf, entriesSize, 48, 'entriesSize');
  if (header.digest !== undefined) hexToRaw(header.digest, buf, 56);
  hexToRaw(header.diffId, buf, 88);
  buf.writeUInt32LE(entriesCrc, 120);
  buf.writeUInt32LE(crc32(buf.subarray(0, 124)), 124);
  return buf;
}

/** A whole `.idx` in one Buffer (version 2 unless asked; version 1 for tests of old files). */
export function encodeIndex(header: IndexHeaderInput, entries: readonly IndexEntry[], version: IndexVersion = INDEX_VERSION): Buffer {
  let entriesSize = 0;
  for (const e of entries) entriesSize += recordSize(e, version);
  encodeHeader(header, entries.length, entriesSize, 0, version); // the size limit, before the big allocation
  const buf = Buffer.alloc(HEADER_SIZE + entriesSize);
  let pos = HEADER_SIZE;
  for (const e of entries) pos = encodeRecord(buf, pos, e, version);
  encodeHeader(header, entries.length, entriesSize, crc32(buf.subarray(HEADER_SIZE)), version).copy(buf, 0);
  return buf;
}

function decodeHeader(buf: Buffer): { header: IndexHeader; entriesSize: number } {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(INDEX_MAGIC)) throw bad('not a vmimg index (bad magic)');
  if (buf.length < HEADER_SIZE) throw bad(`truncated header (${buf.length} bytes)`);
  const version = buf.readUInt16LE(8);
  if (version !== 1 && version !== 2) throw bad(`unsupported format version ${version} (this vmimg reads 1 and 2)`);
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

/** A decoded header and where every record starts: the whole index checked, no object per entry. */
export interface ScannedIndex {
  header: IndexHeader;
  version: IndexVersion;
  buf: Buffer;
  /** Byte offset in `buf` of record i; `starts[entryCount]` is the end of the last. */
  starts: Uint32Array;
}

/**
 * Checks a whole `.idx` (header, CRCs, every record) and finds its records, without decoding them.
 * `records`: the loop over the records, scanRecords unless a caller fuses its own pass into it
 * (ContainerFS's direct pack does: src/vfs/direct-scan.ts); it must check as scanRecords does.
 */
export function scanIndex(buf: Buffer, records: RecordScanner = scanRecords): ScannedIndex {
  try {
    const { header } = decodeHeader(buf);
    const version = header.version as IndexVersion;
    if (header.entryCount > (buf.length - HEADER_SIZE) / ENTRY_FIXED_SIZE[version]) throw bad('entry count exceeds file size');
    const bounds = { version, contentsSize: header.contentsSize, tarSize: header.tarSize };
    const starts = new Uint32Array(header.entryCount + 1);
    const pos = records(buf, HEADER_SIZE, header.entryCount, bounds, starts);
    if (pos !== buf.length) throw bad(`${buf.length - pos} unexpected bytes after the last entry`);
    return { header, version, buf, starts };
  } catch (err) {
    if (err instanceof VmimgError) throw err;
    throw new VmimgError(ErrorCode.INVALID_INDEX, `invalid layer index: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks and decodes a whole `.idx` into IndexEntry objects (ERR_INVALID_INDEX when anything is off). */
export function decodeIndex(buf: Buffer): DecodedIndex {
  const { header, version, starts } = scanIndex(buf);
  const entries: IndexEntry[] = new Array<IndexEntry>(header.entryCount);
  for (let i = 0; i < header.entryCount; i++) entries[i] = decodeRecord(buf, starts[i]!, version);
  return { header, entries };
}

/** Indexes up to this size are read with one synchronous read (a 100k-entry layer's is ~8 MiB). */
const SYNC_READ_BYTES = 16 * 2 ** 20;

/**
 * The whole file, refusing (ERR_INVALID_INDEX) one larger than any index vmimg writes before reading
 * it. Up to SYNC_READ_BYTES in one synchronous read into one buffer: the caller checks every record
 * synchronously right after, and readFile's 512 KiB pieces on the thread pool cost a cold
 * ContainerFS.open ~20 round trips. Larger ones in those pieces: the turns of the event loop between
 * them let the GC finish (a 1 M-entry `load`, whose open follows the flatten, peaked at ~355 MiB
 * instead of ~280 MiB with its 83 MB index read at once).
 */
async function readCapped(path: string): Promise<Buffer> {
  return readSmall(path) ?? (await readLarge(path));
}

/** The file in one synchronous read, or undefined when it is over SYNC_READ_BYTES. */
function readSmall(path: string): Buffer | undefined {
  const fd = openSync(path, 'r');
  try {
    const { size } = fstatSync(fd);
    if (size > SYNC_READ_BYTES) return undefined;
    const buf = Buffer.allocUnsafeSlow(size);
    let got = 0;
    for (let n = 1; got < size && n > 0; got += n) n = readSync(fd, buf, got, size - got, got);
    return got === size ? buf : buf.subarray(0, got); // shrunk meanwhile: the checks refuse it
  } finally {
    closeSync(fd);
  }
}

async function readLarge(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > LIMITS.indexBytes) throw bad(`${path} is ${size} bytes, over the ${LIMITS.indexBytes}-byte limit of the .idx format`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** Reads an `.idx` file and hands it to `decode`; ERR_NOT_FOUND when missing, ERR_INVALID_INDEX (naming the file) when corrupt. */
async function readIndexWith<T>(path: string, decode: (buf: Buffer) => T): Promise<T> {
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
    return decode(buf);
  } catch (err) {
    const e = err as VmimgError;
    throw new VmimgError(e.code, `${path}: ${e.message}`, { cause: err, ...(e.hint ? { hint: e.hint } : {}) });
  }
}

/** Reads and decodes an `.idx` file; ERR_NOT_FOUND when missing, ERR_INVALID_INDEX (naming the file) when corrupt. */
export function readIndexFile(path: string): Promise<DecodedIndex> {
  return readIndexWith(path, decodeIndex);
}

/** Reads and checks an `.idx` file whole (see scanIndex, and its `records`), decoding no entry; errors as readIndexFile. */
export function scanIndexFile(path: string, records?: RecordScanner): Promise<ScannedIndex> {
  return readIndexWith(path, (buf) => scanIndex(buf, records));
}
