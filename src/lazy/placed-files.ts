/**
 * Where a lazy layer's file bytes go: the regular files of its `.idx` v2 by `.contents` offset (which is
 * also tar order), the lookups from `.contents` and tar positions to them, and the write of an inflated
 * span's tar bytes into `.contents` (docs/FORMAT.md "`.contents`": each file 4096-aligned).
 */
import { writevSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { ScannedIndex } from '../layer/index-format.js';
import { ENTRY_FIXED_SIZE, R_SHA256, R_SPARSE, u64 } from '../layer/index-records.js';
import { CONTENTS_ALIGN } from '../layer/contents-writer.js';
import type { ZranIndex } from './zran-format.js';

/** A regular file's bytes in `.contents` and in the tar. */
export interface Placed {
  offset: number;
  size: number;
  tarOffset: number;
  sha256: string | undefined;
  /** Checked against `sha256` once read whole. */
  verified: boolean;
}

/** A lazy layer's file table: its files by `.contents` offset, and whether any is sparse. */
export interface FileTable {
  files: Placed[];
  /** A sparse file has content: lazy reads cannot place it (`pull --lazy` pulls such a layer whole; LazyContent refuses it). */
  sparse: boolean;
}

/**
 * The file table of a checked `.idx` version 2 ({@link scanIndex}), read straight from its records:
 * regular files with content, once each (hardlinks share their target's bytes and `.contents` offset),
 * by `.contents` offset. Decoding every record into an IndexEntry first (its path, names, times) cost a
 * layer's first lazy read ~10 ms and as much again in GC for ~10k entries (session 13, profile of
 * `bench/profile-lazy.ts first`); this reads four fields and the digest of each. A version 1 index has
 * no tar offsets: no file can be placed from it.
 */
export function fileTable({ buf, starts, version, header }: ScannedIndex): FileTable {
  const seen = new Set<number>();
  const files: Placed[] = [];
  let sparse = false;
  for (let i = 0; version === 2 && i < header.entryCount; i++) {
    const at = starts[i]!;
    const size = u64(buf, at + 40);
    const offset = u64(buf, at + 48);
    if (size === 0 || seen.has(offset)) continue;
    seen.add(offset);
    const flags = buf[at + 1]!;
    if (flags & R_SPARSE) sparse = true;
    const shaAt = flags & R_SHA256 ? at + ENTRY_FIXED_SIZE[2] : -1;
    files.push({ offset, size, tarOffset: u64(buf, at + 64), sha256: shaAt >= 0 ? buf.toString('hex', shaAt, shaAt + 32) : undefined, verified: false });
  }
  return { files: files.sort((a, b) => a.offset - b.offset), sparse };
}

/** The last span whose checkpoint is at or before tar offset `u`. */
export function spanAt(zran: ZranIndex, u: number): number {
  let lo = 0;
  let hi = zran.checkpoints.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (zran.checkpoints[mid]!.uOff <= u) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Binary search in files sorted by `key`: the first whose `[key, key + size)` ends after `pos`. */
export function firstEndingAfter(files: readonly Placed[], pos: number, key: 'offset' | 'tarOffset'): number {
  let lo = 0;
  let hi = files.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const f = files[mid]!;
    if (f[key] + f.size <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const ZEROS = new Uint8Array(CONTENTS_ALIGN);

/**
 * One positional write of a span's tar bytes into `.contents`: at `pos`, the pieces in `parts` as pairs
 * `[start, end)` of the span's tar output, or `[-1, n]` for n alignment zeros between two files.
 */
export interface WriteGroup {
  pos: number;
  parts: number[];
}

/**
 * Where tar bytes `[at, at + length)` go in `.contents`: one group per stretch of files that follow each
 * other there (only alignment padding between them, written as the zeros an eager flatten writes), so
 * a span of small files is a few system calls, not one per file.
 */
export function writePlan(files: readonly Placed[], at: number, length: number): WriteGroup[] {
  const end = at + length;
  const groups: WriteGroup[] = [];
  let next = -1; // `.contents` position right after the last piece
  for (let k = firstEndingAfter(files, at, 'tarOffset'); k < files.length && files[k]!.tarOffset < end; k++) {
    const f = files[k]!;
    const a = Math.max(at, f.tarOffset);
    const b = Math.min(end, f.tarOffset + f.size);
    if (a >= b) continue;
    const pos = f.offset + (a - f.tarOffset);
    const gap = pos - next;
    if (next < 0 || gap < 0 || gap >= CONTENTS_ALIGN) groups.push({ pos, parts: [] });
    else if (gap > 0) groups[groups.length - 1]!.parts.push(-1, gap);
    groups[groups.length - 1]!.parts.push(a - at, b - at);
    next = pos + (b - a);
  }
  return groups;
}

/** The buffers of `group` over `tar`. */
function pieces(tar: Uint8Array, group: WriteGroup): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let j = 0; j < group.parts.length; j += 2) {
    const [a, b] = [group.parts[j]!, group.parts[j + 1]!];
    out.push(a < 0 ? ZEROS.subarray(0, b) : tar.subarray(a, b));
  }
  return out;
}

/**
 * Writes the part of `plan` that `chunk`, the plan's tar bytes `[at, at + chunk.length)`, holds into the
 * `.contents` open as `fd` (synchronous: the span worker's way). Called for consecutive chunks it writes
 * what {@link placeTar} writes of them at once; a run of alignment zeros goes with the chunk holding the
 * end of the file piece before it.
 */
export function writePlanPartSync(fd: number, chunk: Uint8Array, at: number, plan: readonly WriteGroup[]): void {
  const end = at + chunk.length;
  for (const g of plan) {
    let pos = g.pos; // `.contents` position of the current part
    const bufs: Uint8Array[] = [];
    let from = -1; // `.contents` position of bufs[0]
    let prevEnd = -1; // tar end of the last piece
    for (let j = 0; j < g.parts.length; j += 2) {
      const [a, b] = [g.parts[j]!, g.parts[j + 1]!];
      const zeros = a < 0;
      const length = zeros ? b : b - a;
      const take = zeros ? (prevEnd > at && prevEnd <= end ? [0, b] : undefined) : a < end && b > at ? [Math.max(a, at) - a, Math.min(b, end) - a] : undefined;
      if (take !== undefined) {
        if (from < 0) from = pos + take[0]!;
        bufs.push(zeros ? ZEROS.subarray(0, b) : chunk.subarray(a + take[0]! - at, a + take[1]! - at));
      }
      if (!zeros) prevEnd = b;
      pos += length;
    }
    if (bufs.length > 0) writevSync(fd, bufs, from);
  }
}

/** Writes tar bytes `[at, at + tar.length)` into `.contents` wherever files overlap them ({@link writePlan}). */
export async function placeTar(fh: FileHandle, files: readonly Placed[], tar: Uint8Array, at: number): Promise<void> {
  for (const g of writePlan(files, at, tar.length)) await fh.writev(pieces(tar, g), g.pos);
}
