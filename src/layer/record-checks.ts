/**
 * The checks of one `.idx` record (docs/FORMAT.md): everything a reader relies on — type, flags,
 * lengths, content and tar ranges — before any record is used. `checkRecord` is the definition;
 * `scanRecords` is the loop a whole index goes through, with the common record checked inline.
 */
import { bad, ENTRY_FIXED_SIZE, LIMITS, MAX_TYPE, r16, r32, R_LINK, R_LOWER_LINK, R_SHA256, R_SPARSE, TWO32, u64, type IndexVersion } from './index-records.js';

/** What the record checks need from the header. */
export interface RecordBounds {
  version: IndexVersion;
  contentsSize: number;
  tarSize: number;
}

function need(pos: number, n: number, end: number, i: number): void {
  if (pos + n > end) throw bad(`entry ${i} runs past the end of the index`);
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

/** Version 2's tar fields (docs/FORMAT.md "version 2" checks). */
function checkTarRange(buf: Buffer, at: number, tailEnd: number, b: RecordBounds, i: number): void {
  const type = buf[at]!;
  const sparse = (buf[at + 1]! & R_SPARSE) !== 0;
  const tarOffset = u64(buf, at + 64);
  const size = u64(buf, at + 40);
  if (Number.isNaN(tarOffset)) throw bad(`entry ${i} has an oversized tar offset`);
  if (type !== 1 && type !== 4) {
    if (tarOffset !== 0 || sparse) throw bad(`entry ${i} of type ${type} has a tar offset or the sparse flag`);
    return;
  }
  if (!sparse) {
    if (size > 0 && (tarOffset % 512 !== 0 || tarOffset + size > b.tarSize)) throw bad(`entry ${i} tar range [${tarOffset}, +${size}) is misaligned or outside the tar (${b.tarSize} bytes)`);
    return;
  }
  const headerOffset = u64(buf, tailEnd - 16);
  const stored = u64(buf, tailEnd - 8);
  if (Number.isNaN(headerOffset) || Number.isNaN(stored) || headerOffset % 512 !== 0 || headerOffset >= tarOffset || tarOffset + stored > b.tarSize) {
    throw bad(`entry ${i} has a bad sparse tar range`);
  }
}

/**
 * Checks the record at `at` (everything the decoder relies on: type, flags, lengths, ranges) and
 * returns where the next one starts. Allocates nothing: a whole index is validated before any use.
 */
export function checkRecord(buf: Buffer, at: number, end: number, b: RecordBounds, i: number): number {
  const fixed = ENTRY_FIXED_SIZE[b.version];
  need(at, fixed, end, i);
  const type = buf[at]!;
  const flags = buf[at + 1]!;
  if (type < 1 || type > MAX_TYPE) throw bad(`entry ${i} has unknown type ${type}`);
  const known = b.version === 2 ? R_SHA256 | R_LINK | R_SPARSE | R_LOWER_LINK : R_SHA256 | R_LINK;
  if ((flags & ~known) !== 0 || r32(buf, at + 60) !== 0) throw bad(`entry ${i} has unknown flags or a non-zero reserved field`);
  const pathLen = r32(buf, at + 36);
  const linkLen = r32(buf, at + 56);
  if (r32(buf, at + 24) >= 1e9) throw bad(`entry ${i} has mtime nanoseconds ${r32(buf, at + 24)}`);
  if (pathLen > LIMITS.pathBytes || linkLen > LIMITS.linkBytes) throw bad(`entry ${i} has an oversized name`);
  if (!(flags & R_LINK) && linkLen !== 0) throw bad(`entry ${i} has a link length but no link`);
  const size = u64(buf, at + 40);
  const offset = u64(buf, at + 48);
  if (Number.isNaN(size) || Number.isNaN(offset)) throw bad(`entry ${i} has an oversized size or offset`);
  checkContentRange(type, size, offset, b.contentsSize, i);
  if (flags & R_LOWER_LINK && (type !== 4 || !(flags & R_LINK) || size !== 0)) throw bad(`entry ${i} has the lower-link flag but is not a hardlink without content`);
  let pos = at + fixed + (flags & R_SHA256 ? 32 : 0);
  need(pos, pathLen + linkLen, end, i);
  pos += pathLen + linkLen;
  for (let k = r16(buf, at + 2); k > 0; k--) {
    need(pos, 6, end, i);
    const nameLen = r16(buf, pos);
    const valueLen = r32(buf, pos + 2);
    if (nameLen > LIMITS.xattrName || valueLen > LIMITS.xattrValue) throw bad(`entry ${i} has an oversized xattr`);
    pos += 6;
    need(pos, nameLen + valueLen, end, i);
    pos += nameLen + valueLen;
  }
  if (flags & R_SPARSE) {
    need(pos, 16, end, i);
    pos += 16;
  }
  if (b.version === 2) checkTarRange(buf, at, pos, b, i);
  return pos;
}

/** What `scanIndex` runs over the records: fills `starts` (see scanRecords) and returns the end of the last. */
export type RecordScanner = (buf: Buffer, at: number, count: number, b: RecordBounds, starts: Uint32Array) => number;

/**
 * Checks `count` records from `at` on and fills `starts` (record i at starts[i], the end at
 * starts[count]); `from`: the first record's number (records before it were checked by the caller).
 * The common record is checked by `commonRecordEnd`, anything else, and any failure, by `checkRecord`,
 * which decides (and words the error).
 */
export function scanRecords(buf: Buffer, at: number, count: number, b: RecordBounds, starts: Uint32Array, from = 0): number {
  const view = viewOf(buf);
  for (let i = from; i < count; i++) {
    starts[i] = at;
    const tail = commonRecordEnd(buf, view, at, b);
    at = tail >= 0 ? tail : checkRecord(buf, at, buf.length, b, i);
  }
  starts[count] = at;
  return at;
}

/** A DataView over `buf`'s bytes, for commonRecordEnd. */
export function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Where the record at `at` ends when it is a common one (no xattrs, not sparse, every field in range),
 * else -1 (then `checkRecord` decides). `view` is `viewOf(buf)`. Inline checks, no calls but the
 * view's reads (one load each once optimised, and cheaper than four byte loads before): an index is
 * scanned once per open, mostly before the JIT has optimised anything.
 */
export function commonRecordEnd(buf: Buffer, view: DataView, at: number, b: RecordBounds): number {
  const v2 = b.version === 2;
  const next = at + (v2 ? 72 : 64); // ENTRY_FIXED_SIZE
  if (next > buf.length) return -1;
  const type = buf[at]!;
  const flags = buf[at + 1]!;
  const known = v2 ? R_SHA256 | R_LINK | R_LOWER_LINK : R_SHA256 | R_LINK; // sparse records take checkRecord
  const pathLen = view.getUint32(at + 36, true);
  const linkLen = view.getUint32(at + 56, true);
  const sizeHi = view.getUint32(at + 44, true);
  const offsetHi = view.getUint32(at + 52, true);
  const tarHi = v2 ? view.getUint32(at + 68, true) : 0;
  // no xattrs, a zero reserved field, names of at most 65535 bytes, sizes and offsets safe integers
  let ok = type >= 1 && type <= MAX_TYPE && (flags & ~known) === 0 && (view.getUint16(at + 2, true) | view.getUint32(at + 60, true)) === 0;
  ok &&= view.getUint32(at + 24, true) < 1e9 && pathLen <= 0xffff && linkLen <= 0xffff && ((flags & R_LINK) !== 0 || linkLen === 0);
  ok &&= sizeHi < 0x200000 && offsetHi < 0x200000 && tarHi < 0x200000;
  const sizeLo = view.getUint32(at + 40, true);
  const offsetLo = view.getUint32(at + 48, true);
  const tarLo = v2 ? view.getUint32(at + 64, true) : 0;
  if (type === 1 || type === 4) {
    const size = sizeHi * TWO32 + sizeLo;
    // multiples of 4096 and 512 by their low bits (a double's % is a slow call)
    ok &&= (offsetLo & 0xfff) === 0 && offsetHi * TWO32 + offsetLo + size <= b.contentsSize;
    ok &&= !v2 || size === 0 || ((tarLo & 0x1ff) === 0 && tarHi * TWO32 + tarLo + size <= b.tarSize);
  } else {
    ok &&= (sizeHi | sizeLo | offsetHi | offsetLo | tarHi | tarLo) === 0;
  }
  ok &&= (flags & R_LOWER_LINK) === 0 || (type === 4 && (flags & R_LINK) !== 0 && (sizeHi | sizeLo) === 0);
  const tail = next + (flags & R_SHA256 ? 32 : 0) + pathLen + linkLen;
  return ok && tail <= buf.length ? tail : -1;
}
