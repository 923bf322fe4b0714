/**
 * ext4 inode records (256 bytes: the 128-byte base, 32 extra bytes for nanosecond timestamps and
 * crtime, then in-inode xattrs) and the extent trees they point at (fs/ext4/ext4_extents.h).
 */
import { BLOCK, EXTRA_ISIZE, INODE_SIZE } from './format.js';

export const EXT4_EXTENTS_FL = 0x80000;
const EXTENT_MAGIC = 0xf30a;
/** An initialized extent maps at most 32768 blocks (the length field's top bit marks uninitialized). */
export const MAX_EXTENT_BLOCKS = 32768;
const ROOT_ENTRIES = 4;
const BLOCK_ENTRIES = (BLOCK - 12) / 12;

export interface Extent {
  /** First logical block of the file. */
  logical: number;
  /** First physical block. */
  physical: number;
  length: number;
}

export interface InodeFields {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds and nanoseconds; used for atime, ctime, mtime and crtime alike. */
  sec: number;
  nsec: number;
  links: number;
  /** 512-byte sectors: data, extent tree and xattr blocks. */
  sectors: number;
  flags: number;
  /** The 60-byte i_block area (extent root, fast symlink target, device numbers). */
  iblock: Buffer;
  xattrBlock: number;
  /** In-inode xattr area (4-byte magic, entries, values at its end): INODE_SIZE - 128 - EXTRA_ISIZE bytes. */
  inlineXattrs?: Buffer;
}

/** `sec` as the 32-bit field plus the two epoch bits of the *_extra field (ns << 2 | epoch). */
function timeParts(sec: number, nsec: number): [number, number] {
  const lo = ((sec % 2 ** 32) + 2 ** 32) % 2 ** 32;
  const signedLo = lo >= 2 ** 31 ? lo - 2 ** 32 : lo;
  const epoch = ((sec - signedLo) / 2 ** 32) & 3;
  return [lo, ((nsec << 2) | epoch) >>> 0];
}

/** Encodes one inode into `out` at `at` (INODE_SIZE bytes, which must be zero). */
export function encodeInode(f: InodeFields, out: Buffer, at: number): void {
  const [t, extra] = timeParts(f.sec, f.nsec);
  out.writeUInt16LE(f.mode & 0xffff, at + 0x0);
  out.writeUInt16LE(f.uid & 0xffff, at + 0x2);
  out.writeUInt32LE(f.size % 2 ** 32, at + 0x4);
  for (const off of [0x8, 0xc, 0x10]) out.writeUInt32LE(t, at + off); // atime, ctime, mtime
  out.writeUInt16LE(f.gid & 0xffff, at + 0x18);
  out.writeUInt16LE(f.links, at + 0x1a);
  out.writeUInt32LE(f.sectors, at + 0x1c);
  out.writeUInt32LE(f.flags, at + 0x20);
  f.iblock.copy(out, at + 0x28, 0, 60);
  out.writeUInt32LE(f.xattrBlock, at + 0x68); // i_file_acl_lo
  out.writeUInt32LE(Math.floor(f.size / 2 ** 32), at + 0x6c); // i_size_high
  out.writeUInt16LE(f.uid >>> 16, at + 0x78); // l_i_uid_high
  out.writeUInt16LE(f.gid >>> 16, at + 0x7a); // l_i_gid_high
  out.writeUInt16LE(EXTRA_ISIZE, at + 0x80);
  for (const off of [0x84, 0x88, 0x8c, 0x94]) out.writeUInt32LE(extra, at + off); // ctime, mtime, atime, crtime extra
  out.writeUInt32LE(t, at + 0x90); // crtime
  if (f.inlineXattrs) f.inlineXattrs.copy(out, at + 128 + EXTRA_ISIZE, 0, INODE_SIZE - 128 - EXTRA_ISIZE);
}

function header(buf: Buffer, at: number, entries: number, max: number, depth: number): void {
  buf.writeUInt16LE(EXTENT_MAGIC, at);
  buf.writeUInt16LE(entries, at + 2);
  buf.writeUInt16LE(max, at + 4);
  buf.writeUInt16LE(depth, at + 6);
}

function leafEntry(buf: Buffer, at: number, e: Extent): void {
  buf.writeUInt32LE(e.logical, at);
  buf.writeUInt16LE(e.length, at + 4);
  buf.writeUInt16LE(Math.floor(e.physical / 2 ** 32), at + 6);
  buf.writeUInt32LE(e.physical % 2 ** 32, at + 8);
}

function indexEntry(buf: Buffer, at: number, logical: number, block: number): void {
  buf.writeUInt32LE(logical, at);
  buf.writeUInt32LE(block % 2 ** 32, at + 4);
  buf.writeUInt16LE(Math.floor(block / 2 ** 32), at + 8);
}

/** Blocks an extent tree over `extents` extents needs outside the inode (0 when the root holds them). */
export function extentTreeBlocks(extents: number): number {
  let total = 0;
  let n = extents;
  while (n > ROOT_ENTRIES) {
    n = Math.ceil(n / BLOCK_ENTRIES);
    total += n;
  }
  return total;
}

/**
 * The extent tree of `extents`: the 60-byte i_block root, and the tree blocks to write at the
 * block numbers `alloc(count)` returns (leaves first, then each index level). Depth grows only when
 * the root's four slots are not enough.
 */
export function buildExtentTree(extents: readonly Extent[], alloc: (count: number) => number): { iblock: Buffer; blocks: { at: number; data: Buffer }[] } {
  const iblock = Buffer.alloc(60);
  const blocks: { at: number; data: Buffer }[] = [];
  // each level: (first logical block, physical block or -1 for extents) of its entries
  let level: { logical: number; write: (buf: Buffer, at: number) => void }[] = extents.map((e) => ({ logical: e.logical, write: (b, at) => leafEntry(b, at, e) }));
  let depth = 0;
  while (level.length > ROOT_ENTRIES) {
    const count = Math.ceil(level.length / BLOCK_ENTRIES);
    const first = alloc(count);
    const next: typeof level = [];
    for (let i = 0; i < count; i++) {
      const part = level.slice(i * BLOCK_ENTRIES, (i + 1) * BLOCK_ENTRIES);
      const data = Buffer.alloc(BLOCK);
      header(data, 0, part.length, BLOCK_ENTRIES, depth);
      part.forEach((p, j) => p.write(data, 12 + j * 12));
      blocks.push({ at: first + i, data });
      const block = first + i;
      next.push({ logical: part[0]!.logical, write: (b, at) => indexEntry(b, at, part[0]!.logical, block) });
    }
    level = next;
    depth++;
  }
  header(iblock, 0, level.length, ROOT_ENTRIES, depth);
  level.forEach((p, j) => p.write(iblock, 12 + j * 12));
  return { iblock, blocks };
}

/** i_block of a device: old 16-bit encoding when major and minor fit a byte, else the new one (fs/ext4/inode.c). */
export function deviceIblock(major: number, minor: number): Buffer {
  const b = Buffer.alloc(60);
  if (major < 256 && minor < 256) b.writeUInt32LE((major << 8) | minor, 0);
  else b.writeUInt32LE(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
  return b;
}
