/**
 * Pure encode/decode of the `.zran` gzip checkpoint index (docs/FORMAT.md "`.zran`"). No I/O.
 * Decoding checks everything the format promises, so a reader can trust offsets before using them.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { crc32 } from '../layer/crc32.js';
import { digestHex } from '../digest/index.js';

/** File magic and the one version readers accept (docs/FORMAT.md). */
export const ZRAN_MAGIC = 'VMIMGZRN';
export const ZRAN_VERSION = 1;
const HEADER = 128;
const RECORD = 64;
/** zlib's largest window: the furthest a deflate back-reference reaches. */
export const WINDOW_SIZE = 32768;

/** One checkpoint: where inflation can restart (docs/FORMAT.md "Checkpoint record"). */
export interface Checkpoint {
  /** Blob offset of the first byte none of whose bits are used yet. */
  cOff: number;
  /** Tar offset of the first output byte after this point. */
  uOff: number;
  /** 0..7 unused high bits of byte `cOff - 1` that start this span. */
  bits: number;
  /** The first block of a gzip member (no window, no bits). */
  memberStart: boolean;
  /** Bytes the window inflates to (0..32768). */
  winLen: number;
  /** The window, raw-deflated (RFC 1951). */
  window: Uint8Array;
  /** sha256 (hex) of the compressed span `[cOff - (bits ? 1 : 0), next cOff or compressedSize)`. */
  spanSha256: string;
}

/** A whole `.zran`: the layer it indexes and its checkpoints in increasing `uOff`. */
export interface ZranIndex {
  spanSize: number;
  compressedSize: number;
  tarSize: number;
  /** `sha256:<hex>` of the gzip blob. */
  digest: string;
  /** `sha256:<hex>` of the tar. */
  diffId: string;
  memberCount: number;
  checkpoints: Checkpoint[];
}

/** Where span `i` starts in the blob (the partly used byte included) and ends, and its tar range. */
export function spanRange(index: ZranIndex, i: number): { cStart: number; cEnd: number; uStart: number; uEnd: number } {
  const c = index.checkpoints[i]!;
  const next = index.checkpoints[i + 1];
  return {
    cStart: c.cOff - (c.bits ? 1 : 0),
    cEnd: next ? next.cOff : index.compressedSize,
    uStart: c.uOff,
    uEnd: next ? next.uOff : index.tarSize,
  };
}

/** Encodes `index` (throws RangeError on values the format cannot hold: a builder bug). */
export function encodeZran(index: ZranIndex): Buffer {
  const cps = index.checkpoints;
  const windowsSize = cps.reduce((n, c) => n + c.window.length, 0);
  const buf = Buffer.alloc(HEADER + cps.length * RECORD + windowsSize);
  buf.write(ZRAN_MAGIC, 0, 'latin1');
  buf.writeUInt16LE(ZRAN_VERSION, 8);
  buf.writeUInt16LE(HEADER, 10);
  buf.writeUInt32LE(0, 12);
  buf.writeUInt32LE(index.spanSize, 16);
  buf.writeUInt32LE(cps.length, 20);
  writeU64(buf, 24, index.compressedSize);
  writeU64(buf, 32, index.tarSize);
  writeU64(buf, 40, windowsSize);
  Buffer.from(digestHex(index.digest), 'hex').copy(buf, 48);
  Buffer.from(digestHex(index.diffId), 'hex').copy(buf, 80);
  buf.writeUInt32LE(index.memberCount, 112);
  let winOffset = 0;
  let at = HEADER;
  const windowsAt = HEADER + cps.length * RECORD;
  for (const c of cps) {
    writeU64(buf, at, c.cOff);
    writeU64(buf, at + 8, c.uOff);
    buf.writeUInt8(c.bits, at + 16);
    buf.writeUInt8(c.memberStart ? 1 : 0, at + 17);
    buf.writeUInt16LE(c.winLen, at + 18);
    buf.writeUInt32LE(c.window.length, at + 20);
    buf.writeUInt32LE(winOffset, at + 24);
    Buffer.from(c.spanSha256, 'hex').copy(buf, at + 32);
    buf.set(c.window, windowsAt + winOffset);
    winOffset += c.window.length;
    at += RECORD;
  }
  buf.writeUInt32LE(crc32(buf.subarray(HEADER)), 116);
  buf.writeUInt32LE(crc32(buf.subarray(0, 124)), 124);
  return buf;
}

function writeU64(buf: Buffer, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
  buf.writeUInt32LE(v % 0x100000000, at);
  buf.writeUInt32LE(Math.floor(v / 0x100000000), at + 4);
}

function readU64(buf: Buffer, at: number, what: string): number {
  const v = buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x100000000;
  if (!Number.isSafeInteger(v)) bad(`${what} is too large`);
  return v;
}

function bad(why: string): never {
  throw new VmimgError(ErrorCode.INVALID_INDEX, `invalid checkpoint index (.zran): ${why}`, { hint: 'rebuild it with `vmimg index build IMAGE`' });
}

/** Decodes and checks a `.zran` (ERR_INVALID_INDEX naming the first broken rule). */
export function decodeZran(buf: Buffer): ZranIndex {
  if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== ZRAN_MAGIC) bad('bad magic or too short');
  const version = buf.readUInt16LE(8);
  if (version !== ZRAN_VERSION) bad(`version ${version} is not ${ZRAN_VERSION}`);
  if (buf.readUInt32LE(124) !== crc32(buf.subarray(0, 124))) bad('header CRC mismatch');
  if (buf.readUInt16LE(10) !== HEADER || buf.readUInt32LE(12) !== 0 || buf.readUInt32LE(120) !== 0) bad('unknown header size, flags or reserved bits');
  const count = buf.readUInt32LE(20);
  const windowsSize = readU64(buf, 40, 'windowsSize');
  const windowsAt = HEADER + count * RECORD;
  if (count < 1 || buf.length !== windowsAt + windowsSize) bad(`length ${buf.length} does not match ${count} checkpoints and ${windowsSize} window bytes`);
  if (buf.readUInt32LE(116) !== crc32(buf.subarray(HEADER))) bad('body CRC mismatch');
  const index: ZranIndex = {
    spanSize: buf.readUInt32LE(16),
    compressedSize: readU64(buf, 24, 'compressedSize'),
    tarSize: readU64(buf, 32, 'tarSize'),
    digest: `sha256:${buf.toString('hex', 48, 80)}`,
    diffId: `sha256:${buf.toString('hex', 80, 112)}`,
    memberCount: buf.readUInt32LE(112),
    checkpoints: [],
  };
  let winNext = 0;
  for (let i = 0, at = HEADER; i < count; i++, at += RECORD) {
    const c = decodeRecord(buf, at, i);
    const winOffset = buf.readUInt32LE(at + 24);
    const winEncodedLen = buf.readUInt32LE(at + 20);
    if (winOffset !== winNext || winOffset + winEncodedLen > windowsSize) bad(`checkpoint ${i}: window not contiguous`);
    c.window = buf.subarray(windowsAt + winOffset, windowsAt + winOffset + winEncodedLen);
    winNext += winEncodedLen;
    checkOrder(index, c, index.checkpoints[i - 1], i);
    index.checkpoints.push(c);
  }
  if (winNext !== windowsSize) bad('windows section has unused bytes');
  return index;
}

function decodeRecord(buf: Buffer, at: number, i: number): Checkpoint {
  const flags = buf.readUInt8(at + 17);
  if ((flags & ~1) !== 0 || buf.readUInt32LE(at + 28) !== 0) bad(`checkpoint ${i}: unknown flags or reserved bits`);
  return {
    cOff: readU64(buf, at, 'cOff'),
    uOff: readU64(buf, at + 8, 'uOff'),
    bits: buf.readUInt8(at + 16),
    memberStart: (flags & 1) !== 0,
    winLen: buf.readUInt16LE(at + 18),
    window: new Uint8Array(0),
    spanSha256: buf.toString('hex', at + 32, at + 64),
  };
}

function checkOrder(index: ZranIndex, c: Checkpoint, prev: Checkpoint | undefined, i: number): void {
  if (c.bits > 7) bad(`checkpoint ${i}: bits ${c.bits} > 7`);
  if (c.winLen > Math.min(WINDOW_SIZE, c.uOff)) bad(`checkpoint ${i}: window of ${c.winLen} bytes at output ${c.uOff}`);
  if (c.memberStart && (c.bits !== 0 || c.winLen !== 0)) bad(`checkpoint ${i}: a member start with bits or a window`);
  if (prev === undefined && (c.uOff !== 0 || !c.memberStart)) bad('the first checkpoint is not the start of the output');
  if (prev !== undefined && (c.cOff <= prev.cOff || c.uOff < prev.uOff)) bad(`checkpoint ${i}: offsets do not increase`);
  if (c.cOff - (c.bits ? 1 : 0) < 10 || c.cOff > index.compressedSize || c.uOff > index.tarSize) bad(`checkpoint ${i}: offsets outside the blob`);
}
